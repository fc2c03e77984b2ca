#include "unitrain/cli.h"

int main(int argc, char** argv) { return unitrain::cli::run_cli(argc, argv); }

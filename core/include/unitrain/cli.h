// Entry point of the `unitrain` command line (core/src/cli/).
#pragma once

namespace unitrain::cli {

// Parses and runs a command. Returns the process exit status; user errors are printed
// to stderr as "error: ..." with status 1.
int run_cli(int argc, char** argv);

}  // namespace unitrain::cli

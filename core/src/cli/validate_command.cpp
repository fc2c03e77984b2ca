// `unitrain validate EXP.json [--set k=v]...`: resolve, check, print.
#include <iostream>

#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"

namespace unitrain::cli {

void add_validate_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  CLI::App* validate = app.add_subcommand(
      "validate", "Resolve an experiment (includes, --set), check it and print it");
  validate->add_option("experiment", args->file, "Experiment JSON file")->required();
  validate->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  validate->callback([args, &context] {
    Experiment experiment = load_checked_experiment(context, args->file, args->overrides);
    std::cout << json_text(experiment.json, 2) << "\n";
  });
}

}  // namespace unitrain::cli

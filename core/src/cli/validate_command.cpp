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
    bool data = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* validate = app.add_subcommand(
      "validate", "Resolve an experiment (includes, --set), check it and print it");
  validate->add_option("experiment", args->file, "Experiment JSON file")->required();
  validate->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  validate->add_flag("--data", args->data,
                     "Also build every task's training and validation datasets (reads their "
                     "files: values the schema cannot judge, such as a GLUE task name or a "
                     "missing annotation file, are found here)");
  validate->callback([args, &context] {
    Experiment experiment = load_checked_experiment(context, args->file, args->overrides);
    if (args->data) {
      for (const auto& [task, spec] : experiment.json.at("tasks").items()) {
        for (const char* key : {"train_split", "val_split"}) {
          open_split(experiment, task, spec.at(key).get<std::string>());
        }
      }
    }
    std::cout << json_text(experiment.json, 2) << "\n";
  });
}

}  // namespace unitrain::cli

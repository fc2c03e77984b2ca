// `unitrain validate EXP.json [--set k=v]...`: resolve, check, print.
#include <iostream>

#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"

namespace unitrain::cli {

Experiment load_checked_experiment(const CliContext& context, const std::string& file,
                                   const std::vector<std::string>& overrides) {
  Experiment experiment = load_experiment(file, overrides);
  // Plugin folders and files named by the experiment are relative to its file.
  std::vector<std::string> dirs, files;
  const auto base = experiment.file.parent_path();
  auto collect = [&](const char* key, std::vector<std::string>& out) {
    const auto& value = experiment.json.value(key, nlohmann::json::array());
    if (!value.is_array()) return;  // reported by validate_experiment
    for (const auto& item : value) {
      if (item.is_string()) out.push_back((base / item.get<std::string>()).string());
    }
  };
  collect("plugin_dirs", dirs);
  collect("plugins", files);
  load_plugins(context, dirs, files);
  validate_experiment(experiment, &Registry::global());
  return experiment;
}

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

// `unitrain model summary EXP.json [--json] [--depth N] [--set k=v]...`: builds the
// experiment's model and prints its components with parameter counts.
#include <iostream>

#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/json_text.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"

namespace unitrain::cli {

void add_model_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
    bool json = false;
    int depth = 1;
  };
  auto args = std::make_shared<Args>();
  CLI::App* model = app.add_subcommand("model", "Inspect the model an experiment builds");
  model->require_subcommand(1);
  CLI::App* summary = model->add_subcommand(
      "summary", "Print the components of the model with parameter counts");
  summary->add_option("experiment", args->file, "Experiment JSON file")->required();
  summary->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  summary->add_flag("--json", args->json,
                    R"(Print {"components": {name: count, ...}, "other": {module: count, ...}, "total": count})");
  summary->add_option("--depth", args->depth, "Levels of submodules shown under each component")
      ->capture_default_str();
  summary->callback([args, &context] {
    Experiment experiment = load_checked_experiment(context, args->file, args->overrides);
    // Weights are irrelevant to a summary: skip init_from files.
    UnitModel model(experiment, registry_factory(Registry::global()), /*load_init_from=*/false);
    if (args->json) {
      nlohmann::json out = {{"components", model->parameter_counts()},
                            {"other", model->other_parameter_counts()},
                            {"total", model->parameter_count()}};
      std::cout << json_text(out, 2) << "\n";
    } else {
      std::cout << model_summary(*model, args->depth);
    }
  });
}

}  // namespace unitrain::cli

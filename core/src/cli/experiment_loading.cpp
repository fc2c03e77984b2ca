// Loading an experiment for a command: the plugins it names and the schema check.
#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/dataset.h"
#include "unitrain/registry.h"

namespace unitrain::cli {
namespace {

namespace fs = std::filesystem;

// The entries of `key` ("plugin_dirs" or "plugins"), each relative path resolved against
// the folder of the file that wrote it: an included file's entries name folders next to
// that file, and --set entries folders relative to the current one.
std::vector<std::string> plugin_paths(const Experiment& experiment, const std::string& key) {
  std::vector<std::string> out;
  const auto& value = experiment.json.value(key, nlohmann::json::array());
  if (!value.is_array()) return out;  // reported by validate_experiment
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) continue;
    fs::path path = value[i].get<std::string>();
    if (path.is_relative()) {
      const std::string origin = experiment.origin_of("/" + key + "/" + std::to_string(i));
      path = (origin.rfind("--set", 0) == 0 ? fs::current_path() : fs::path(origin).parent_path()) / path;
    }
    out.push_back(path.lexically_normal().string());
  }
  return out;
}

}  // namespace

void load_experiment_plugins(const CliContext& context, const Experiment& experiment) {
  load_plugins(context, plugin_paths(experiment, "plugin_dirs"), plugin_paths(experiment, "plugins"));
}

std::shared_ptr<const Dataset> open_split(const Experiment& experiment, const std::string& task,
                                          const std::string& split) {
  const std::string pointer = pointer_join(pointer_join("/tasks", task), "dataset");
  nlohmann::json options = experiment.json.at(nlohmann::json::json_pointer(pointer));
  const std::string type = options.at("type").get<std::string>();
  options.erase("type");
  options.erase("init_from");
  options["split"] = split;
  return Registry::global().create_as<Dataset>("dataset", type, options, experiment.where(pointer));
}

Experiment load_checked_experiment(const CliContext& context, const std::string& file,
                                   const std::vector<std::string>& overrides) {
  Experiment experiment = load_experiment(file, overrides);
  load_experiment_plugins(context, experiment);
  validate_experiment(experiment, &Registry::global());
  return experiment;
}

}  // namespace unitrain::cli

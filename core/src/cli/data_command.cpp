// `unitrain data stats EXP.json [--json] [--set k=v]...`: loads every task's dataset for
// its train and val splits and reports records, labels and skipped records by reason.
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/dataset.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"

namespace unitrain::cli {
namespace {

// One split of one task: {"records", "label_kind", "num_labels", "skipped", ...} or
// {"error": message} when it cannot be read.
nlohmann::json split_stats(const Experiment& experiment, const std::string& task,
                           const std::string& split) {
  const std::string pointer = pointer_join(pointer_join("/tasks", task), "dataset");
  nlohmann::json options = experiment.json.at(nlohmann::json::json_pointer(pointer));
  const std::string type = options.at("type").get<std::string>();
  options.erase("type");
  options.erase("init_from");
  options["split"] = split;
  try {
    auto dataset = Registry::global().create_as<Dataset>("dataset", type, options,
                                                         experiment.where(pointer));
    const LabelSpace labels = dataset->labels();
    nlohmann::json stats = {{"dataset", type},
                            {"records", dataset->size()},
                            {"label_kind", labels.kind},
                            {"num_labels", labels.names.size()},
                            {"skipped", dataset->skipped()}};
    if (labels.num_attributes > 0) stats["num_attributes"] = labels.num_attributes;
    return stats;
  } catch (const Error& e) {
    return {{"dataset", type}, {"error", e.what()}};
  }
}

std::string skipped_text(const nlohmann::json& skipped) {
  if (skipped.empty()) return "-";
  std::string text;
  for (const auto& [reason, n] : skipped.items()) {
    text += fmt::format("{}{} {}", text.empty() ? "" : ", ", reason, n.get<int64_t>());
  }
  return text;
}

void print_table(const nlohmann::json& report) {
  std::cout << fmt::format("{:<12} {:<16} {:<8} {:>10} {:>8}  {}\n", "task", "dataset", "split",
                           "records", "labels", "skipped");
  for (const auto& [task, splits] : report.items()) {
    for (const auto& [split, s] : splits.items()) {
      if (s.contains("error")) {
        std::cout << fmt::format("{:<12} {:<16} {:<8} error: {}\n", task,
                                 s["dataset"].get<std::string>(), split,
                                 s["error"].get<std::string>());
        continue;
      }
      std::cout << fmt::format("{:<12} {:<16} {:<8} {:>10} {:>8}  {}\n", task,
                               s["dataset"].get<std::string>(), split, s["records"].get<int64_t>(),
                               s["num_labels"].get<int64_t>(), skipped_text(s["skipped"]));
    }
  }
}

}  // namespace

void add_data_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* data = app.add_subcommand("data", "Inspect the datasets of an experiment");
  data->require_subcommand(1);
  CLI::App* stats = data->add_subcommand(
      "stats", "Records per split, number of labels and skipped records of every task");
  stats->add_option("experiment", args->file, "Experiment JSON file")->required();
  stats->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  stats->add_flag("--json", args->json, "Print JSON instead of a table");
  stats->callback([args, &context] {
    // Only the datasets are built: the schema is checked without the registry (other
    // components' plugins need not be present) and each dataset block is checked
    // against its plugin's defaults when it is created.
    Experiment experiment = load_experiment(args->file, args->overrides);
    std::vector<std::string> dirs, files;
    const auto base = experiment.file.parent_path();
    for (const auto& [key, out] : {std::pair{"plugin_dirs", &dirs}, {"plugins", &files}}) {
      for (const auto& item : experiment.json.value(key, nlohmann::json::array())) {
        if (item.is_string()) out->push_back((base / item.get<std::string>()).string());
      }
    }
    load_plugins(context, dirs, files);
    validate_experiment(experiment, nullptr);
    nlohmann::json report = nlohmann::json::object();
    for (const auto& [task, spec] : experiment.json.at("tasks").items()) {
      std::vector<std::string> splits = {spec.at("train_split").get<std::string>()};
      const auto val = spec.at("val_split").get<std::string>();
      if (val != splits.front()) splits.push_back(val);
      for (const auto& split : splits) {
        report[task][split] = split_stats(experiment, task, split);
        if (report[task][split].contains("error")) context.exit_code = 1;
      }
    }
    if (args->json) {
      std::cout << json_text(report, 2) << "\n";
    } else {
      print_table(report);
    }
  });
}

}  // namespace unitrain::cli

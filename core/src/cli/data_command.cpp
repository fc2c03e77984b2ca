// `unitrain data stats EXP.json [--json] [--set k=v]...`: loads every task's dataset for
// its train and val splits and reports records, labels and skipped records by reason
// (exit 1 when a split cannot be opened).
// `unitrain data check EXP.json [--decode] ...`: the same; with --decode it also reads
// every record of every split as training would (image decode and transform included)
// and lists the records that fail, before a run meets them.
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/data/records.h"
#include "unitrain/data/worker_budget.h"
#include "unitrain/dataset.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"

namespace unitrain::cli {
namespace {

// Reads every record of `dataset` (seed 0) on all available cores: {"decoded": n,
// "left_out": {reason: n}, "failed": [{"index", "reason", "message"}...]}. Records the
// dataset's policy skips are counted under "left_out"; every other failure is listed
// under "failed", in index order.
nlohmann::json decode_all(const Dataset& dataset) {
  const int64_t size = dataset.size();
  std::atomic<int64_t> next{0};
  std::mutex mutex;
  std::map<int64_t, nlohmann::json> failed;
  std::map<std::string, int64_t> left_out;
  auto work = [&] {
    for (int64_t i = next++; i < size; i = next++) {
      try {
        dataset.get(i, 0);
      } catch (const data::BadRecordError& e) {
        std::lock_guard<std::mutex> lock(mutex);
        if (e.skip()) {
          ++left_out[e.reason()];
        } else {
          failed[i] = {{"index", i}, {"reason", e.reason()}, {"message", e.what()}};
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex);
        failed[i] = {{"index", i}, {"reason", "error"}, {"message", e.what()}};
      }
    }
  };
  std::vector<std::thread> threads;
  const int64_t count = std::min<int64_t>(data::available_cores(), std::max<int64_t>(size, 1));
  for (int64_t t = 1; t < count; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  nlohmann::json out = {{"decoded", size - static_cast<int64_t>(failed.size())},
                        {"left_out", nlohmann::json::object()},
                        {"failed", nlohmann::json::array()}};
  int64_t skipped = 0;
  for (const auto& [reason, n] : left_out) {
    out["left_out"][reason] = n;
    skipped += n;
  }
  out["decoded"] = out["decoded"].get<int64_t>() - skipped;
  for (auto& [index, record] : failed) out["failed"].push_back(std::move(record));
  return out;
}

// One split of one task: {"records", "label_kind", "num_labels", "skipped", ...} (and
// decode_all's keys with `decode`) or {"error": message} when it cannot be read.
nlohmann::json split_stats(const Experiment& experiment, const std::string& task,
                           const std::string& split, bool decode) {
  const std::string pointer = pointer_join(pointer_join("/tasks", task), "dataset");
  const std::string type =
      experiment.json.at(nlohmann::json::json_pointer(pointer)).at("type").get<std::string>();
  try {
    auto dataset = open_split(experiment, task, split);
    const LabelSpace labels = dataset->labels();
    nlohmann::json stats = {{"dataset", type},
                            {"records", dataset->size()},
                            {"label_kind", labels.kind},
                            {"num_labels", labels.names.size()},
                            {"skipped", dataset->skipped()}};
    if (labels.num_attributes > 0) stats["num_attributes"] = labels.num_attributes;
    if (decode) stats.update(decode_all(*dataset));
    return stats;
  } catch (const Error& e) {
    return {{"dataset", type}, {"error", e.what()}};
  }
}

std::string counts_text(const nlohmann::json& counts) {
  if (counts.empty()) return "-";
  std::string text;
  for (const auto& [reason, n] : counts.items()) {
    text += fmt::format("{}{} {}", text.empty() ? "" : ", ", reason, n.get<int64_t>());
  }
  return text;
}

void print_table(const nlohmann::json& report, bool decode) {
  constexpr size_t kListed = 20;  // failed records printed per split; --json lists all
  std::cout << fmt::format("{:<12} {:<16} {:<8} {:>10} {:>8}  {}{}\n", "task", "dataset", "split",
                           "records", "labels", "skipped",
                           decode ? "  | decoded, left out, failed" : "");
  for (const auto& [task, splits] : report.items()) {
    for (const auto& [split, s] : splits.items()) {
      if (s.contains("error")) {
        std::cout << fmt::format("{:<12} {:<16} {:<8} error: {}\n", task,
                                 s["dataset"].get<std::string>(), split,
                                 s["error"].get<std::string>());
        continue;
      }
      std::string decoded;
      if (decode) {
        decoded = fmt::format("  | {}, {}, {}", s["decoded"].get<int64_t>(),
                              counts_text(s["left_out"]), s["failed"].size());
      }
      std::cout << fmt::format("{:<12} {:<16} {:<8} {:>10} {:>8}  {}{}\n", task,
                               s["dataset"].get<std::string>(), split, s["records"].get<int64_t>(),
                               s["num_labels"].get<int64_t>(), counts_text(s["skipped"]), decoded);
      if (!decode) continue;
      const auto& failed = s["failed"];
      for (size_t i = 0; i < failed.size() && i < kListed; ++i) {
        std::cout << fmt::format("  {} {} record {}: {}\n", task, split,
                                 failed[i]["index"].get<int64_t>(),
                                 failed[i]["message"].get<std::string>());
      }
      if (failed.size() > kListed) {
        std::cout << fmt::format("  {} {}: {} more failed records (--json lists them all)\n",
                                 task, split, failed.size() - kListed);
      }
    }
  }
}

}  // namespace

void add_data_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
    bool json = false;
    bool decode = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* data = app.add_subcommand("data", "Inspect the datasets of an experiment");
  data->require_subcommand(1);
  auto run = [args, &context] {
    // Only the datasets are built: the schema is checked without the registry (other
    // components' plugins need not be present) and each dataset block is checked
    // against its plugin's defaults when it is created.
    Experiment experiment = load_experiment(args->file, args->overrides);
    load_experiment_plugins(context, experiment);
    validate_experiment(experiment, nullptr);
    nlohmann::json report = nlohmann::json::object();
    int64_t failed = 0;
    for (const auto& [task, spec] : experiment.json.at("tasks").items()) {
      std::vector<std::string> splits = {spec.at("train_split").get<std::string>()};
      const auto val = spec.at("val_split").get<std::string>();
      if (val != splits.front()) splits.push_back(val);
      for (const auto& split : splits) {
        auto stats = split_stats(experiment, task, split, args->decode);
        if (stats.contains("error")) context.exit_code = 1;
        if (stats.contains("failed")) failed += static_cast<int64_t>(stats["failed"].size());
        report[task][split] = std::move(stats);
      }
    }
    if (failed > 0) context.exit_code = 1;
    if (args->json) {
      std::cout << json_text(report, 2) << "\n";
    } else {
      print_table(report, args->decode);
    }
    if (failed > 0) {
      std::cerr << fmt::format(
          "error: {} record(s) cannot be read and would stop a run (listed above); fix them, "
          "or set the dataset's \"on_bad_record\": \"skip\" to leave them out\n",
          failed);
    }
  };
  CLI::App* stats = data->add_subcommand(
      "stats", "Records per split, number of labels and skipped records of every task");
  CLI::App* check = data->add_subcommand(
      "check", "Open every split a run reads (exit 1 if one fails); --decode reads every record");
  for (CLI::App* command : {stats, check}) {
    command->add_option("experiment", args->file, "Experiment JSON file")->required();
    command->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
    command->add_flag("--json", args->json, "Print JSON instead of a table");
    command->callback(run);
  }
  check->add_flag("--decode", args->decode,
                  "Read every record as training does (decode and transform each image) and "
                  "list those that fail");
}

}  // namespace unitrain::cli

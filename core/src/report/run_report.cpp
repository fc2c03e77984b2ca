// Reads run folders into the data the report page draws, and writes the page.
#include "report/run_report.h"

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "report/detection_examples.h"
#include "report/report_page.h"
#include "train/durable_file.h"
#include "train/run_folder.h"
#include "unitrain/json_text.h"

namespace unitrain::report {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A JSON file of the run folder, or null when it is not there.
json read_optional(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return nullptr;
  std::ifstream in(file);
  const json value = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    throw ReportError(fmt::format("{}: not valid JSON (the report reads it)", file.string()));
  }
  return value;
}

bool is_number(const json& line, const char* key) {
  return line.contains(key) && line[key].is_number();
}

std::string escape_html(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// The run's data as JSON text that can sit inside <script>: '<' only occurs in strings,
// where \u003c means the same, so no "</script>" can end the element early.
std::string script_safe_json(const json& value) {
  std::string text = json_text(value);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') {
      out += "\\u003c";
    } else {
      out += c;
    }
  }
  return out;
}

// metrics.jsonl into loss / lr / grad_norm / eval series. A torn last line (a crash
// while writing it) is left out; any other line that is not a JSON object is an error.
void read_metrics(const fs::path& file, json& run) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  while (!lines.empty() && lines.back().find_first_not_of(" \t\r") == std::string::npos) lines.pop_back();
  json& loss = run["loss"];
  json& eval = run["eval"];
  int64_t skipped = 0;
  std::map<std::string, int64_t> lines_per_task;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    const json line = json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (!line.is_object()) {
      if (i + 1 == lines.size()) break;
      throw ReportError(fmt::format("{}:{}: expected a JSON object, found '{}'", file.string(), i + 1,
                                    shorten(lines[i], 60)));
    }
    if (!line.contains("step") || !line["step"].is_number()) continue;
    const json& step = line["step"];
    if (line.contains("skipped")) {
      ++skipped;
    } else if (line.contains("grad_cosine") && line["grad_cosine"].is_object()) {
      // step.cosine_every (docs/multitask.md): the task gradients' pairwise cosines.
      for (const auto& [pair, value] : line["grad_cosine"].items()) {
        if (value.is_number()) run["grad_cosine"][pair].push_back({step, value});
      }
    } else if (line.contains("eval") && line["eval"].is_object()) {
      for (const auto& [task, metrics] : line["eval"].items()) {
        if (!metrics.is_object()) continue;
        for (const auto& [metric, value] : metrics.items()) {
          if (value.is_number()) eval[task][metric].push_back({step, value});
        }
      }
    } else if (line.contains("task_losses") && line["task_losses"].is_object()) {
      // A multi-task update (docs/multitask.md): one point per task of the update.
      for (const auto& [task, value] : line["task_losses"].items()) {
        if (!value.is_number()) continue;
        loss[task].push_back({step, value});
        ++lines_per_task[task];
      }
      if (is_number(line, "lr")) run["lr"].push_back({step, line["lr"]});
      if (is_number(line, "grad_norm")) run["grad_norm"].push_back({step, line["grad_norm"]});
    } else if (line.contains("task") && line["task"].is_string() && is_number(line, "loss")) {
      const std::string task = line["task"].get<std::string>();
      loss[task].push_back({step, line["loss"]});
      ++lines_per_task[task];
      if (is_number(line, "lr")) run["lr"].push_back({step, line["lr"]});
      if (is_number(line, "grad_norm")) run["grad_norm"].push_back({step, line["grad_norm"]});
    }
  }
  run["skipped"] = skipped;
  run["lines_per_task"] = lines_per_task;
}

// Each task's sampled share (throughput.json's updates per task, else the training lines
// of metrics.jsonl) and its target: the scheduler's distribution recorded in tasks.json
// (a run folder without it, from an older unitrain, shows no target).
void read_shares(const json& tasks_file, const json& throughput, json& run) {
  const json& tasks = run["tasks"];
  // NOTE: every lookup below checks the key and the type first: a run folder's files may
  // name tasks that the others do not (operator[] on a const json without the key is
  // undefined behaviour, and value() on a non-object throws).
  auto object_at = [](const json& parent, const std::string& key) -> const json* {
    if (!parent.is_object() || !parent.contains(key) || !parent.at(key).is_object()) return nullptr;
    return &parent.at(key);
  };
  int64_t total_lines = 0;
  for (const auto& [task, n] : run["lines_per_task"].items()) total_lines += n.get<int64_t>();
  const bool from_throughput = throughput.is_object();
  run["share_source"] = from_throughput ? "throughput.json (updates per task)"
                                        : "metrics.jsonl (training lines per task)";
  for (const auto& task : tasks) {
    const std::string name = task.get<std::string>();
    json share = {{"actual", nullptr}, {"target", nullptr}};
    if (const json* t = from_throughput ? object_at(throughput, name) : nullptr) {
      share["actual"] = t->value("share", 0.0);
    } else if (!from_throughput && total_lines > 0) {
      share["actual"] = static_cast<double>(run["lines_per_task"].value(name, int64_t{0})) / total_lines;
    }
    const json* recorded = object_at(tasks_file, name);
    if (recorded && recorded->value("target_share", json()).is_number()) {
      share["target"] = recorded->at("target_share");
    }
    run["share"][name] = share;
  }
}

}  // namespace

fs::path default_report_file(const std::vector<fs::path>& runs) {
  return runs.at(0) / (runs.size() == 1 ? train::kReportFile : "compare.html");
}

json read_run(const fs::path& run_dir) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) {
    throw ReportError(fmt::format("'{}': no such run folder", run_dir.string()));
  }
  const fs::path metrics = run_dir / train::kMetricsFile;
  if (!fs::exists(metrics, ec)) {
    throw ReportError(fmt::format("'{}': not a run folder (no {}: give the folder a `unitrain "
                                  "train` run wrote)",
                                  run_dir.string(), train::kMetricsFile));
  }
  const json experiment = read_optional(run_dir / train::kResolvedExperimentFile);
  const json tasks_file = read_optional(run_dir / train::kTasksFile);
  const json throughput = read_optional(run_dir / train::kThroughputFile);
  const json final_eval = read_optional(run_dir / train::kEvalFile);

  json run = {{"folder", run_dir.string()},
              {"name", run_dir.filename().empty() ? run_dir.parent_path().filename().string()
                                                  : run_dir.filename().string()},
              {"experiment", experiment.is_object() ? experiment.value("name", "") : ""},
              {"loss", json::object()}, {"lr", json::array()}, {"grad_norm", json::array()},
              {"grad_cosine", json::object()},
              {"eval", json::object()}, {"chance", json::object()}, {"share", json::object()},
              {"throughput", json::object()}, {"final", final_eval.is_object() ? final_eval : json::object()}};
  read_metrics(metrics, run);

  // Tasks in the experiment's order, then any that only metrics.jsonl names.
  std::vector<std::string> tasks;
  std::set<std::string> seen;
  auto add = [&](const std::string& name) {
    if (seen.insert(name).second) tasks.push_back(name);
  };
  if (experiment.is_object() && experiment.contains("tasks") && experiment["tasks"].is_object()) {
    for (const auto& [name, spec] : experiment["tasks"].items()) add(name);
  }
  for (const auto& [name, points] : run["loss"].items()) add(name);
  for (const auto& [name, metrics] : run["eval"].items()) add(name);
  run["tasks"] = tasks;

  if (tasks_file.is_object()) {
    for (const auto& [name, info] : tasks_file.items()) {
      if (info.is_object() && info.value("chance", json()).is_number()) run["chance"][name] = info["chance"];
    }
  }
  read_shares(tasks_file, throughput, run);
  if (throughput.is_object()) {
    for (const auto& name : tasks) {
      if (!throughput.contains(name) || !throughput[name].is_object()) continue;
      const json& t = throughput[name];
      const double steps = static_cast<double>(t.value("steps", int64_t{0}));
      json row = {{"steps", t.value("steps", int64_t{0})}};
      for (const char* phase : {"data", "forward", "backward", "update"}) {
        const double seconds =
            t.contains("phases") && t["phases"].is_object() ? t["phases"].value(phase, 0.0) : 0.0;
        row[phase] = steps > 0 ? 1000.0 * seconds / steps : 0.0;
      }
      run["throughput"][name] = row;
    }
  }
  run.erase("lines_per_task");
  return run;
}

std::string report_html(const std::vector<json>& runs) {
  std::vector<std::string> names;
  for (const auto& run : runs) names.push_back(run.value("name", ""));
  const std::string title =
      escape_html(fmt::format("unitrain report: {}", fmt::join(names, " vs ")));
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>{}</title>\n<style>{}</style>\n</head>\n<body data-status=\"loading\">\n"
      "<h1>{}</h1>\n<div id=\"report\"></div>\n"
      "<script>{}</script>\n"
      "<script id=\"run-data\" type=\"application/json\">{}</script>\n"
      "<script>{}</script>\n</body>\n</html>\n",
      title, report_style(), title, report_error_hook(), script_safe_json(json(runs)),
      report_script());
}

void write_report(const std::vector<fs::path>& runs, const fs::path& out, bool examples) {
  std::vector<json> data;
  for (const auto& run : runs) {
    data.push_back(read_run(run));
    if (!examples) continue;
    try {
      data.back()["examples"] = detection_examples(run);
      data.back()["answer_examples"] = answer_examples(run);
    } catch (const std::exception& e) {
      // The charts do not need the model: the page says why the images are missing.
      data.back()["examples_error"] = e.what();
    }
  }
  train::write_text_durably(out, report_html(data));
}

}  // namespace unitrain::report

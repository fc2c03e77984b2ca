// The run report: one self-contained HTML file (inline script and style, no network)
// drawn from run folders' metrics.jsonl, eval.json, throughput.json, tasks.json and
// experiment.resolved.json. docs/report.md describes what it shows.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"

namespace unitrain::report {

// A run folder cannot be read into a report (not a run folder, a file that does not
// parse). The message names the file and, for metrics.jsonl, the line.
class ReportError : public Error {
 public:
  using Error::Error;
};

// Where `unitrain report RUN...` writes: --out when given, else RUN/report.html for one
// run and FIRST_RUN/compare.html for several.
std::filesystem::path default_report_file(const std::vector<std::filesystem::path>& runs);

// What the page draws for one run folder: {"name", "folder", "tasks": [...], "loss":
// {task: [[step, loss]...]}, "lr": [[step, lr]...], "grad_norm": [...], "eval": {task:
// {metric: [[step, value]...]}}, "chance": {task: value}, "share": {task: {"actual",
// "target"}}, "share_source", "throughput": {task: {"steps", "data", "forward",
// "backward", "update"} (ms per update)}, "final": eval.json, "skipped": count}.
// Throws ReportError naming the folder when it has no metrics.jsonl or a file does not
// parse (with its line).
nlohmann::json read_run(const std::filesystem::path& run_dir);

// The HTML page for runs read by read_run (one or several, drawn over each other).
std::string report_html(const std::vector<nlohmann::json>& runs);

// Reads `runs` and writes the page to `out` (durably); errors as read_run. With
// `examples`, each run also gets "examples": detection_examples() of its checkpoint and
// "answer_examples": answer_examples() (the plugins its experiment names must be
// loaded), or "examples_error" saying why not.
void write_report(const std::vector<std::filesystem::path>& runs, const std::filesystem::path& out,
                  bool examples = true);

}  // namespace unitrain::report

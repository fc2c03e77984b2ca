// What a run reports: metrics.jsonl, skipped records, progress, throughput and
// evaluation tables.
#include "train/reports.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "train/durable_file.h"
#include "unitrain/config.h"
#include "unitrain/json_text.h"

namespace unitrain::train {
using json = nlohmann::json;

namespace {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{:02}:{:02}", s / 60, s % 60);
}

}  // namespace

void RunLog::open(const std::filesystem::path& file, int64_t resumed_at) {
  std::error_code ec;
  if (resumed_at >= 0 && std::filesystem::exists(file, ec)) {
    std::ifstream in(file);
    std::string kept;
    int64_t left_out = 0;
    for (std::string line; std::getline(in, line);) {
      const json entry = json::parse(line, nullptr, /*allow_exceptions=*/false);
      const bool keep = entry.is_object() &&
                        (!entry.contains("step") || !entry["step"].is_number_integer() ||
                         entry["step"].get<int64_t>() <= resumed_at);
      if (keep) {
        kept += line + "\n";
      } else {
        ++left_out;
      }
    }
    if (left_out > 0) {
      write_text_durably(file, kept);
      std::cerr << fmt::format("resume: {}: {} line(s) after step {} left out (those steps are "
                               "trained again)\n",
                               file.string(), left_out, resumed_at);
    }
  }
  file_.open(file, std::ios::app);
}

void RunLog::write(const json& line) {
  if (file_.is_open()) file_ << json_text(line) << "\n" << std::flush;
  if (tensorboard_.is_open() && line.contains("step") && line["step"].is_number_integer()) {
    tensorboard_.write(line["step"].get<int64_t>(), tensorboard_scalars(line));
  }
  if (console_ && tasks_ != nullptr && line.contains("eval")) {
    std::cerr << fmt::format("{}evaluation at step {}\n{}",
                             isatty(STDERR_FILENO) ? "\r\033[K" : "", line.value("step", int64_t{0}),
                             eval_table(line["eval"], *tasks_));
  }
}

void RunLog::start_reports(const RunSetup& setup, const std::filesystem::path& run_dir,
                           const std::vector<double>& target_shares, int64_t resumed_at) {
  tasks_ = &setup.tasks;
  write_tasks_file(run_dir / kTasksFile, setup.tasks, target_shares);
  // An experiment validated by validate_experiment has the block; one built by hand may not.
  const json log = setup.experiment.json.value("log", log_defaults());
  if (log.value("tensorboard", false)) tensorboard_.open(run_dir / kTensorboardFolder, resumed_at);
}

void write_tasks_file(const std::filesystem::path& file, const std::vector<TaskData>& tasks,
                      const std::vector<double>& target_shares) {
  json out = json::object();
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TaskData& t = tasks[i];
    const LabelSpace labels = (t.eval ? t.eval : t.train)->labels();
    out[t.name] = {{"label_kind", labels.kind},
                   {"num_labels", labels.names.size()},
                   {"chance", chance_level(t)},
                   {"target_share", i < target_shares.size() ? json(target_shares[i]) : json()}};
  }
  write_text_durably(file, json_text(out, 2) + "\n");
}

double chance_level(const TaskData& task) {
  // The evaluated split: an evaluate-only run opens no training split.
  const Dataset& dataset = *(task.eval ? task.eval : task.train);
  return dataset.evaluator()->chance_level(dataset.labels());
}

std::string headline_metric(const TaskData& task, const json& metrics) {
  auto metric = (task.eval ? task.eval : task.train)->evaluator()->headline(metrics);
  return metrics.contains(metric) ? metric : metrics.items().begin().key();
}

void RunLog::report_skips(const std::string& task, data::DataLoader& loader,
                          const std::string& split, bool training, int64_t step) {
  for (const auto& skip : loader.take_new_skips()) {
    std::cerr << fmt::format(
        "{}{}warning: task '{}', split '{}': record {} left out ({}): {}{}\n",
        console_ && isatty(STDERR_FILENO) ? "\r\033[K" : "",
        rank_ >= 0 ? fmt::format("rank {}: ", rank_) : "", task, split, skip.index,
        skip.reason, skip.message,
        training ? "; the next readable record takes its place" : "; not evaluated");
    write({{"step", step},
           {"skipped", {{"task", task}, {"split", split}, {"index", skip.index},
                        {"reason", skip.reason}, {"message", skip.message}}}});
  }
}

json throughput(const std::vector<TaskData>& tasks) {
  json out = json::object();
  TaskData all;
  for (const auto& t : tasks) {
    all.steps += t.steps;
    all.samples += t.samples;
    all.seconds += t.seconds;
    all.data_s += t.data_s;
    all.forward_s += t.forward_s;
    all.backward_s += t.backward_s;
    all.update_s += t.update_s;
    all.collectives_s += t.collectives_s;
  }
  auto entry = [&all](const TaskData& t) {
    const double n = static_cast<double>(t.steps), sec = t.seconds;
    return json{{"steps", t.steps},
                {"share", all.steps > 0 ? n / static_cast<double>(all.steps) : 0.0},
                {"samples", t.samples},
                {"seconds", sec},
                {"it_per_s", sec > 0 ? n / sec : 0.0},
                {"samples_per_s", sec > 0 ? static_cast<double>(t.samples) / sec : 0.0},
                {"phases",
                 {{"data", t.data_s},
                  {"forward", t.forward_s},
                  {"backward", t.backward_s},
                  {"update", t.update_s}}},
                // Within the phases: data-parallel collectives (0 in one process).
                {"collectives", t.collectives_s}};
  };
  for (const auto& t : tasks) out[t.name] = entry(t);
  out["all"] = entry(all);
  return out;
}

std::string throughput_table(const json& throughput, const std::vector<TaskData>& tasks) {
  // The phase columns are milliseconds per update (a step's data, forward, backward and
  // clip + optimizer time).
  std::string table =
      fmt::format("{:<12} {:>7} {:>7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "task",
                  "steps", "share", "it/s", "samples/s", "seconds", "data ms", "fwd ms",
                  "bwd ms", "upd ms");
  auto row = [&table](const std::string& name, const json& v) {
    const double steps = static_cast<double>(v.at("steps").get<int64_t>());
    auto ms = [&](const char* phase) {
      return steps > 0 ? 1000.0 * v.at("phases").at(phase).get<double>() / steps : 0.0;
    };
    table += fmt::format(
        "{:<12} {:>7} {:>7.3f} {:>9.2f} {:>10.1f} {:>8.1f} {:>8.1f} {:>8.1f} {:>8.1f} {:>8.1f}\n",
        name, v.at("steps").get<int64_t>(), v.at("share").get<double>(),
        v.at("it_per_s").get<double>(), v.at("samples_per_s").get<double>(),
        v.at("seconds").get<double>(), ms("data"), ms("forward"), ms("backward"), ms("update"));
  };
  for (const auto& task : tasks) row(task.name, throughput.at(task.name));
  row("all", throughput.at("all"));
  return table;
}

std::string eval_table(const json& result, const std::vector<TaskData>& tasks) {
  std::string table = fmt::format("{:<12} {:<14} {:>8} {:>8}\n", "task", "metric", "value", "chance");
  for (const auto& t : tasks) {
    if (!result.contains(t.name) || result[t.name].empty()) continue;
    const auto& metrics = result[t.name];
    const std::string metric = headline_metric(t, metrics);
    const Dataset& dataset = *(t.eval ? t.eval : t.train);
    table += fmt::format("{:<12} {:<14} {:>8.3f} {:>8.3f}\n", t.name, metric,
                         metrics[metric].get<double>(), chance_level(t));
    for (const auto& [name, chance] : dataset.evaluator()->table_rows(metrics, dataset.labels())) {
      if (name == metric || !metrics.contains(name) || !metrics[name].is_number()) continue;
      table += fmt::format("{:<12} {:<14} {:>8.3f} {:>8.3f}\n", "", name,
                           metrics[name].get<double>(), chance);
    }
  }
  return table;
}

std::string progress_text(int64_t step, int64_t max_steps, double it_per_s,
                          const std::vector<std::pair<std::string, double>>& losses,
                          int bar_width, size_t columns) {
  std::string text;
  if (bar_width > 0) {
    const double done = max_steps > 0 ? std::clamp(double(step) / double(max_steps), 0.0, 1.0) : 0.0;
    const int filled = static_cast<int>(done * bar_width);
    text = "[" + std::string(filled, '#') + std::string(bar_width - filled, '-') + "] ";
  }
  text += fmt::format("step {}/{}  {:.2f} it/s  ETA {} |", step, max_steps, it_per_s,
                      format_duration(it_per_s > 0 ? (max_steps - step) / it_per_s : NAN));
  for (const auto& [name, loss] : losses) {
    const std::string part = fmt::format(" {} {:.3f}", columns > 0 ? utf8_prefix(name, 8) : name, loss);
    if (columns > 0 && text.size() + part.size() > columns) break;
    text += part;
  }
  if (columns > 0 && text.size() > columns) text = utf8_prefix(text, columns);
  return text;
}

void print_progress(bool tty, std::chrono::steady_clock::time_point started, int64_t first_step,
                    int64_t step, const TrainingOptions& options,
                    const std::vector<TaskData>& tasks) {
  const bool line_due = step % options.log_every == 0 || step == options.max_steps;
  if (!tty && !line_due) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double rate = elapsed > 0 ? static_cast<double>(step - first_step) / elapsed : 0.0;
  std::vector<std::pair<std::string, double>> losses;
  for (const auto& t : tasks) {
    if (!std::isnan(t.last_loss)) losses.emplace_back(t.name, t.last_loss);
  }
  if (tty) {
    // One character short of the width: a line that fills it wraps on some terminals,
    // and "\r" then redraws only its last row.
    winsize size{};
    const size_t columns =
        ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 ? size.ws_col - 1 : 79;
    std::cerr << "\r\033[K" << progress_text(step, options.max_steps, rate, losses, 20, columns)
              << std::flush;
  } else {
    std::cerr << progress_text(step, options.max_steps, rate, losses, 0, 0) << "\n";
  }
}

}  // namespace unitrain::train

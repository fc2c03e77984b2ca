// What a run reports: lines of RUN/metrics.jsonl, warnings about records left out,
// the progress line, the throughput and the evaluation tables.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/data/loader.h"
#include "train/build.h"
#include "train/run_folder.h"
#include "train/tensorboard.h"

namespace unitrain::train {

// RUN/metrics.jsonl (one JSON object per line) and the warnings that go with it. Closed
// (lines dropped) until open() is called: evaluation alone and the processes other than
// the writer have no such file.
class RunLog {
 public:
  // `console`: the progress line may be on stderr (a warning clears it first when
  // stderr is a terminal); `rank`: the process in a data-parallel run, named in its
  // warnings (-1 in one process).
  RunLog(bool console, int64_t rank) : console_(console), rank_(rank) {}

  // Appends to `file` from now on. A run resumed at step `resumed_at` (>= 0) first
  // leaves out the lines of steps after it, which the run trains again, and a line torn
  // by a crash, so that the file holds each step once (TensorBoard's purge_step); it
  // says how many on stderr.
  void open(const std::filesystem::path& file, int64_t resumed_at = -1);
  // Every line also goes to TensorBoard (tensorboard_scalars) once open_tensorboard()
  // is called; an evaluation line prints its eval_table on the console.
  void write(const nlohmann::json& line);

  // What the run report and the console need besides metrics.jsonl, for the process
  // that writes the run folder: writes RUN/tasks.json (write_tasks_file), opens
  // RUN/tensorboard when the experiment's log.tensorboard is true (a resumed run starts
  // a new file there), and keeps `setup`'s tasks for the evaluation tables.
  // `target_shares`: the scheduler's sampling distribution at the start.
  void start_reports(const RunSetup& setup, const std::filesystem::path& run_dir,
                     const std::vector<double>& target_shares, int64_t resumed_at = -1);

  // Says once, on stderr and in metrics.jsonl, which records `loader` has left out since
  // the last call (a corrupt image under on_bad_record "skip"), so that a run that goes
  // on without them says so. `training`: the loader is the task's training loader (the
  // next readable record takes the place of one left out) rather than an evaluation's.
  void report_skips(const std::string& task, data::DataLoader& loader, const std::string& split,
                    bool training, int64_t step);

 private:
  bool console_;
  int64_t rank_;
  std::ofstream file_;
  EventFileWriter tensorboard_;
  const std::vector<TaskData>* tasks_ = nullptr;  // set by start_reports
};

// RUN/tasks.json, which the run report reads: {task: {"label_kind", "num_labels",
// "chance", "target_share"}} in experiment order.
void write_tasks_file(const std::filesystem::path& file, const std::vector<TaskData>& tasks,
                      const std::vector<double>& target_shares);

// The chance level of a task's headline metric, as its evaluator states it
// (Evaluator::chance_level; by default 1 / labels, 0 for detection).
double chance_level(const TaskData& task);
// The headline metric of a task's non-empty `metrics` (Evaluator::headline; its first
// key when the evaluator names a metric the result does not have).
std::string headline_metric(const TaskData& task, const nlohmann::json& metrics);

// Trainer::throughput() over `tasks` (see unitrain/trainer.h).
nlohmann::json throughput(const std::vector<TaskData>& tasks);
// Trainer::throughput_table() for the result of throughput(tasks).
std::string throughput_table(const nlohmann::json& throughput, const std::vector<TaskData>& tasks);
// Trainer::eval_table().
std::string eval_table(const nlohmann::json& result, const std::vector<TaskData>& tasks);

// The progress line's text: "step S/MAX  R it/s  ETA T | task loss ..." and, with
// `bar_width` > 0, a bar of that many cells first ("[#####-----] "). Fits in `columns`
// characters (0 = no limit): task names are shortened to 8 characters, then the losses
// that do not fit are left out.
std::string progress_text(int64_t step, int64_t max_steps, double it_per_s,
                          const std::vector<std::pair<std::string, double>>& losses,
                          int bar_width, size_t columns);

// The live progress line on stderr. On a terminal one line redrawn in place every step
// ("\r" and clear to the end of the line) with a bar, as wide as the terminal; otherwise
// one line every log_every steps and at the last step.
void print_progress(bool tty, std::chrono::steady_clock::time_point started,
                    int64_t first_step, int64_t step, const TrainingOptions& options,
                    const std::vector<TaskData>& tasks);

}  // namespace unitrain::train

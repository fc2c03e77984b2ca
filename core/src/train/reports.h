// What a run reports: lines of RUN/metrics.jsonl, warnings about records left out,
// the progress line, the throughput and the evaluation tables.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/data/loader.h"
#include "train/build.h"

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
  void write(const nlohmann::json& line);

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
};

// Trainer::throughput() over `tasks` (see unitrain/trainer.h).
nlohmann::json throughput(const std::vector<TaskData>& tasks);
// Trainer::throughput_table() for the result of throughput(tasks).
std::string throughput_table(const nlohmann::json& throughput, const std::vector<TaskData>& tasks);
// Trainer::eval_table().
std::string eval_table(const nlohmann::json& result, const std::vector<TaskData>& tasks);

// The live progress line on stderr: "step S/MAX  R it/s  ETA T | task loss...". On a
// terminal it is redrawn every step; otherwise one line every log_every steps and at the
// last step.
void print_progress(bool tty, std::chrono::steady_clock::time_point started,
                    int64_t first_step, int64_t step, const TrainingOptions& options,
                    const std::vector<TaskData>& tasks);

}  // namespace unitrain::train

// A run folder while a run writes into it: one process at a time (an flock on
// RUN/run.lock), and never a new run over an old one's files. docs/checkpoints.md,
// "Run folders".
#pragma once

#include <filesystem>
#include <string>

namespace unitrain::train {

// The files a run writes into its folder (what --force deletes).
constexpr const char* kResolvedExperimentFile = "experiment.resolved.json";
constexpr const char* kMetricsFile = "metrics.jsonl";
constexpr const char* kEvalFile = "eval.json";
constexpr const char* kThroughputFile = "throughput.json";
constexpr const char* kCheckpointFolder = "checkpoints";
// What the run report reads besides the files above (train/reports.h), the report itself
// and the TensorBoard event files (log.tensorboard).
constexpr const char* kTasksFile = "tasks.json";
constexpr const char* kReportFile = "report.html";
constexpr const char* kTensorboardFolder = "tensorboard";
// Holds the pid of the process that holds the lock; left in place after the run (an
// flock ends with its process, so a stale file never blocks).
constexpr const char* kLockFile = "run.lock";

// An exclusive flock on RUN/run.lock, held until destruction. Only the process that
// writes the folder takes it (rank 0 of a data-parallel run).
class RunFolderLock {
 public:
  RunFolderLock() = default;
  // Creates the folder if needed and locks it; throws TrainingError naming the folder
  // and the pid of the process that holds it.
  explicit RunFolderLock(const std::filesystem::path& run_dir);
  ~RunFolderLock();
  RunFolderLock(RunFolderLock&& other) noexcept;
  RunFolderLock& operator=(RunFolderLock&& other) noexcept;
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

// What a new run may find in its folder. Nothing (run.lock aside) unless `resume`
// (continue the run there) or `force` (start over: delete the files a run writes,
// listed above, and leave every other file alone). Throws TrainingError listing what
// is there otherwise.
void prepare_run_folder(const std::filesystem::path& run_dir, bool resume, bool force);

}  // namespace unitrain::train

// The evaluation runner: one pass of the model over every task's evaluation split,
// metrics from each dataset's evaluator. Training runs it periodically; `unitrain eval`
// runs it alone, on a RunSetup without training splits, optimizer or scheduler.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "unitrain/trainer.h"
#include "train/build.h"
#include "train/reports.h"

namespace unitrain::train {

// {task: {metric: value}} over every task of `setup`, in experiment order: each task's
// `split` (its eval_split when empty), at most `max_batches` batches per task (0: the
// whole split). Records left out are reported through `log` at `step`. Leaves the
// model in training mode.
//
// In a data-parallel run every rank predicts its slices of the split's global batches
// and rank 0 computes the metrics over all of them (never a mean of per-rank values),
// which every rank then returns; max_batches counts global batches.
//
// `predictions_dir` (empty: none): also write each task's official result files there
// (unitrain/results.h; the folder is created), on rank 0 over every rank's predictions.
// A task whose dataset offers no result files is said on stderr and skipped.
EvalResult evaluate(RunSetup& setup, RunLog& log, const std::string& split, int64_t max_batches,
                    int64_t step, const std::filesystem::path& predictions_dir = {});

// `unitrain eval`: the weights of `checkpoint` (a checkpoint file or a run folder) on a
// RunSetup that opens only the evaluation splits (`split`, else each task's val_split)
// and reads no init_from file, evaluated once. Builds no optimizer or scheduler and
// writes no file but the result files asked for by `predictions_dir` (see evaluate).
// `group`: evaluate sharded over its processes (null: one process).
EvalResult evaluate_checkpoint(const Experiment& experiment, const Registry& registry,
                               const std::filesystem::path& checkpoint,
                               const std::string& split, int64_t max_batches,
                               std::shared_ptr<ProcessGroup> group,
                               const std::filesystem::path& predictions_dir = {});

}  // namespace unitrain::train

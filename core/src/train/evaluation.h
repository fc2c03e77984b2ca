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
EvalResult evaluate(RunSetup& setup, RunLog& log, const std::string& split, int64_t max_batches,
                    int64_t step);

// `unitrain eval`: the weights of `checkpoint` (a checkpoint file or a run folder) on a
// RunSetup that opens only the evaluation splits (`split`, else each task's val_split)
// and reads no init_from file, evaluated once. Builds no optimizer or scheduler and
// writes no file. `group`: evaluate sharded over its processes (null: one process).
EvalResult evaluate_checkpoint(const Experiment& experiment, const Registry& registry,
                               const std::filesystem::path& checkpoint,
                               const std::string& split, int64_t max_batches,
                               std::shared_ptr<ProcessGroup> group);

}  // namespace unitrain::train

// Run checkpoints: what training saves into RUN/checkpoints/ and what resume restores
// from it (docs/checkpoints.md). A run checkpoint is a model checkpoint (weights,
// experiment, label spaces) plus the run state below and the RNG states.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "unitrain/data/loader.h"
#include "unitrain/scheduler.h"
#include "train/build.h"
#include "train/mixed_precision.h"

namespace unitrain::train {

// What training changes besides the model and the loaders, all of it saved in a run
// checkpoint (the optimizer's moments and step counts; its parameter lists and peak
// learning rates follow from the experiment).
struct RunState {
  int64_t step = 0;  // optimizer updates so far
  TaskRng task_rng;
  std::shared_ptr<TaskScheduler> scheduler;
  // The combine rule of multi-task updates (null: one task per update).
  std::shared_ptr<GradientCombiner> combiner;
  // The float16 loss scale (training.autocast "fp16"; null otherwise).
  std::shared_ptr<LossScaler> loss_scaler;
  Optimization optimization;
};

// Writes RUN/checkpoints/step_<step>.pt, makes last.pt its twin and deletes all but the
// newest `keep_checkpoints` older step files. CheckpointError naming the step when the
// file cannot be written or does not read back; last.pt and the older files are then
// kept.
void save_run_checkpoint(const std::filesystem::path& run_dir, const RunSetup& setup,
                         const RunState& state, int64_t keep_checkpoints);

// Restores the model and `state` from a run folder (its last.pt, else its newest step
// file that opens) or a checkpoint file, and returns each task's loader position. Every
// failure is a CheckpointError naming the file.
std::vector<data::LoaderState> restore_run_checkpoint(
    const std::filesystem::path& run_or_checkpoint, RunSetup& setup, RunState& state);

}  // namespace unitrain::train

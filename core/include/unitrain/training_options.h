// The "training" block of an experiment: optimizer settings, the learning-rate
// schedule, clipping, accumulation and how often the trainer logs, evaluates and saves.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "unitrain/config.h"

namespace unitrain {

// The "training" block (see docs/experiments.md).
struct TrainingOptions {
  int64_t max_steps = 1000;
  double lr = 5e-5;
  double backbone_lr = 1e-5;
  double weight_decay = 1e-4;
  double adam_eps = 1e-8;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  int64_t warmup_steps = 0;
  std::string lr_schedule = "cosine";  // "cosine", "linear" or "constant"
  double min_lr_ratio = 0.0;
  double clip_grad_norm = 0.1;  // 0 = off
  int64_t accumulate_steps = 1;
  int64_t log_every = 10;
  int64_t eval_every = 0;        // 0 = at the end only
  int64_t eval_max_batches = 0;  // 0 = whole split
  int64_t checkpoint_every = 0;  // 0 = at the end only
  int64_t keep_checkpoints = 2;
  // Mixed precision of the forward pass: "off", "bf16" (CPU or CUDA) or "fp16" (CUDA,
  // with a dynamic loss scale). Parameters, gradients and the optimizer stay float32.
  std::string autocast = "off";
};

// The "step" block: how many tasks one optimizer update trains on and how their
// gradients are combined (docs/multitask.md). The rule's options stay in the
// experiment's /step/combine block, for the plugin.
struct StepOptions {
  int64_t tasks = 1;         // distinct tasks per update; 0 = every task ("all")
  std::string combine = "sum";  // the combine rule's type
  int64_t cosine_every = 0;  // log the task gradients' pairwise cosines every n updates
  // Whether updates take the multi-task path (more than one task, or a rule other than
  // the plain sum); one task with "sum" is the ordinary update.
  bool multitask() const { return tasks != 1 || combine != "sum"; }
};

// Reads a validated "step" block.
StepOptions step_options_from_json(const nlohmann::json& j);

// Reads a validated "training" block; `where` locates messages (ConfigError).
TrainingOptions training_options_from_json(const nlohmann::json& j, const Experiment& experiment);

// Multiplier of the peak learning rate at optimizer update `step` (0-based): linear
// warmup over warmup_steps (step+1)/warmup, then the schedule from 1 down to
// min_lr_ratio at max_steps.
double lr_factor(const TrainingOptions& options, int64_t step);

}  // namespace unitrain

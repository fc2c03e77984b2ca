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
};

// Reads a validated "training" block; `where` locates messages (ConfigError).
TrainingOptions training_options_from_json(const nlohmann::json& j, const Experiment& experiment);

// Multiplier of the peak learning rate at optimizer update `step` (0-based): linear
// warmup over warmup_steps (step+1)/warmup, then the schedule from 1 down to
// min_lr_ratio at max_steps.
double lr_factor(const TrainingOptions& options, int64_t step);

}  // namespace unitrain

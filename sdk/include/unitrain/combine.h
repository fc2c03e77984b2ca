// Multi-task updates: an update that trains on batches of several tasks, and the rule
// that combines their gradients into one ("step": {"tasks": k, "combine": {"type":
// NAME, ...}}, docs/multitask.md). Rules are plugins of kind "combine"; the built-in
// ones (sum, uncertainty_weighting, gradnorm, pcgrad, cagrad, famo) are in
// plugins/combine/gradient_rules.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/plugin.h"
#include "unitrain/scheduler.h"

namespace unitrain {

// What one update's tasks give the rule. A parameter is shared when more than one task
// of the update gave it a gradient (encoders, the decoder); the others belong to one
// task (its head, its queries) and are not in `shared`.
struct TaskGradients {
  std::vector<size_t> tasks;   // [k] each row's task: its index in setup's task list
  std::vector<double> losses;  // [k] each task's loss in this update, loss_weight applied
                               // (the mean over its micro-batches): what `shared` is the
                               // gradient of
  // [k, P] each task's gradient on the P shared values (0 where a task did not touch a
  // shared parameter); in data-parallel runs already averaged over the ranks, so every
  // rank combines the same rows.
  torch::Tensor shared;
  int64_t step = 0;  // updates before this one
};

struct CombinedGradient {
  torch::Tensor shared;            // [P] the update's gradient on the shared values
  std::vector<double> task_scale;  // [k] factor of each task's gradient on its own parameters
};

class GradientCombiner : public PluginObject {
 public:
  // Called once before the first update, with every task of the run in experiment order.
  virtual void setup(const std::vector<std::string>& task_names) = 0;
  // The update's gradient. `rng` is the trainer's task engine (the same on every rank,
  // saved in checkpoints): draw from it only, so that runs and resumes repeat exactly.
  virtual CombinedGradient combine(const TaskGradients& step, TaskRng& rng) = 0;
  // What the rule learned or decided, for metrics.jsonl: e.g. {"weights": {task: w}}.
  virtual nlohmann::json diagnostics() const { return nlohmann::json::object(); }
  // Everything the rule learns (weights, optimizer moments, first losses), for
  // checkpoints: a resumed run must go on exactly.
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void load_state(const nlohmann::json& /*state*/) {}
};

}  // namespace unitrain

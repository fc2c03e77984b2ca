// Multi-task updates (the "step" block, docs/multitask.md): an update draws k distinct
// tasks, runs each task's micro-batches on its own (the trainer does the forward and
// backward passes), keeps each task's gradients apart, and lets the combine rule turn
// them into the update's gradient.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/combine.h"
#include "unitrain/scheduler.h"
#include "unitrain/training_options.h"

namespace unitrain::train {

class MultitaskStep {
 public:
  MultitaskStep(StepOptions options, std::shared_ptr<GradientCombiner> combiner,
                std::vector<std::string> task_names);

  // The update's tasks: every task in experiment order ("all"), else the first k
  // distinct tasks the scheduler draws (TrainingError when it keeps drawing the same
  // few: a scheduler that gives some tasks probability 0 cannot fill k).
  std::vector<size_t> draw(TaskScheduler& scheduler, TaskRng& rng, int64_t step) const;

  // Starts an update's first task.
  void begin();
  // After a task's backward passes (and, in data-parallel runs, their all-reduce): takes
  // its gradients out of `parameters`, leaving them undefined for the next task.
  void capture(const std::vector<torch::Tensor>& parameters);
  // After the last task: gives every parameter its gradient for the optimizer. Shared
  // parameters (touched by more than one task) get the rule's combination; the others
  // their task's gradient times the rule's task scale. `losses`: each task's loss with
  // its loss_weight. Returns what to log for this update: {"combine": the rule's
  // diagnostics} and, every cosine_every updates, {"grad_cosine": {"a|b": cos}}.
  nlohmann::json finish(int64_t step, const std::vector<size_t>& tasks,
                        const std::vector<double>& losses,
                        const std::vector<torch::Tensor>& parameters, TaskRng& rng);

  GradientCombiner& combiner() { return *combiner_; }
  std::shared_ptr<GradientCombiner> combiner_ptr() const { return combiner_; }
  const StepOptions& options() const { return options_; }

 private:
  StepOptions options_;
  std::shared_ptr<GradientCombiner> combiner_;
  std::vector<std::string> task_names_;
  std::vector<std::vector<torch::Tensor>> rows_;  // per task of the update, per parameter
};

// Pairwise cosine similarities of the rows of `gradients` [k, P], keyed "a|b" by the
// rows' task names (a before b in row order); 0 where a row is all zeros.
nlohmann::json gradient_cosines(const torch::Tensor& gradients,
                                const std::vector<std::string>& row_names);

}  // namespace unitrain::train

// The trainer's side of data parallelism: every rank runs the same task at every step
// (the task engine is seeded from the experiment, no per-step broadcast), reads its own
// slice of the task's batch, and averages the gradients of only the parameters that
// step touched. docs/distributed.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/batch.h"
#include "unitrain/distributed.h"

namespace unitrain::train {

class DataParallel {
 public:
  DataParallel(std::shared_ptr<ProcessGroup> group, DistributedOptions options,
               std::vector<std::string> task_names);

  int64_t rank() const { return group_->rank(); }
  int64_t world_size() const { return group_->world_size(); }
  const DistributedOptions& options() const { return options_; }

  // Stops every rank (TrainingError) unless every rank's `setup` (the resolved
  // experiment and the plugin set) equals rank 0's; the message names the first JSON
  // pointer where they differ and both values.
  void check_same_setup(const nlohmann::json& setup);
  // Rank 0's parameters and buffers into every rank (a fresh model).
  void broadcast_model(torch::nn::Module& model);
  // Makes batch.mean_over_ranks() average over the ranks.
  void attach(Batch& batch) const;

  // Right after a task is drawn, before any collective of its forward pass: one
  // all-reduce of (t, t^2) for the task index t, whose sums equal (W t, W t^2) only when
  // every rank drew t. TrainingError naming every rank's task otherwise.
  void check_task(int64_t step, size_t task);

  // After the backward passes of step `step`, whose micro-batches came from the tasks
  // `tasks` (indices): checks that every rank has gradients of the same size (the same
  // touched parameters), then averages the defined gradients of `parameters` and the
  // numbers `values` (the logged losses) over the ranks, in buckets of at most ~32 MB.
  void reduce_step(int64_t step, const std::vector<size_t>& tasks,
                   const std::vector<torch::Tensor>& parameters, std::vector<double>& values);

  // The mean of each of `values` over the ranks (one all-reduce), in place.
  void average(std::vector<double>& values, const std::string& what);

  // Every options().check_every steps (call it after each step): compares a hash of
  // every task drawn and every parameter set touched so far across the ranks.
  void check_sequence(int64_t step);

  // Evaluation: each rank's packed predictions for one round (empty when the rank had
  // no batch), in rank order.
  std::vector<std::string> gather(const std::string& payload, const std::string& what);
  // Rank 0's text on every rank.
  std::string share_from_rank0(const std::string& text, const std::string& what);

  // Seconds spent in collectives so far (ProcessGroup::seconds_in_collectives).
  double seconds_in_collectives() const { return group_->seconds_in_collectives(); }

 private:
  // Whether every rank passed the same `value` (one all-reduce of (v, v^2); |v| < 2^20).
  bool agree_everywhere(int64_t value, const std::string& what);

  std::shared_ptr<ProcessGroup> group_;
  DistributedOptions options_;
  std::vector<std::string> task_names_;
  uint64_t sequence_hash_ = 0;  // of every step's tasks and touched parameters so far
};

// A head's predictions with the batch fields evaluators read (targets, sizes, ids,
// sources; not the pixels or token ids), as bytes, and back.
std::string pack_for_evaluation(const Predictions& predictions, const Batch& batch);
void unpack_for_evaluation(const std::string& bytes, Predictions* predictions, Batch* batch);

}  // namespace unitrain::train

// AdamW over flat parameter buffers, with clipping by global norm.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace unitrain {

// AdamW with PyTorch's update (decoupled weight decay, bias corrections from each
// parameter's own step count) for many small parameters. The constructor moves each
// group's parameters into one flat buffer (every parameter becomes a view of it,
// values kept), with the moment estimates laid out the same way. On the CPU (float32)
// a step is two passes over the values with every intra-op thread: the global norm of
// the gradients, then one fused loop doing the whole update. Elsewhere it updates each
// run of consecutive parameters that have gradients and the same step count with ~8
// tensor ops. Either way it avoids the ~10 ops per parameter of torch::optim::AdamW (a
// model of ~100 small tensors spends more time dispatching those than computing them)
// and the ~10 passes over memory of the tensor ops (the update of a 12M-parameter
// model is memory-bound).
//
// As torch::optim::AdamW, a parameter whose gradient is undefined is skipped: neither
// its value, its moments nor its step count change. Reassigning a parameter (set_data,
// Module::to, loading with set_) after construction detaches it from the buffer; copy_
// into it is fine.
class FlatAdamW {
 public:
  struct Group {
    std::vector<torch::Tensor> parameters;
    double lr = 1e-3;
    double weight_decay = 0.0;
  };

  // Every group's parameters must share one device and floating dtype; a tensor listed
  // twice is updated once. Throws std::invalid_argument otherwise.
  FlatAdamW(std::vector<Group> groups, double beta1, double beta2, double eps);

  size_t num_groups() const { return groups_.size(); }
  double lr(size_t group) const { return groups_.at(group).lr; }
  void set_lr(size_t group, double lr) { groups_.at(group).lr = lr; }

  // One update. When max_norm > 0 and the global L2 norm of all defined gradients
  // exceeds it, the gradients enter the update scaled by max_norm / (norm + 1e-6)
  // (the gradient tensors themselves are left as they are). Returns the norm before
  // clipping (0 without gradients). When that norm is inf or NaN nothing changes
  // (values, moments, step counts) and the norm is returned.
  double step(double max_norm);

  // On the CPU with float32 parameters and dense gradients, a step makes two passes over
  // the values (the norm, then the update in one fused loop over all threads) instead of
  // ~10 tensor ops; the result equals the tensor-op path's to float rounding. True makes
  // every step take the tensor-op path, as on other devices and dtypes (for tests and
  // benchmarks).
  void use_tensor_ops(bool on) { tensor_ops_ = on; }

  // Moments and per-parameter step counts. load checks that the state was written for
  // the same groups and sizes (c10::Error naming the first difference otherwise).
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  struct FlatGroup {
    std::vector<torch::Tensor> parameters;
    std::vector<int64_t> offsets;  // of each parameter in the flat buffers
    std::vector<int64_t> steps;    // updates each parameter has had
    torch::Tensor values, exp_avg, exp_avg_sq;
    double lr, weight_decay;
  };
  std::vector<FlatGroup> groups_;
  double beta1_, beta2_, eps_;
  bool tensor_ops_ = false;
};

}  // namespace unitrain

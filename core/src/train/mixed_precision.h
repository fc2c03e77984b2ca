// Mixed precision for the trainer (`training.autocast`): LibTorch's autocast around the
// forward pass, and for float16 a dynamic loss scale, as torch.autocast and
// torch.cuda.amp.GradScaler do in PyTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace unitrain::train {

// Autocast on `device`'s type while it lives: "bf16" or "fp16" (CUDA only), nothing for
// "off". Operators that autocast lists run in the lower precision; parameters and
// gradients stay float32. The cast cache is cleared when the outermost scope ends.
class AutocastScope {
 public:
  AutocastScope(const std::string& mode, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

// The dynamic loss scale of float16 training (PyTorch's GradScaler defaults): the loss
// is multiplied by scale() before backward so that small gradients survive float16;
// unscale() divides the gradients back. An update whose gradients are not finite is
// skipped and halves the scale; `growth_interval` finite updates in a row double it.
class LossScaler {
 public:
  explicit LossScaler(double initial_scale = 65536.0, double growth_factor = 2.0,
                      double backoff_factor = 0.5, int64_t growth_interval = 2000);

  double scale() const { return scale_; }
  // Divides every defined gradient by the scale, in place.
  void unscale(const std::vector<torch::Tensor>& parameters) const;
  // After the optimizer step: `finite` whether the update's gradients were finite (the
  // step was applied). Returns false when the update was skipped.
  bool update(bool finite);
  // Updates skipped so far because of non-finite gradients.
  int64_t skipped() const { return skipped_; }

  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  double scale_;
  double growth_factor_;
  double backoff_factor_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;  // finite updates since the last change of scale
  int64_t skipped_ = 0;
};

}  // namespace unitrain::train

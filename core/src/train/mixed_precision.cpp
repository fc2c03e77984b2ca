#include "train/mixed_precision.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include "unitrain/errors.h"

namespace unitrain::train {
namespace {

// LibTorch 1.13's CPU autocast has no float32 policy for layer_norm, which then fails
// on a bfloat16 input with float32 weights ("expected scalar type BFloat16 but found
// Float"). Its CUDA autocast (and later PyTorch on the CPU) runs layer_norm in float32:
// the same here.
at::Tensor layer_norm_in_float(const at::Tensor& input, at::IntArrayRef shape,
                               const c10::optional<at::Tensor>& weight,
                               const c10::optional<at::Tensor>& bias, double eps,
                               bool cudnn_enable) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
  auto in_float = [](const c10::optional<at::Tensor>& t) -> c10::optional<at::Tensor> {
    if (!t.has_value() || !t->defined()) return t;
    return t->scalar_type() == at::kBFloat16 || t->scalar_type() == at::kHalf ? t->to(at::kFloat) : *t;
  };
  const at::Tensor x = input.scalar_type() == at::kBFloat16 || input.scalar_type() == at::kHalf
                           ? input.to(at::kFloat)
                           : input;
  return at::layer_norm(x, shape, in_float(weight), in_float(bias), eps, cudnn_enable);
}

TORCH_LIBRARY_IMPL(aten, AutocastCPU, m) {
  m.impl("layer_norm", TORCH_FN(layer_norm_in_float));
}

}  // namespace

AutocastScope::AutocastScope(const std::string& mode, const torch::Device& device) {
  if (mode == "off") return;
  const at::ScalarType dtype = mode == "bf16" ? at::kBFloat16 : at::kHalf;
  on_ = true;
  cuda_ = device.is_cuda();
  if (cuda_) {
    was_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    was_enabled_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!on_) return;
  if (cuda_) {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  } else {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  }
  // The casts of the weights are cached for one forward pass only.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

LossScaler::LossScaler(double initial_scale, double growth_factor, double backoff_factor,
                       int64_t growth_interval)
    : scale_(initial_scale),
      growth_factor_(growth_factor),
      backoff_factor_(backoff_factor),
      growth_interval_(growth_interval) {}

void LossScaler::unscale(const std::vector<torch::Tensor>& parameters) const {
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / scale_;
  for (const auto& p : parameters) {
    if (p.grad().defined()) p.mutable_grad().mul_(inverse);
  }
}

bool LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= backoff_factor_;
    good_steps_ = 0;
    ++skipped_;
    return false;
  }
  if (++good_steps_ >= growth_interval_) {
    scale_ *= growth_factor_;
    good_steps_ = 0;
  }
  return true;
}

nlohmann::json LossScaler::state() const {
  return {{"scale", scale_}, {"good_steps", good_steps_}, {"skipped", skipped_}};
}

void LossScaler::load_state(const nlohmann::json& state) {
  scale_ = state.at("scale").get<double>();
  good_steps_ = state.at("good_steps").get<int64_t>();
  skipped_ = state.at("skipped").get<int64_t>();
}

}  // namespace unitrain::train

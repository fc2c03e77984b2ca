// AdamW over flat buffers: the fused CPU step and the tensor-op path.
#include <cmath>
#include <utility>
#include <set>
#include <stdexcept>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "unitrain/adamw.h"

namespace unitrain {

namespace {
constexpr const char* kFormat = "unitrain.flat_adamw.v1";
}  // namespace

FlatAdamW::FlatAdamW(std::vector<Group> groups, double beta1, double beta2, double eps)
    : beta1_(beta1), beta2_(beta2), eps_(eps) {
  std::set<const void*> seen;
  torch::NoGradGuard no_grad;
  for (size_t g = 0; g < groups.size(); ++g) {
    FlatGroup flat;
    flat.lr = groups[g].lr;
    flat.weight_decay = groups[g].weight_decay;
    int64_t numel = 0;
    for (const auto& p : groups[g].parameters) {
      if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
      if (!p.is_floating_point()) {
        throw std::invalid_argument(fmt::format("FlatAdamW: group {} holds a {} tensor; "
                                                "parameters must be floating point",
                                                g, c10::toString(p.scalar_type())));
      }
      if (!flat.parameters.empty() && (p.scalar_type() != flat.parameters[0].scalar_type() ||
                                       p.device() != flat.parameters[0].device())) {
        throw std::invalid_argument(fmt::format(
            "FlatAdamW: group {} mixes {} on {} with {} on {}; one dtype and device per group", g,
            c10::toString(flat.parameters[0].scalar_type()), flat.parameters[0].device().str(),
            c10::toString(p.scalar_type()), p.device().str()));
      }
      flat.parameters.push_back(p);
      flat.offsets.push_back(numel);
      numel += p.numel();
    }
    flat.steps.assign(flat.parameters.size(), 0);
    const auto options = flat.parameters.empty() ? torch::TensorOptions(torch::kFloat32)
                                                 : flat.parameters[0].options();
    flat.values = torch::empty({numel}, options.requires_grad(false));
    flat.exp_avg = torch::zeros({numel}, options.requires_grad(false));
    flat.exp_avg_sq = torch::zeros({numel}, options.requires_grad(false));
    for (size_t i = 0; i < flat.parameters.size(); ++i) {
      auto& p = flat.parameters[i];
      flat.values.narrow(0, flat.offsets[i], p.numel()).copy_(p.reshape({-1}));
      p.set_(flat.values.storage(), flat.offsets[i], p.sizes(), c10::contiguous_strides(p.sizes()));
    }
    groups_.push_back(std::move(flat));
  }
}

namespace {

// One parameter's part of a fused CPU step: its gradient, its slices of the flat
// buffers and the constants of its update.
struct Span {
  const float* grad;
  float *value, *exp_avg, *exp_avg_sq;
  int64_t numel;
  float decay;      // 1 - lr * weight_decay
  float step_size;  // lr / bias_correction1
  float inv_sqrt_bc2;
};

// Pieces of at most kChunk values: the unit of parallel work, and of summation for the
// norm (each piece summed in double, the pieces added in order), so the norm does not
// depend on the number of threads.
constexpr int64_t kChunk = 1 << 16;

struct Piece {
  size_t span;
  int64_t begin, end;
};

std::vector<Piece> pieces_of(const std::vector<Span>& spans) {
  std::vector<Piece> pieces;
  for (size_t s = 0; s < spans.size(); ++s) {
    for (int64_t b = 0; b < spans[s].numel; b += kChunk) {
      pieces.push_back({s, b, std::min(spans[s].numel, b + kChunk)});
    }
  }
  return pieces;
}

double squared_norm(const std::vector<Span>& spans, const std::vector<Piece>& pieces) {
  std::vector<double> sums(pieces.size(), 0.0);
  at::parallel_for(0, static_cast<int64_t>(pieces.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const Piece& piece = pieces[k];
      const float* g = spans[piece.span].grad;
      double acc[4] = {0, 0, 0, 0};
      int64_t i = piece.begin;
      for (; i + 4 <= piece.end; i += 4) {
        for (int lane = 0; lane < 4; ++lane) {
          const double x = g[i + lane];
          acc[lane] += x * x;
        }
      }
      for (; i < piece.end; ++i) acc[0] += static_cast<double>(g[i]) * g[i];
      sums[k] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
  });
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

// PyTorch's AdamW step in one pass over each value (the tensor-op path makes ~8): the
// same operations in the same order, in float.
void fused_update(const std::vector<Span>& spans, const std::vector<Piece>& pieces, float beta1,
                  float beta2, float alpha1, float alpha2, float eps) {
  at::parallel_for(0, static_cast<int64_t>(pieces.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const Piece& piece = pieces[k];
      const Span& s = spans[piece.span];
      const float* __restrict g = s.grad;
      float* __restrict p = s.value;
      float* __restrict m = s.exp_avg;
      float* __restrict v = s.exp_avg_sq;
      const float decay = s.decay, step_size = s.step_size, inv_sqrt_bc2 = s.inv_sqrt_bc2;
      for (int64_t i = piece.begin; i < piece.end; ++i) {
        const float gi = g[i];
        const float mi = m[i] * beta1 + gi * alpha1;
        const float vi = v[i] * beta2 + alpha2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float denom = std::sqrt(vi) * inv_sqrt_bc2 + eps;
        p[i] = p[i] * decay - step_size * (mi / denom);
      }
    }
  });
}

}  // namespace

double FlatAdamW::step(double max_norm) {
  // A run: consecutive parameters of one group that have gradients and the same step
  // count, so one bias correction serves them all.
  struct Run {
    size_t group, first, count;
  };
  std::vector<Run> runs;
  bool fused = !tensor_ops_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto& flat = groups_[g];
    const bool cpu_float =
        flat.values.device().is_cpu() && flat.values.scalar_type() == torch::kFloat32;
    for (size_t i = 0; i < flat.parameters.size();) {
      const auto& grad = flat.parameters[i].grad();
      if (!grad.defined()) {
        ++i;
        continue;
      }
      size_t j = i;
      for (; j < flat.parameters.size(); ++j) {
        const auto& gj = flat.parameters[j].grad();
        if (!gj.defined() || flat.steps[j] != flat.steps[i]) break;
        fused = fused && cpu_float && gj.layout() == torch::kStrided && gj.device().is_cpu() &&
                gj.scalar_type() == torch::kFloat32 && gj.is_contiguous();
      }
      runs.push_back({g, i, j - i});
      i = j;
    }
  }
  if (runs.empty()) return 0.0;

  // The bias corrections of a run after this step.
  auto corrections = [&](const Run& run) {
    const double step = static_cast<double>(groups_[run.group].steps[run.first] + 1);
    return std::make_pair(1.0 - std::pow(beta1_, step), 1.0 - std::pow(beta2_, step));
  };
  auto count_step = [&](const Run& run) {
    auto& steps = groups_[run.group].steps;
    for (size_t k = run.first; k < run.first + run.count; ++k) ++steps[k];
  };

  if (fused) {
    std::vector<Span> spans;
    for (const auto& run : runs) {
      auto& flat = groups_[run.group];
      const auto [bc1, bc2] = corrections(run);
      for (size_t k = run.first; k < run.first + run.count; ++k) {
        const int64_t offset = flat.offsets[k];
        spans.push_back({flat.parameters[k].grad().data_ptr<float>(),
                         flat.values.data_ptr<float>() + offset,
                         flat.exp_avg.data_ptr<float>() + offset,
                         flat.exp_avg_sq.data_ptr<float>() + offset, flat.parameters[k].numel(),
                         static_cast<float>(1.0 - flat.lr * flat.weight_decay),
                         static_cast<float>(flat.lr / bc1),
                         static_cast<float>(1.0 / std::sqrt(bc2))});
      }
    }
    const auto pieces = pieces_of(spans);
    const double norm = std::sqrt(squared_norm(spans, pieces));
    if (!std::isfinite(norm)) return norm;  // nothing is updated: the caller decides
    const double scale = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
    fused_update(spans, pieces, static_cast<float>(beta1_), static_cast<float>(beta2_),
                 static_cast<float>((1.0 - beta1_) * scale),
                 static_cast<float>((1.0 - beta2_) * scale * scale), static_cast<float>(eps_));
    for (const auto& run : runs) count_step(run);
    return norm;
  }

  // Any device and dtype: each run's gradients as one flat tensor and ~8 tensor ops.
  std::vector<torch::Tensor> run_grads, squares;
  for (const auto& run : runs) {
    const auto& flat = groups_[run.group];
    std::vector<torch::Tensor> grads;
    for (size_t k = run.first; k < run.first + run.count; ++k) {
      grads.push_back(flat.parameters[k].grad().reshape({-1}));
    }
    run_grads.push_back(grads.size() == 1 ? grads[0] : torch::cat(grads));
    squares.push_back(run_grads.back().pow(2).sum().to(torch::kFloat64));
  }
  const double norm = std::sqrt(torch::stack(squares).sum().item<double>());
  if (!std::isfinite(norm)) return norm;  // nothing is updated: the caller decides
  const double scale = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;

  torch::NoGradGuard no_grad;
  for (size_t r = 0; r < runs.size(); ++r) {
    const Run& run = runs[r];
    const torch::Tensor& grad = run_grads[r];
    auto& flat = groups_[run.group];
    const int64_t begin = flat.offsets[run.first];
    const size_t last = run.first + run.count - 1;
    const int64_t length = flat.offsets[last] + flat.parameters[last].numel() - begin;
    const auto [bias_correction1, bias_correction2] = corrections(run);
    count_step(run);
    auto values = flat.values.narrow(0, begin, length);
    auto exp_avg = flat.exp_avg.narrow(0, begin, length);
    auto exp_avg_sq = flat.exp_avg_sq.narrow(0, begin, length);
    if (flat.weight_decay != 0) values.mul_(1.0 - flat.lr * flat.weight_decay);
    // The clip factor enters as a scale of the gradient: m += (1-b1) s g, v += (1-b2) s^2 g^2.
    exp_avg.mul_(beta1_).add_(grad, (1.0 - beta1_) * scale);
    exp_avg_sq.mul_(beta2_).addcmul_(grad, grad, (1.0 - beta2_) * scale * scale);
    auto denom = exp_avg_sq.sqrt().div_(std::sqrt(bias_correction2)).add_(eps_);
    values.addcdiv_(exp_avg, denom, -flat.lr / bias_correction1);
  }
  return norm;
}

void FlatAdamW::save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("groups", c10::IValue(static_cast<int64_t>(groups_.size())));
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto& flat = groups_[g];
    const std::string prefix = "group" + std::to_string(g) + ".";
    archive.write(prefix + "exp_avg", flat.exp_avg, /*is_buffer=*/true);
    archive.write(prefix + "exp_avg_sq", flat.exp_avg_sq, /*is_buffer=*/true);
    archive.write(prefix + "steps", torch::tensor(flat.steps, torch::kInt64), /*is_buffer=*/true);
  }
}

void FlatAdamW::load(torch::serialize::InputArchive& archive) {
  c10::IValue format, count;
  TORCH_CHECK(archive.try_read("format", format) && format.isString() &&
                  format.toStringRef() == kFormat,
              "expected optimizer state '", kFormat, "'",
              format.isString() ? ", found '" + format.toStringRef() + "'"
                                : " (written by an older unitrain with per-parameter AdamW "
                                  "state?)");
  TORCH_CHECK(archive.try_read("groups", count) && count.isInt() &&
                  count.toInt() == static_cast<int64_t>(groups_.size()),
              "expected ", groups_.size(), " parameter groups, found ",
              count.isInt() ? std::to_string(count.toInt()) : std::string("none"));
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto& flat = groups_[g];
    const std::string prefix = "group" + std::to_string(g) + ".";
    torch::Tensor exp_avg, exp_avg_sq, steps;
    archive.read(prefix + "exp_avg", exp_avg, /*is_buffer=*/true);
    archive.read(prefix + "exp_avg_sq", exp_avg_sq, /*is_buffer=*/true);
    archive.read(prefix + "steps", steps, /*is_buffer=*/true);
    TORCH_CHECK(exp_avg.numel() == flat.exp_avg.numel() &&
                    exp_avg_sq.numel() == flat.exp_avg_sq.numel() &&
                    steps.numel() == static_cast<int64_t>(flat.steps.size()),
                "group ", g, ": expected ", flat.parameters.size(), " parameters of ",
                flat.exp_avg.numel(), " values, found ", steps.numel(), " of ", exp_avg.numel());
    torch::NoGradGuard no_grad;
    flat.exp_avg.copy_(exp_avg);
    flat.exp_avg_sq.copy_(exp_avg_sq);
    auto counts = steps.to(torch::kInt64).contiguous();
    for (size_t i = 0; i < flat.steps.size(); ++i) flat.steps[i] = counts[i].item<int64_t>();
  }
}

}  // namespace unitrain

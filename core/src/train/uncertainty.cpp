// Normalized entropies of predictions.
#include "train/uncertainty.h"

#include <cmath>

namespace unitrain::train {

std::vector<double> normalized_entropies(const Predictions& predictions) {
  std::vector<double> out;
  if (predictions.scores.defined()) {
    const torch::Tensor p = predictions.scores.detach().to(torch::kCPU, torch::kFloat64).clamp_min(0);
    const int64_t classes = p.size(1);
    const torch::Tensor q = p / p.sum(1, /*keepdim=*/true).clamp_min(1e-300);
    // 0 log 0 = 0: xlogy gives 0 where q is 0.
    const torch::Tensor h = (-torch::xlogy(q, q).sum(1)).contiguous();
    const double scale = classes > 1 ? 1.0 / std::log(static_cast<double>(classes)) : 0.0;
    const double* values = h.data_ptr<double>();
    for (int64_t i = 0; i < h.numel(); ++i) out.push_back(values[i] * scale);
    return out;
  }
  for (const auto& image : predictions.detections) {
    double total = 0;
    for (const Detection& d : image) {
      const double s = std::min(std::max(static_cast<double>(d.score), 0.0), 1.0);
      auto plogp = [](double x) { return x > 0 ? x * std::log(x) : 0.0; };
      total += -(plogp(s) + plogp(1 - s)) / std::log(2.0);
    }
    out.push_back(image.empty() ? 0.0 : total / static_cast<double>(image.size()));
  }
  return out;
}

}  // namespace unitrain::train

// Accuracy, F1 of one class and the VQA accuracy.
#include <algorithm>

#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/metrics.h"

namespace unitrain {

double accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& target) {
  if (predicted.size() != target.size()) {
    throw Error(fmt::format("accuracy: {} predictions but {} targets", predicted.size(),
                            target.size()));
  }
  if (predicted.empty()) return 0.0;
  int64_t correct = 0;
  for (size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == target[i];
  return static_cast<double>(correct) / static_cast<double>(predicted.size());
}

double f1_score(const std::vector<int64_t>& predicted, const std::vector<int64_t>& target,
                int64_t positive) {
  if (predicted.size() != target.size()) {
    throw Error(fmt::format("f1_score: {} predictions but {} targets", predicted.size(),
                            target.size()));
  }
  int64_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < predicted.size(); ++i) {
    const bool p = predicted[i] == positive, t = target[i] == positive;
    tp += p && t;
    fp += p && !t;
    fn += !p && t;
  }
  const int64_t denominator = 2 * tp + fp + fn;
  return denominator == 0 ? 0.0
                          : static_cast<double>(2 * tp) / static_cast<double>(denominator);
}

double vqa_answer_score(const std::string& answer,
                        const std::vector<std::string>& annotator_answers) {
  if (annotator_answers.empty()) return 0.0;
  const auto matches =
      std::count(annotator_answers.begin(), annotator_answers.end(), answer);
  // Leaving out annotator i removes one match exactly when annotator i gave the answer.
  double sum = 0;
  for (const std::string& left_out : annotator_answers) {
    const auto others = matches - (left_out == answer ? 1 : 0);
    sum += std::min(1.0, static_cast<double>(others) / 3.0);
  }
  return sum / static_cast<double>(annotator_answers.size());
}

double vqa_accuracy(const torch::Tensor& predicted, const torch::Tensor& soft_labels) {
  TORCH_CHECK(predicted.defined() && predicted.dim() == 1,
              "vqa_accuracy: predicted labels must be [B], got ",
              predicted.defined() ? predicted.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(soft_labels.defined() && soft_labels.dim() == 2 &&
                  soft_labels.size(0) == predicted.size(0),
              "vqa_accuracy: soft labels must be [B, C] with B = ", predicted.size(0), ", got ",
              soft_labels.defined() ? soft_labels.sizes() : torch::IntArrayRef{});
  if (predicted.size(0) == 0) return 0.0;
  const torch::Tensor labels = predicted.to(torch::kCPU, torch::kLong);
  const torch::Tensor scores = soft_labels.to(torch::kCPU, torch::kDouble);
  const int64_t num_classes = scores.size(1);
  TORCH_CHECK(labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < num_classes,
              "vqa_accuracy: predicted labels must lie in [0, ", num_classes, ")");
  return scores.gather(1, labels.unsqueeze(1)).mean().item<double>();
}

}  // namespace unitrain

// The evaluators of the three label-space kinds and the factory that picks one.
#include <algorithm>

#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/metrics.h"

namespace unitrain {
namespace {

std::vector<int64_t> to_vector(const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.to(torch::kCPU, torch::kLong).contiguous().view({-1});
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

}  // namespace

ClassificationEvaluator::ClassificationEvaluator(int64_t positive_label)
    : positive_label_(positive_label) {}

void ClassificationEvaluator::add(const Predictions& predictions, const Batch& batch) {
  if (!batch.labels.defined()) return;  // a split without labels (test): nothing to score
  TORCH_CHECK(predictions.labels.defined(), "ClassificationEvaluator: task '", batch.task,
              "' needs Predictions.labels");
  const std::vector<int64_t> predicted = to_vector(predictions.labels);
  const std::vector<int64_t> target = to_vector(batch.labels);
  TORCH_CHECK(predicted.size() == target.size(), "ClassificationEvaluator: task '", batch.task,
              "': ", predicted.size(), " predictions for ", target.size(), " labels");
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] < 0) continue;  // unlabelled record
    predicted_.push_back(predicted[i]);
    target_.push_back(target[i]);
  }
}

nlohmann::json ClassificationEvaluator::compute() const {
  nlohmann::json out = {{"accuracy", accuracy(predicted_, target_)}};
  if (positive_label_ >= 0) out["f1"] = f1_score(predicted_, target_, positive_label_);
  return out;
}

void VqaEvaluator::add(const Predictions& predictions, const Batch& batch) {
  if (!batch.soft_labels.defined()) return;  // a split without answers (test): nothing to score
  TORCH_CHECK(predictions.labels.defined(),
              "VqaEvaluator: task '", batch.task,
              "' needs Predictions.labels");
  const int64_t n = predictions.labels.numel();
  if (n == 0) return;
  sum_ += vqa_accuracy(predictions.labels.view({-1}), batch.soft_labels) * static_cast<double>(n);
  count_ += n;
}

nlohmann::json VqaEvaluator::compute() const {
  return {{"vqa_accuracy", count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_)}};
}

DetectionEvaluator::DetectionEvaluator(DetectionApOptions options) : options_(options) {}

void DetectionEvaluator::add(const Predictions& predictions, const Batch& batch) {
  const int64_t n = static_cast<int64_t>(predictions.detections.size());
  TORCH_CHECK(n == batch.size && static_cast<int64_t>(batch.boxes.size()) == n &&
                  static_cast<int64_t>(batch.classes.size()) == n,
              "DetectionEvaluator: task '", batch.task, "': ", n, " images of detections, ",
              batch.boxes.size(), " of boxes, ", batch.classes.size(), " of classes, batch size ",
              batch.size);
  TORCH_CHECK(batch.orig_size.defined() && batch.orig_size.dim() == 2 &&
                  batch.orig_size.size(0) == n && batch.orig_size.size(1) == 2,
              "DetectionEvaluator: task '", batch.task, "' needs Batch.orig_size [", n, ", 2]");
  const torch::Tensor sizes = batch.orig_size.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* hw = sizes.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    detections_.push_back(predictions.detections[i]);
    ground_truth_.push_back(
        ground_truth_pixels(batch.boxes[i], batch.classes[i], hw[2 * i], hw[2 * i + 1]));
  }
}

nlohmann::json DetectionEvaluator::compute() const {
  const DetectionApResult r = detection_ap(detections_, ground_truth_, options_);
  return {{"ap", r.ap}, {"ap50", r.ap50}, {"ap75", r.ap75}};
}

const options::OptionSet<EvaluatorOptions>& detection_evaluator_option_set() {
  static const auto set = options::OptionSet<EvaluatorOptions>().add(
      UNITRAIN_FIELD(max_detections), "detections kept per image and category (COCO's maxDets)",
      options::at_least(1));
  return set;
}

std::vector<std::pair<std::string, double>> DetectionEvaluator::table_rows(
    const nlohmann::json& metrics, const LabelSpace&) const {
  if (!metrics.contains("ap50")) return {};
  return {{"ap50", 0.0}};
}

EvaluatorOptions evaluator_options_from_json(const nlohmann::json& j, const std::string& where) {
  EvaluatorOptions options;
  if (j.is_null()) return options;
  if (!j.is_object()) {
    throw ConfigError(fmt::format("{}: evaluator options must be an object, got {}", where,
                                  j.type_name()));
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "f1_positive") {
      if (!value.is_null() && !value.is_string() && !value.is_number_integer()) {
        throw ConfigError(fmt::format(
            "{}/f1_positive: expected a label name, an integer id or null, got {}", where,
            json_text(value)));
      }
      options.f1_positive = value;
    } else if (key == "max_detections") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1) {
        throw ConfigError(fmt::format("{}/max_detections: expected an integer >= 1, got {}",
                                      where, json_text(value)));
      }
      options.max_detections = value.get<int64_t>();
    } else {
      throw ConfigError(fmt::format(
          "{}: unknown evaluator option '{}'; valid options: f1_positive, max_detections",
          where, key));
    }
  }
  return options;
}

std::unique_ptr<Evaluator> make_evaluator(const LabelSpace& labels,
                                          const EvaluatorOptions& options) {
  if (labels.kind == "classification") {
    int64_t positive = -1;
    const nlohmann::json& f1 = options.f1_positive;
    if (f1.is_string()) {
      const auto it = std::find(labels.names.begin(), labels.names.end(), f1.get<std::string>());
      if (it == labels.names.end()) {
        throw ConfigError(fmt::format("f1_positive: '{}' is not a label; labels: {}",
                                      f1.get<std::string>(), fmt::join(labels.names, ", ")));
      }
      positive = it - labels.names.begin();
    } else if (f1.is_number_integer()) {
      positive = f1.get<int64_t>();
      const auto count = static_cast<int64_t>(labels.names.size());
      if (positive < 0 || (count > 0 && positive >= count)) {
        throw ConfigError(fmt::format("f1_positive: {} is not a label id, expected 0..{}",
                                      positive, count - 1));
      }
    }
    return std::make_unique<ClassificationEvaluator>(positive);
  }
  if (labels.kind == "vqa") return std::make_unique<VqaEvaluator>();
  if (labels.kind == "detection") {
    DetectionApOptions ap;
    ap.max_detections = options.max_detections;
    return std::make_unique<DetectionEvaluator>(ap);
  }
  throw ConfigError(fmt::format(
      "no evaluator for label space kind '{}'; valid kinds: classification, vqa, detection",
      labels.kind));
}

std::unique_ptr<Evaluator> make_evaluator(const LabelSpace& labels,
                                          const nlohmann::json& options,
                                          const std::string& where) {
  return make_evaluator(labels, evaluator_options_from_json(options, where));
}

}  // namespace unitrain

// Evaluation metrics and the evaluators that accumulate them over an evaluation pass.
//
// Every metric is a fraction in [0, 1] (not a percentage). The functions are exact
// re-implementations of the reference definitions:
//  - detection_ap: COCO bbox AP as pycocotools' COCOeval (stats[0] and stats[1]);
//  - vqa_answer_score: the official VQA evaluator's leave-one-out accuracy;
//  - accuracy, f1_score: the usual definitions (F1 of one positive class, as QQP).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/batch.h"
#include "unitrain/dataset.h"
#include "unitrain/options.h"

namespace unitrain {

// ---------------------------------------------------------------------------------
// Detection: COCO-style average precision.

// One ground-truth object in image pixels: (x0, y0) top-left, (x1, y1) bottom-right.
struct GroundTruthBox {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  int64_t label = 0;  // contiguous class id
};

struct DetectionApOptions {
  // Detections kept per image and category, highest scores first. pycocotools
  // applies maxDets per (image, category) pair; so do we. Default: 100.
  int64_t max_detections = 100;
};

struct DetectionApResult {
  double ap = 0;    // mean precision over IoU .50:.05:.95 and recall 0:.01:1 (stats[0])
  double ap50 = 0;  // the same at IoU .50 only (stats[1])
  double ap75 = 0;  // the same at IoU .75 only (stats[2])
  std::vector<double> ap_per_threshold;  // [10], one per IoU threshold
  int64_t num_categories = 0;            // categories with ground truth (averaged over)
  int64_t num_images = 0;
};

// IoU of two xyxy boxes (pixels, no +1), in double precision; 0 when the union is empty.
double box_iou(double ax0, double ay0, double ax1, double ay1, double bx0, double by0,
               double bx1, double by1);

// The IoU thresholds .50:.05:.95 (10) and recall points 0:.01:1 (101), computed
// bit-for-bit as numpy.linspace computes them in pycocotools (so a recall or IoU that
// lands exactly on a threshold is treated identically).
const std::vector<double>& coco_iou_thresholds();
const std::vector<double>& coco_recall_thresholds();

// COCO bbox AP. `detections[i]` and `ground_truth[i]` belong to image i (both vectors
// have one entry per image, same length). Per image and category: detections sorted by
// score (stable), at most max_detections kept, each matched greedily to the unmatched
// ground truth with the highest IoU >= t. Per category: all images' detections sorted
// by score (stable, image order breaks ties), precision made monotone from the right,
// sampled at the 101 recall points (0 beyond the highest recall reached); averaged over
// the categories that have ground truth. No crowd regions, no area ranges. AP is 0
// when no category has ground truth (pycocotools reports -1 there).
// NOTE: precision is tp / (tp + fp) without pycocotools' 2.2e-16 guard, so perfect
// detections give exactly 1.0 where pycocotools gives 1 - 2.2e-16.
DetectionApResult detection_ap(const std::vector<std::vector<Detection>>& detections,
                               const std::vector<std::vector<GroundTruthBox>>& ground_truth,
                               const DetectionApOptions& options = {});

// Ground truth of one batch item in pixels of the original image: boxes [N, 4]
// normalized cxcywh, classes [N], orig_size (h, w).
std::vector<GroundTruthBox> ground_truth_pixels(const torch::Tensor& boxes,
                                                const torch::Tensor& classes,
                                                int64_t orig_height, int64_t orig_width);

// ---------------------------------------------------------------------------------
// VQA.

// The official VQA accuracy of `answer` against the annotators' answers (normally 10):
// min(1, matches / 3) averaged over every leave-one-annotator-out subset. For 10
// annotators of whom k gave the answer this is 0, .3, .6, .9, 1 for k = 0..4+.
// Strings are compared as given: normalize them first (punctuation, digits, articles).
double vqa_answer_score(const std::string& answer,
                        const std::vector<std::string>& annotator_answers);

// Mean of soft_labels[i, predicted[i]]: the VQA accuracy when the soft label vectors
// hold vqa_answer_score of every answer in the vocabulary (as the vqa2 dataset builds
// them). Answers outside the vocabulary cannot be predicted and count 0.
// predicted [B] int64, soft_labels [B, C] float. 0 when B == 0.
double vqa_accuracy(const torch::Tensor& predicted, const torch::Tensor& soft_labels);

// ---------------------------------------------------------------------------------
// Classification.

// Fraction of predicted[i] == target[i]; 0 for empty input. Sizes must match.
double accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& target);

// F1 of class `positive`: 2 TP / (2 TP + FP + FN); 0 when that denominator is 0.
double f1_score(const std::vector<int64_t>& predicted, const std::vector<int64_t>& target,
                int64_t positive);

// ---------------------------------------------------------------------------------
// Evaluators (unitrain::Evaluator, sdk/include/unitrain/dataset.h).

// {"accuracy": a} or, with a positive class, {"accuracy": a, "f1": f}.
// Reads Predictions.labels against Batch.labels (entries with label < 0 are skipped, so
// are batches without labels).
class ClassificationEvaluator : public Evaluator {
 public:
  // positive_label: the class whose F1 is reported; -1 for none.
  explicit ClassificationEvaluator(int64_t positive_label = -1);
  void add(const Predictions& predictions, const Batch& batch) override;
  nlohmann::json compute() const override;
  std::string headline(const nlohmann::json&) const override { return "accuracy"; }

 private:
  int64_t positive_label_;
  std::vector<int64_t> predicted_;
  std::vector<int64_t> target_;
};

// {"vqa_accuracy": a}: Predictions.labels against Batch.soft_labels (see vqa_accuracy).
// Batches without soft labels (a test split) are not scored.
class VqaEvaluator : public Evaluator {
 public:
  void add(const Predictions& predictions, const Batch& batch) override;
  nlohmann::json compute() const override;
  std::string headline(const nlohmann::json&) const override { return "vqa_accuracy"; }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

// {"ap": ..., "ap50": ..., "ap75": ...}: Predictions.detections (pixels of the original
// image) against Batch.boxes / Batch.classes (normalized cxcywh, converted to pixels
// with Batch.orig_size). Each batch item is one image, in the order added.
class DetectionEvaluator : public Evaluator {
 public:
  explicit DetectionEvaluator(DetectionApOptions options = {});
  void add(const Predictions& predictions, const Batch& batch) override;
  nlohmann::json compute() const override;
  std::string headline(const nlohmann::json&) const override { return "ap"; }
  // AP50 under AP (chance 0).
  std::vector<std::pair<std::string, double>> table_rows(const nlohmann::json& metrics,
                                                         const LabelSpace& labels) const override;

 private:
  DetectionApOptions options_;
  std::vector<std::vector<Detection>> detections_;
  std::vector<std::vector<GroundTruthBox>> ground_truth_;
};

// Options of make_evaluator (JSON keys are the field names).
struct EvaluatorOptions {
  // Classification: the class whose F1 is also reported, by name (looked up in
  // LabelSpace::names) or id; null for none. QQP uses 1 ("duplicate"). Default: null.
  nlohmann::json f1_positive = nullptr;
  // Detection: detections kept per image and category. Default: 100.
  int64_t max_detections = 100;
};

// The "evaluator" block of a detection dataset (max_detections), declared once.
const options::OptionSet<EvaluatorOptions>& detection_evaluator_option_set();

// Reads EvaluatorOptions; unknown keys and wrong types throw ConfigError naming `where`.
EvaluatorOptions evaluator_options_from_json(const nlohmann::json& j, const std::string& where);

// The evaluator for a label space kind: "classification", "vqa" or "detection".
// Throws ConfigError for an unknown kind or an f1_positive that is not a label.
std::unique_ptr<Evaluator> make_evaluator(const LabelSpace& labels,
                                          const EvaluatorOptions& options = {});
// The same with options read by evaluator_options_from_json(options, where).
std::unique_ptr<Evaluator> make_evaluator(const LabelSpace& labels,
                                          const nlohmann::json& options,
                                          const std::string& where = "evaluator");

}  // namespace unitrain

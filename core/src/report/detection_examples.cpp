// Detection examples for the report: val records through the trained model, drawn by
// the page over the image (embedded as a data: URL, so the page stays one file).
#include "report/detection_examples.h"

#include <algorithm>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "infer/predictor.h"
#include "train/run_folder.h"
#include "unitrain/config.h"
#include "unitrain/data/image_pipeline.h"
#include "unitrain/dataset.h"
#include "unitrain/record_text.h"
#include "unitrain/registry.h"

namespace unitrain::report {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kMaxSide = 240;  // pixels of the longer side of an embedded image

std::string base64(const std::vector<uchar>& bytes) {
  static const char* kDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    for (int shift : {18, 12, 6, 0}) out += kDigits[(v >> shift) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = bytes[i] << 16;
    out += kDigits[(v >> 18) & 63];
    out += kDigits[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += kDigits[(v >> 18) & 63];
    out += kDigits[(v >> 12) & 63];
    out += kDigits[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// The sample's image ([3, H, W], normalized as `options` says) back to 8-bit pixels,
// shrunk to kMaxSide, as a JPEG data: URL.
std::string image_url(const torch::Tensor& image, const data::ImageTransformOptions& options) {
  const auto mean = torch::tensor(options.mean, torch::kFloat32).view({3, 1, 1});
  const auto std = torch::tensor(options.std, torch::kFloat32).view({3, 1, 1});
  const torch::Tensor pixels = ((image.to(torch::kFloat32) * std + mean) * 255.0)
                                   .clamp(0, 255)
                                   .to(torch::kUInt8)
                                   .permute({1, 2, 0})
                                   .contiguous();
  const int height = static_cast<int>(pixels.size(0)), width = static_cast<int>(pixels.size(1));
  cv::Mat rgb(height, width, CV_8UC3, pixels.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  const double scale = std::min(1.0, static_cast<double>(kMaxSide) / std::max(height, width));
  if (scale < 1.0) cv::resize(bgr, bgr, cv::Size(), scale, scale, cv::INTER_AREA);
  std::vector<uchar> jpeg;
  cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 85});
  return "data:image/jpeg;base64," + base64(jpeg);
}

std::string label_name(const LabelSpace& labels, int64_t id) {
  return id >= 0 && id < static_cast<int64_t>(labels.names.size()) ? labels.names[id]
                                                                     : std::to_string(id);
}

// The val split of `task` as the run's experiment configures it, and the image
// normalization its samples went through (the task's preparer says; ImageNet's when it
// does not).
struct ValSplit {
  std::shared_ptr<Dataset> dataset;
  data::ImageTransformOptions transform;
};

ValSplit open_val_split(const Experiment& experiment, const infer::Predictor& predictor,
                        const std::string& task) {
  const std::string pointer = "/tasks/" + task + "/dataset";
  json options = experiment.json.at(json::json_pointer(pointer));
  const std::string type = options.at("type").get<std::string>();
  ValSplit split;
  const InputPreparer* preparer = predictor.preparer(task);
  if (preparer && preparer->image_transform()) split.transform = *preparer->image_transform();
  options.erase("type");
  options.erase("init_from");
  options["split"] = experiment.json.at("tasks").at(task).at("val_split");
  split.dataset = Registry::global().create_as<Dataset>("dataset", type, options, experiment.where(pointer));
  return split;
}

// The first `count` records of the split (seed 0: val splits do not augment).
std::vector<Sample> first_samples(const Dataset& dataset, int64_t count) {
  std::vector<Sample> samples;
  for (int64_t i = 0; i < std::min(count, dataset.size()); ++i) samples.push_back(dataset.get(i, /*seed=*/0));
  return samples;
}

Experiment run_experiment(const fs::path& run_dir) {
  Experiment experiment = load_experiment(run_dir / train::kResolvedExperimentFile);
  validate_experiment(experiment, &Registry::global());
  return experiment;
}

}  // namespace

json detection_examples(const fs::path& run_dir, int64_t images_per_task, int64_t top_k) {
  const Experiment experiment = run_experiment(run_dir);
  const infer::Predictor predictor(experiment, run_dir);
  json out = json::object();
  for (const std::string& task : predictor.tasks()) {
    const LabelSpace& labels = predictor.labels(task);
    if (labels.kind != "detection") continue;
    const ValSplit split = open_val_split(experiment, predictor, task);
    const data::ImageTransformOptions& transform = split.transform;
    const std::vector<Sample> samples = first_samples(*split.dataset, images_per_task);
    if (samples.empty()) continue;
    const Predictions predictions = predictor.predict(task, samples);
    json images = json::array();
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample& s = samples[i];
      // Predicted boxes are in the file's pixels; true ones cxcywh, normalized.
      const double w = static_cast<double>(s.orig_width), h = static_cast<double>(s.orig_height);
      std::vector<Detection> detections = predictions.detections.at(i);
      std::sort(detections.begin(), detections.end(),
                [](const Detection& a, const Detection& b) { return a.score > b.score; });
      if (static_cast<int64_t>(detections.size()) > top_k) detections.resize(top_k);
      json predicted = json::array();
      for (const auto& d : detections) {
        predicted.push_back({d.x0 / w, d.y0 / h, d.x1 / w, d.y1 / h, label_name(labels, d.label), d.score});
      }
      json truth = json::array();
      const auto boxes = s.boxes.defined() ? s.boxes.to(torch::kFloat32).contiguous() : torch::empty({0, 4});
      for (int64_t b = 0; b < boxes.size(0); ++b) {
        const float cx = boxes[b][0].item<float>(), cy = boxes[b][1].item<float>(),
                    bw = boxes[b][2].item<float>(), bh = boxes[b][3].item<float>();
        truth.push_back({cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2,
                         label_name(labels, s.classes[b].item<int64_t>())});
      }
      images.push_back({{"image_id", s.image_id},
                        {"image", image_url(s.image, transform)},
                        {"width", s.image.size(2)},
                        {"height", s.image.size(1)},
                        {"truth", truth},
                        {"predicted", predicted}});
    }
    out[task] = images;
  }
  return out;
}

json answer_examples(const fs::path& run_dir, int64_t examples_per_task) {
  const Experiment experiment = run_experiment(run_dir);
  const infer::Predictor predictor(experiment, run_dir);
  json out = json::object();
  for (const std::string& task : predictor.tasks()) {
    const LabelSpace& labels = predictor.labels(task);
    if (labels.kind != "vqa" && labels.kind != "classification") continue;
    const ValSplit split = open_val_split(experiment, predictor, task);
    const std::vector<Sample> samples = first_samples(*split.dataset, examples_per_task);
    // Image and text classification only (VQA, visual entailment): a text-only or an
    // image-only task has nothing to show here.
    if (samples.empty() || !samples[0].image.defined() || samples[0].input_ids.empty()) continue;
    const auto* text = dynamic_cast<const RecordText*>(split.dataset.get());
    const Predictions predictions = predictor.predict(task, samples);
    const torch::Tensor scores = predictions.scores.to(torch::kCPU, torch::kFloat32);
    const torch::Tensor predicted = predictions.labels.to(torch::kCPU, torch::kInt64);
    json items = json::array();
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample& s = samples[i];
      const int64_t label = predicted[i].item<int64_t>();
      // True answers: VQA's soft scores (the share of annotators' answers, capped at 1),
      // best first; a classification label scores 1.
      json truth = json::array();
      if (s.soft_label.defined()) {
        const torch::Tensor soft = s.soft_label.to(torch::kFloat32);
        std::vector<std::pair<float, int64_t>> answers;
        for (int64_t a = 0; a < soft.size(0); ++a) {
          if (soft[a].item<float>() > 0) answers.emplace_back(soft[a].item<float>(), a);
        }
        std::stable_sort(answers.begin(), answers.end(),
                         [](const auto& x, const auto& y) { return x.first > y.first; });
        for (const auto& [score, a] : answers) truth.push_back({label_name(labels, a), score});
      } else if (s.label >= 0) {
        truth.push_back({label_name(labels, s.label), 1.0});
      }
      items.push_back({{"record_id", s.record_id},
                       {"image", image_url(s.image, split.transform)},
                       {"width", s.image.size(2)},
                       {"height", s.image.size(1)},
                       {"text", text ? json(text->record_text(static_cast<int64_t>(i))) : json(nullptr)},
                       {"predicted", {label_name(labels, label), scores[i][label].item<float>()}},
                       {"truth", truth}});
    }
    out[task] = items;
  }
  return out;
}

}  // namespace unitrain::report

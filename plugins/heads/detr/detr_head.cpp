#include "detr_head.h"

#include <cmath>
#include <algorithm>

#include "unitrain/errors.h"
#include "unitrain/nn/box_ops.h"

namespace unitrain::heads {
namespace {

std::string prefixed(const std::string& where, const std::string& message) {
  return where.empty() ? message : where + ": " + message;
}

}  // namespace

const char* const kDetrHeadDefaults = R"({
  "in_dim": 768,
  "num_classes": 91,
  "num_attributes": 0,
  "attribute_hidden_dim": 512,
  "attribute_class_embed_dim": 256,
  "cost_class": 1.0,
  "cost_bbox": 5.0,
  "cost_giou": 2.0,
  "ce_loss_coef": 1.0,
  "bbox_loss_coef": 5.0,
  "giou_loss_coef": 2.0,
  "attribute_loss_coef": 1.0,
  "eos_coef": 0.1,
  "aux_loss": true,
  "one_to_many_repeats": 1,
  "anchor_grid": false,
  "score_threshold": 0.0
})";

DetrHeadOptions detr_head_options_from_json(const nlohmann::json& json, const std::string& where) {
  auto defaults = nlohmann::json::parse(kDetrHeadDefaults);
  auto get = [&](const char* key) -> const nlohmann::json& {
    return json.contains(key) ? json.at(key) : defaults.at(key);
  };
  DetrHeadOptions o;
  o.in_dim(get("in_dim").get<int64_t>())
      .num_classes(get("num_classes").get<int64_t>())
      .num_attributes(get("num_attributes").get<int64_t>())
      .attribute_hidden_dim(get("attribute_hidden_dim").get<int64_t>())
      .attribute_class_embed_dim(get("attribute_class_embed_dim").get<int64_t>())
      .cost_class(get("cost_class").get<double>())
      .cost_bbox(get("cost_bbox").get<double>())
      .cost_giou(get("cost_giou").get<double>())
      .ce_loss_coef(get("ce_loss_coef").get<double>())
      .bbox_loss_coef(get("bbox_loss_coef").get<double>())
      .giou_loss_coef(get("giou_loss_coef").get<double>())
      .attribute_loss_coef(get("attribute_loss_coef").get<double>())
      .eos_coef(get("eos_coef").get<double>())
      .aux_loss(get("aux_loss").get<bool>())
      .one_to_many_repeats(get("one_to_many_repeats").get<int64_t>())
      .anchor_grid(get("anchor_grid").get<bool>())
      .score_threshold(get("score_threshold").get<double>());
  auto positive = [&](const char* key, int64_t value, int64_t minimum) {
    if (value < minimum) {
      throw ConfigError(prefixed(where, std::string(key) + " must be >= " +
                                            std::to_string(minimum) + ", got " +
                                            std::to_string(value)));
    }
  };
  positive("in_dim", o.in_dim(), 1);
  positive("num_classes", o.num_classes(), 1);
  positive("num_attributes", o.num_attributes(), 0);
  positive("attribute_hidden_dim", o.attribute_hidden_dim(), 1);
  positive("attribute_class_embed_dim", o.attribute_class_embed_dim(), 1);
  positive("one_to_many_repeats", o.one_to_many_repeats(), 1);
  if (o.eos_coef() < 0.0) {
    throw ConfigError(prefixed(where, "eos_coef must be >= 0, got " + std::to_string(o.eos_coef())));
  }
  return o;
}

nlohmann::json to_json(const DetrHeadOptions& o) {
  return {{"in_dim", o.in_dim()},
          {"num_classes", o.num_classes()},
          {"num_attributes", o.num_attributes()},
          {"attribute_hidden_dim", o.attribute_hidden_dim()},
          {"attribute_class_embed_dim", o.attribute_class_embed_dim()},
          {"cost_class", o.cost_class()},
          {"cost_bbox", o.cost_bbox()},
          {"cost_giou", o.cost_giou()},
          {"ce_loss_coef", o.ce_loss_coef()},
          {"bbox_loss_coef", o.bbox_loss_coef()},
          {"giou_loss_coef", o.giou_loss_coef()},
          {"attribute_loss_coef", o.attribute_loss_coef()},
          {"eos_coef", o.eos_coef()},
          {"aux_loss", o.aux_loss()},
          {"one_to_many_repeats", o.one_to_many_repeats()},
          {"anchor_grid", o.anchor_grid()},
          {"score_threshold", o.score_threshold()}};
}

DetrHeadImpl::DetrHeadImpl(DetrHeadOptions options) : options_(std::move(options)) { reset(); }

void DetrHeadImpl::reset() {
  const int64_t d = options_.in_dim();
  class_embed_ = register_module("class_embed", torch::nn::Linear(d, options_.num_classes() + 1));
  bbox_embed_ = register_module(
      "bbox_embed", torch::nn::ModuleList(torch::nn::Linear(d, d), torch::nn::Linear(d, d),
                                          torch::nn::Linear(d, 4)));
  if (options_.num_attributes() > 0) {
    const int64_t e = options_.attribute_class_embed_dim();
    attribute_class_embed_ = register_module(
        "attribute_class_embed", torch::nn::Embedding(options_.num_classes() + 1, e));
    attribute_fc1_ = register_module("attribute_fc1",
                                     torch::nn::Linear(d + e, options_.attribute_hidden_dim()));
    attribute_fc2_ = register_module(
        "attribute_fc2", torch::nn::Linear(options_.attribute_hidden_dim(), options_.num_attributes()));
  }
}

torch::Tensor DetrHeadImpl::attribute_logits(const torch::Tensor& hidden,
                                             const torch::Tensor& classes) {
  auto x = torch::cat({hidden, attribute_class_embed_(classes)}, -1);
  return attribute_fc2_(torch::relu(attribute_fc1_(x)));
}

torch::Tensor DetrHeadImpl::anchor_logits(int64_t queries, const torch::TensorOptions& options) {
  const auto grid = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(queries))));
  auto q = torch::arange(queries, torch::dtype(torch::kFloat64));
  auto cx = (torch::remainder(q, grid) + 0.5) / static_cast<double>(grid);
  auto cy = (torch::floor(q / static_cast<double>(grid)) + 0.5) / static_cast<double>(grid);
  auto centres = torch::stack({cx, cy}, -1);                   // [Q, 2] in (0, 1)
  auto logits = torch::log(centres) - torch::log1p(-centres);  // inverse sigmoid
  // Width and height keep their plain prediction (offset 0).
  return torch::cat({logits, torch::zeros({queries, 2}, logits.options())}, -1).to(options);
}

HeadOutput DetrHeadImpl::run(const torch::Tensor& decoder_out, const Batch& batch, bool with_loss) {
  TORCH_CHECK(decoder_out.dim() == 4 && decoder_out.size(3) == options_.in_dim(),
              "detr head: expected decoder output [L, B, Q, ", options_.in_dim(), "], got ",
              decoder_out.sizes());
  const int64_t layers = decoder_out.size(0);
  auto logits = class_embed_(decoder_out);  // [L, B, Q, C+1]
  auto x = decoder_out;
  for (size_t i = 0; i < bbox_embed_->size(); ++i) {
    x = bbox_embed_[i]->as<torch::nn::Linear>()->forward(x);
    if (i + 1 < bbox_embed_->size()) x = torch::relu(x);
  }
  if (options_.anchor_grid()) x = x + anchor_logits(decoder_out.size(2), x.options());
  auto boxes = x.sigmoid();  // [L, B, Q, 4] cxcywh

  HeadOutput out;
  out.outputs["pred_logits"] = logits[layers - 1];
  out.outputs["pred_boxes"] = boxes[layers - 1];
  const bool with_attributes = options_.num_attributes() > 0;
  if (with_attributes) {
    // At inference the attribute head is conditioned on the predicted class.
    auto predicted = logits[layers - 1]
                         .narrow(-1, 0, options_.num_classes())
                         .argmax(-1);  // [B, Q]
    out.outputs["pred_attributes"] = attribute_logits(decoder_out[layers - 1], predicted);
  }
  if (!with_loss) return out;

  check_targets(batch, decoder_out.size(1));
  std::vector<DetrLayerOutputs> per_layer;
  for (int64_t l = 0; l < layers; ++l) per_layer.push_back({logits[l], boxes[l], decoder_out[l]});
  add_losses(per_layer, batch, out.losses);
  return out;
}

Predictions DetrHeadImpl::predict(const HeadOutput& output, const Batch& batch) {
  torch::NoGradGuard no_grad;
  const auto& logits = output.outputs.at("pred_logits");  // [B, Q, C+1]
  const auto& boxes = output.outputs.at("pred_boxes");    // [B, Q, 4]
  auto prob = logits.softmax(-1).narrow(-1, 0, options_.num_classes());
  auto [scores, labels] = prob.max(-1);  // [B, Q]
  auto xyxy = nn::box_cxcywh_to_xyxy(boxes).to(torch::kCPU, torch::kFloat);
  scores = scores.to(torch::kCPU, torch::kFloat).contiguous();
  labels = labels.to(torch::kCPU).contiguous();

  // Boxes are normalized to the transformed image, a scaled copy of the original, so
  // they map onto the original by its size alone.
  torch::Tensor sizes = batch.orig_size.defined() ? batch.orig_size : batch.image_size;
  const int64_t b = logits.size(0), q = logits.size(1);
  Predictions predictions;
  predictions.labels = labels;
  predictions.scores = scores;
  predictions.detections.resize(b);
  for (int64_t i = 0; i < b; ++i) {
    float h = 1.0f, w = 1.0f;
    if (sizes.defined()) {
      auto hw = sizes[i].to(torch::kCPU);
      h = static_cast<float>(hw[0].item<double>());
      w = static_cast<float>(hw[1].item<double>());
    }
    auto box = xyxy[i].contiguous();
    const float* bp = box.data_ptr<float>();
    const float* sp = scores[i].data_ptr<float>();
    const int64_t* lp = labels[i].data_ptr<int64_t>();
    auto& out = predictions.detections[i];
    for (int64_t k = 0; k < q; ++k) {
      if (sp[k] < options_.score_threshold()) continue;
      out.push_back({bp[4 * k] * w, bp[4 * k + 1] * h, bp[4 * k + 2] * w, bp[4 * k + 3] * h,
                     sp[k], lp[k]});
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const Detection& a, const Detection& b) { return a.score > b.score; });
  }
  return predictions;
}

std::shared_ptr<Head> make_detr_head(const nlohmann::json& options) {
  return std::make_shared<DetrHeadImpl>(detr_head_options_from_json(options));
}

}  // namespace unitrain::heads

#include "detr_head.h"

#include <cmath>
#include <algorithm>

#include "unitrain/errors.h"
#include "unitrain/nn/box_ops.h"

namespace unitrain::heads {

const options::OptionSet<DetrHeadOptions>& detr_head_option_set() {
  using options::at_least;
  static const auto set =
      options::OptionSet<DetrHeadOptions>()
          .add(UNITRAIN_OPTION(in_dim),
               "width D of the decoder output (must equal the decoder's `d_model`)", at_least(1))
          .add(UNITRAIN_OPTION(num_classes),
               "object classes C (COCO 91 ids, or the dataset's contiguous count; VG 1600)",
               at_least(1))
          .add(UNITRAIN_OPTION(num_attributes),
               "attribute classes (VG 400); 0 disables the attribute head", at_least(0))
          .add(UNITRAIN_OPTION(attribute_hidden_dim), "hidden width of the attribute head",
               at_least(1))
          .add(UNITRAIN_OPTION(attribute_class_embed_dim),
               "width of the class embedding the attribute head reads", at_least(1))
          .add(UNITRAIN_OPTION(cost_class), "matching weight of −p(class)")
          .add(UNITRAIN_OPTION(cost_bbox), "matching weight of the L1 box distance")
          .add(UNITRAIN_OPTION(cost_giou), "matching weight of −GIoU")
          .add(UNITRAIN_OPTION(ce_loss_coef), "weight of `loss_ce`")
          .add(UNITRAIN_OPTION(bbox_loss_coef), "weight of `loss_bbox`")
          .add(UNITRAIN_OPTION(giou_loss_coef), "weight of `loss_giou`")
          .add(UNITRAIN_OPTION(attribute_loss_coef), "weight of `loss_attr`")
          .add(UNITRAIN_OPTION(eos_coef), "cross-entropy weight of the no-object class",
               at_least(0))
          .add(UNITRAIN_OPTION(aux_loss), "losses on every non-final decoder layer")
          .add(UNITRAIN_OPTION(one_to_many_repeats), "see above; 1 = off", at_least(1))
          .add(UNITRAIN_OPTION(anchor_grid),
               "query q predicts its centre as an offset from the q-th cell centre of a "
               "⌈√Q⌉×⌈√Q⌉ grid (reference points as in Anchor DETR / DAB-DETR, output "
               "side only); a convergence aid for short runs")
          .add(UNITRAIN_OPTION(score_threshold), "`predict()` drops detections scoring below it");
  return set;
}

DetrHeadOptions detr_head_options_from_json(const nlohmann::json& json, const std::string& where) {
  return detr_head_option_set().parse(json, where);
}

nlohmann::json to_json(const DetrHeadOptions& options) {
  return detr_head_option_set().to_json(options);
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

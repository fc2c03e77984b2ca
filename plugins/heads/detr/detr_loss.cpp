// DETR's set criterion (Carion et al. 2020, section 3.1 and appendix A.2), one decoder
// layer at a time: match, then classification, L1 and GIoU losses on matched pairs.
#include <sstream>

#include "detr_head.h"
#include "unitrain/errors.h"
#include "unitrain/nn/box_ops.h"

namespace unitrain::heads {
namespace {

std::string source_of(const Batch& batch, size_t i) {
  if (i < batch.sources.size() && !batch.sources[i].empty()) return batch.sources[i];
  return "image " + std::to_string(i) + " of the batch" +
         (batch.task.empty() ? "" : " (task " + batch.task + ")");
}

}  // namespace

void DetrHeadImpl::check_targets(const Batch& batch, int64_t batch_size) const {
  if (static_cast<int64_t>(batch.boxes.size()) != batch_size ||
      static_cast<int64_t>(batch.classes.size()) != batch_size) {
    std::ostringstream message;
    message << "detr head: the batch has " << batch_size << " images but " << batch.boxes.size()
            << " box tensors and " << batch.classes.size() << " class tensors"
            << (batch.task.empty() ? "" : " (task " + batch.task + ")");
    throw DataError(message.str());
  }
  for (int64_t i = 0; i < batch_size; ++i) {
    const auto& boxes = batch.boxes[i];
    const auto& classes = batch.classes[i];
    const int64_t n = classes.defined() ? classes.numel() : 0;
    if (!boxes.defined() || boxes.dim() != 2 || boxes.size(1) != 4 || boxes.size(0) != n) {
      std::ostringstream message;
      message << "detr head: " << source_of(batch, i) << ": expected boxes [" << n
              << ", 4] for " << n << " classes, got "
              << (boxes.defined() ? boxes.sizes() : torch::IntArrayRef{});
      throw DataError(message.str());
    }
    if (n > 0) {
      const int64_t low = classes.min().item<int64_t>();
      const int64_t high = classes.max().item<int64_t>();
      if (low < 0 || high >= options_.num_classes()) {
        throw DataError("detr head: " + source_of(batch, i) + ": class ids span [" +
                        std::to_string(low) + ", " + std::to_string(high) + "], expected [0, " +
                        std::to_string(options_.num_classes() - 1) + "]");
      }
    }
    if (options_.num_attributes() > 0) {
      if (static_cast<int64_t>(batch.attributes.size()) != batch_size ||
          !batch.attributes[i].defined() || batch.attributes[i].dim() != 2 ||
          batch.attributes[i].size(0) != n) {
        throw DataError("detr head: " + source_of(batch, i) +
                        ": num_attributes > 0 needs batch.attributes [N, K] (-1 padded) for every "
                        "image with one row per box");
      }
    }
  }
}

namespace {

// One layer's matching, flattened over the batch, and its local normalizer counts.
struct LayerMatch {
  DetrLayerOutputs layer;
  std::string suffix;         // "" for the last layer, "_0", "_1"... for the others
  bool with_attributes = false;
  torch::Tensor index;        // [K] flat query index i * Q + pred
  torch::Tensor classes;      // [K] matched target classes
  torch::Tensor boxes;        // [K, 4] matched target boxes
  torch::Tensor attributes;   // [K, slots] matched attribute ids (with_attributes)
  torch::Tensor class_target;  // [B * Q] matched class or "no object"
  torch::Tensor query_weight;  // [B * Q] the class weight of each query's target
  double box_count = 0.0;      // DETR's box normalizer before the mean over ranks
  double attribute_boxes = 0.0;  // matched boxes with at least one attribute
};

LayerMatch match_layer(const DetrLayerOutputs& layer, const Batch& batch,
                       const nn::HungarianMatcherOptions& matcher, int64_t num_classes,
                       double eos_coef, bool with_attributes) {
  const auto device = layer.logits.device();
  const int64_t b = layer.logits.size(0);
  const int64_t q = layer.logits.size(1);
  auto matches = nn::hungarian_match(layer.logits, layer.boxes, batch.classes, batch.boxes, matcher);

  std::vector<torch::Tensor> flat, target_classes, target_boxes, target_attributes;
  int64_t num_targets = 0;
  for (int64_t i = 0; i < b; ++i) {
    num_targets += batch.classes[i].numel();
    const auto& m = matches[i];
    flat.push_back(m.pred + i * q);
    target_classes.push_back(batch.classes[i].to(torch::kCPU, torch::kLong).index_select(0, m.target));
    target_boxes.push_back(batch.boxes[i].to(torch::kCPU, torch::kFloat).index_select(0, m.target));
    if (with_attributes) {
      target_attributes.push_back(
          batch.attributes[i].to(torch::kCPU, torch::kLong).index_select(0, m.target));
    }
  }
  LayerMatch match;
  match.layer = layer;
  match.with_attributes = with_attributes;
  match.index = torch::cat(flat).to(device);
  match.classes = torch::cat(target_classes).to(device);
  match.boxes = torch::cat(target_boxes);
  const int64_t matched = match.index.numel();

  // Classification over all queries; unmatched ones learn "no object" (index C).
  match.class_target = torch::full({b * q}, num_classes, torch::dtype(torch::kLong).device(device));
  match.class_target.index_put_({match.index}, match.classes);
  auto class_weight = torch::ones({num_classes + 1}, layer.logits.options());
  class_weight[num_classes] = eos_coef;
  match.query_weight = class_weight.index_select(0, match.class_target);

  // DETR divides the box losses by the number of target boxes (with repeated targets
  // every matched pair counts).
  match.box_count = static_cast<double>(matcher.target_repeats > 1 ? matched : num_targets);
  if (with_attributes) {
    match.attributes = torch::cat(target_attributes).to(device);  // [K, slots]
    match.attribute_boxes = match.attributes.ge(0).any(-1).sum().item<double>();
  }
  return match;
}

}  // namespace

void DetrHeadImpl::add_losses(const std::vector<DetrLayerOutputs>& layers, const Batch& batch,
                              std::map<std::string, torch::Tensor>& losses) {
  nn::HungarianMatcherOptions one_to_one;
  one_to_one.cost_class = options_.cost_class();
  one_to_one.cost_bbox = options_.cost_bbox();
  one_to_one.cost_giou = options_.cost_giou();
  const bool with_attributes = options_.num_attributes() > 0;
  const int64_t last = static_cast<int64_t>(layers.size()) - 1;

  // The last layer's losses, and with aux_loss those of every other layer (matched
  // with the one-to-many repeats, when set).
  std::vector<LayerMatch> matches;
  matches.push_back(match_layer(layers[last], batch, one_to_one, options_.num_classes(),
                                options_.eos_coef(), with_attributes));
  if (options_.aux_loss()) {
    auto aux = one_to_one;
    aux.target_repeats = options_.one_to_many_repeats();
    for (int64_t l = 0; l < last; ++l) {
      matches.push_back(match_layer(layers[l], batch, aux, options_.num_classes(),
                                    options_.eos_coef(), false));
      matches.back().suffix = "_" + std::to_string(l);
    }
  }

  // The normalizers span the global batch in data-parallel training: per layer the box
  // count, the sum of the query weights (the weighted cross-entropy's denominator) and
  // the number of boxes with attributes are means over the ranks' batches
  // (Batch::mean_over_ranks), so that the averaged gradient is the one of every rank's
  // images in one batch. One all-reduce for all layers.
  std::vector<double> local;
  for (const LayerMatch& m : matches) {
    local.insert(local.end(), {m.box_count, m.query_weight.sum().item<double>(), m.attribute_boxes});
  }
  const auto counts = batch.mean_over_ranks(torch::tensor(local, torch::kFloat64))
                          .to(torch::kCPU, torch::kFloat64)
                          .contiguous();
  const double* count = counts.data_ptr<double>();

  for (size_t k = 0; k < matches.size(); ++k) {
    const LayerMatch& m = matches[k];
    const std::string& suffix = m.suffix;
    const double normalizer = std::max(1.0, count[3 * k]);
    const double weight_sum = count[3 * k + 1];
    const int64_t b = m.layer.logits.size(0);
    const int64_t q = m.layer.logits.size(1);
    const int64_t num_classes = options_.num_classes();
    const int64_t matched = m.index.numel();

    auto per_query = torch::nn::functional::cross_entropy(
        m.layer.logits.reshape({b * q, num_classes + 1}), m.class_target,
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto loss_ce = (per_query * m.query_weight).sum() / weight_sum;
    losses["loss_ce" + suffix] = options_.ce_loss_coef() * loss_ce;

    // Box losses on matched pairs only.
    auto src_boxes = m.layer.boxes.reshape({b * q, 4}).index_select(0, m.index);  // [K, 4]
    auto tgt_boxes = m.boxes.to(src_boxes.device(), src_boxes.scalar_type());
    auto loss_bbox = (src_boxes - tgt_boxes).abs().sum() / normalizer;
    losses["loss_bbox" + suffix] = options_.bbox_loss_coef() * loss_bbox;
    auto giou = matched == 0 ? src_boxes.sum(-1)
                             : torch::diagonal(nn::generalized_box_iou(nn::box_cxcywh_to_xyxy(src_boxes),
                                                                       nn::box_cxcywh_to_xyxy(tgt_boxes)));
    auto loss_giou = (1 - giou).sum() / normalizer;
    losses["loss_giou" + suffix] = options_.giou_loss_coef() * loss_giou;

    if (m.with_attributes) {
      // Multi-label BCE per matched box over its attribute ids (-1 = padding), averaged
      // over attributes and over the boxes that have at least one attribute (over the
      // ranks). The head is conditioned on the target class during training.
      const int64_t a = options_.num_attributes();
      auto valid = m.attributes.ge(0);
      auto multi_hot = torch::zeros({matched, a + 1}, m.layer.logits.options());
      if (matched > 0) {
        multi_hot.scatter_(1, torch::where(valid, m.attributes, torch::full_like(m.attributes, a)), 1.0);
      }
      multi_hot = multi_hot.narrow(1, 0, a);
      auto hidden = m.layer.hidden.reshape({b * q, -1}).index_select(0, m.index);
      auto logits = attribute_logits(hidden, m.classes);  // [K, A]
      auto per_box = torch::nn::functional::binary_cross_entropy_with_logits(
                         logits, multi_hot,
                         torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(
                             torch::kNone))
                         .mean(-1);                              // [K]
      auto has_any = valid.any(-1).to(per_box.scalar_type());  // [K]
      auto loss_attr = (per_box * has_any).sum() / std::max(1.0, count[3 * k + 2]);
      losses["loss_attr" + suffix] = options_.attribute_loss_coef() * loss_attr;
    }
  }
}

}  // namespace unitrain::heads

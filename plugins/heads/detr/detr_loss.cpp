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

void DetrHeadImpl::add_layer_losses(const DetrLayerOutputs& layer, const Batch& batch,
                                    const nn::HungarianMatcherOptions& matcher,
                                    bool with_attributes, const std::string& suffix,
                                    std::map<std::string, torch::Tensor>& losses) {
  const auto device = layer.logits.device();
  const int64_t b = layer.logits.size(0);
  const int64_t q = layer.logits.size(1);
  const int64_t num_classes = options_.num_classes();

  auto matches = nn::hungarian_match(layer.logits, layer.boxes, batch.classes, batch.boxes, matcher);

  // Flat query index (i * Q + pred) and the matched targets, over the whole batch.
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
  auto index = torch::cat(flat).to(device);                // [K]
  auto matched_classes = torch::cat(target_classes).to(device);  // [K]
  const int64_t matched = index.numel();

  // Classification over all queries; unmatched ones learn "no object" (index C).
  auto class_target = torch::full({b * q}, num_classes, torch::dtype(torch::kLong).device(device));
  class_target.index_put_({index}, matched_classes);
  auto class_weight = torch::ones({num_classes + 1}, layer.logits.options());
  class_weight[num_classes] = options_.eos_coef();
  auto query_weight = class_weight.index_select(0, class_target);  // [B*Q]

  // The normalizers span the global batch in data-parallel training: DETR divides the
  // box losses by the number of target boxes (with repeated targets every matched pair
  // counts), and the weighted cross-entropy by the sum of the query weights; both are
  // means over the ranks' batches (Batch::mean_over_ranks), so that the averaged
  // gradient is the one of every rank's images in one batch. One all-reduce per layer.
  const double boxes = static_cast<double>(matcher.target_repeats > 1 ? matched : num_targets);
  auto counts = batch.mean_over_ranks(
      torch::stack({torch::tensor(boxes, torch::kFloat64),
                    query_weight.sum().detach().to(torch::kCPU, torch::kFloat64)}));
  const double normalizer = std::max(1.0, counts[0].item<double>());
  const double weight_sum = counts[1].item<double>();

  auto per_query = torch::nn::functional::cross_entropy(
      layer.logits.reshape({b * q, num_classes + 1}), class_target,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  auto loss_ce = (per_query * query_weight).sum() / weight_sum;
  losses["loss_ce" + suffix] = options_.ce_loss_coef() * loss_ce;

  // Box losses on matched pairs only.
  auto src_boxes = layer.boxes.reshape({b * q, 4}).index_select(0, index);  // [K, 4]
  auto tgt_boxes = torch::cat(target_boxes).to(device, src_boxes.scalar_type());
  auto loss_bbox = (src_boxes - tgt_boxes).abs().sum() / normalizer;
  losses["loss_bbox" + suffix] = options_.bbox_loss_coef() * loss_bbox;
  auto giou = matched == 0 ? src_boxes.sum(-1)
                           : torch::diagonal(nn::generalized_box_iou(nn::box_cxcywh_to_xyxy(src_boxes),
                                                                     nn::box_cxcywh_to_xyxy(tgt_boxes)));
  auto loss_giou = (1 - giou).sum() / normalizer;
  losses["loss_giou" + suffix] = options_.giou_loss_coef() * loss_giou;

  if (with_attributes) {
    // Multi-label BCE per matched box over its attribute ids (-1 = padding), averaged
    // over attributes and over the boxes that have at least one attribute. The head is
    // conditioned on the target class during training.
    auto ids = torch::cat(target_attributes).to(device);  // [K, slots]
    const int64_t a = options_.num_attributes();
    auto valid = ids.ge(0);
    auto multi_hot = torch::zeros({matched, a + 1}, layer.logits.options());
    if (matched > 0) {
      multi_hot.scatter_(1, torch::where(valid, ids, torch::full_like(ids, a)), 1.0);
    }
    multi_hot = multi_hot.narrow(1, 0, a);
    auto hidden = layer.hidden.reshape({b * q, -1}).index_select(0, index);
    auto logits = attribute_logits(hidden, matched_classes);  // [K, A]
    auto per_box = torch::nn::functional::binary_cross_entropy_with_logits(
                       logits, multi_hot,
                       torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(
                           torch::kNone))
                       .mean(-1);                                  // [K]
    auto has_any = valid.any(-1).to(per_box.scalar_type());        // [K]
    auto loss_attr = (per_box * has_any).sum() / has_any.sum().clamp_min(1.0);
    losses["loss_attr" + suffix] = options_.attribute_loss_coef() * loss_attr;
  }
}

}  // namespace unitrain::heads

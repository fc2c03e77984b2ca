// DETR's bipartite matcher: assigns each target box of an image to one prediction so
// that the total matching cost is minimal (Carion et al. 2020, section 3.1).
//
//   cost[q, t] = cost_class * (-p_q(class_t))
//              + cost_bbox  * |box_q - box_t|_1          (cxcywh, normalized)
//              + cost_giou  * (-GIoU(box_q, box_t))
//
// Each image's [Q, N_i] cost block is computed on the predictions' device; the blocks
// cross to the CPU together and each image is solved exactly with solve_assignment().
#pragma once

#include <vector>

#include <torch/torch.h>

namespace unitrain::nn {

struct HungarianMatcherOptions {
  // Weight of the classification cost (-softmax probability of the target class).
  double cost_class = 1.0;
  // Weight of the L1 distance between cxcywh boxes.
  double cost_bbox = 5.0;
  // Weight of the negative generalized IoU.
  double cost_giou = 2.0;
  // One-to-many matching: every target takes part `target_repeats` times, so up to
  // that many predictions are matched to it (H-DETR's one-to-many assignment). 1 is
  // DETR's one-to-one matching. Repeats are capped so that targets never outnumber
  // the queries.
  int64_t target_repeats = 1;
};

// Matched pairs of one image, both [K] int64 on the CPU, sorted by prediction index.
// `target` indexes the image's own targets (never a repeat copy).
struct MatchIndices {
  torch::Tensor pred;
  torch::Tensor target;
};

// pred_logits [B, Q, C+1] (last class = no object), pred_boxes [B, Q, 4] cxcywh;
// classes: B x [N_i] int64, boxes: B x [N_i, 4] cxcywh normalized.
// Returns B matchings with K_i = min(Q, N_i * repeats) pairs. No gradient flows.
std::vector<MatchIndices> hungarian_match(const torch::Tensor& pred_logits,
                                          const torch::Tensor& pred_boxes,
                                          const std::vector<torch::Tensor>& classes,
                                          const std::vector<torch::Tensor>& boxes,
                                          const HungarianMatcherOptions& options = {});

}  // namespace unitrain::nn

// Bounding-box utilities on tensors whose last dimension holds 4 coordinates.
// Two layouts: cxcywh (centre x, centre y, width, height; what DETR predicts) and
// xyxy (x0, y0, x1, y1). Pairwise functions take xyxy boxes [N, 4] and [M, 4] and
// return [N, M]. Every function is differentiable.
#pragma once

#include <torch/torch.h>

namespace unitrain::nn {

// [..., 4] cxcywh -> [..., 4] xyxy.
torch::Tensor box_cxcywh_to_xyxy(const torch::Tensor& boxes);
// [..., 4] xyxy -> [..., 4] cxcywh.
torch::Tensor box_xyxy_to_cxcywh(const torch::Tensor& boxes);

// [..., 4] xyxy -> [...]: (x1 - x0) * (y1 - y0). Degenerate boxes (x1 < x0) give a
// negative area: callers validate boxes where it matters.
torch::Tensor box_area(const torch::Tensor& boxes);

// Intersection over union [N, M] of xyxy boxes a [N, 4] and b [M, 4]. A pair whose
// union is empty (two zero-area boxes) gets IoU 0 instead of NaN.
torch::Tensor box_iou(const torch::Tensor& a, const torch::Tensor& b);

// Generalized IoU (Rezatofighi et al. 2019) [N, M]: IoU - (|C| - |A u B|) / |C| with C
// the smallest box enclosing both. In [-1, 1]; 1 for identical boxes. Boxes must be
// well formed (x1 >= x0, y1 >= y0).
torch::Tensor generalized_box_iou(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace unitrain::nn

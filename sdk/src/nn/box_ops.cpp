#include "unitrain/nn/box_ops.h"

namespace unitrain::nn {
namespace {

// Keeps divisions by an empty union / enclosure finite; far below any real box area.
constexpr double kAreaEps = 1e-12;

void check_boxes(const torch::Tensor& boxes, const char* what) {
  TORCH_CHECK(boxes.dim() >= 1 && boxes.size(-1) == 4, what,
              ": expected boxes with 4 coordinates in the last dimension, got shape ",
              boxes.sizes());
}

void check_pairwise(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  TORCH_CHECK(a.dim() == 2 && a.size(1) == 4 && b.dim() == 2 && b.size(1) == 4, what,
              ": expected [N, 4] and [M, 4] boxes, got ", a.sizes(), " and ", b.sizes());
}

// Intersection and union areas, both [N, M].
std::pair<torch::Tensor, torch::Tensor> intersection_and_union(const torch::Tensor& a,
                                                               const torch::Tensor& b) {
  auto area_a = box_area(a);  // [N]
  auto area_b = box_area(b);  // [M]
  using torch::indexing::None;
  using torch::indexing::Slice;
  auto top_left = torch::max(a.index({Slice(), None, Slice(0, 2)}), b.index({Slice(), Slice(0, 2)}));
  auto bottom_right =
      torch::min(a.index({Slice(), None, Slice(2, 4)}), b.index({Slice(), Slice(2, 4)}));
  auto wh = (bottom_right - top_left).clamp_min(0);  // [N, M, 2]
  auto inter = wh.select(-1, 0) * wh.select(-1, 1);
  auto uni = area_a.unsqueeze(1) + area_b.unsqueeze(0) - inter;
  return {inter, uni};
}

}  // namespace

torch::Tensor box_cxcywh_to_xyxy(const torch::Tensor& boxes) {
  check_boxes(boxes, "box_cxcywh_to_xyxy");
  auto c = boxes.unbind(-1);
  auto half_w = 0.5 * c[2];
  auto half_h = 0.5 * c[3];
  return torch::stack({c[0] - half_w, c[1] - half_h, c[0] + half_w, c[1] + half_h}, -1);
}

torch::Tensor box_xyxy_to_cxcywh(const torch::Tensor& boxes) {
  check_boxes(boxes, "box_xyxy_to_cxcywh");
  auto c = boxes.unbind(-1);
  return torch::stack({(c[0] + c[2]) * 0.5, (c[1] + c[3]) * 0.5, c[2] - c[0], c[3] - c[1]}, -1);
}

torch::Tensor box_area(const torch::Tensor& boxes) {
  check_boxes(boxes, "box_area");
  auto c = boxes.unbind(-1);
  return (c[2] - c[0]) * (c[3] - c[1]);
}

torch::Tensor box_iou(const torch::Tensor& a, const torch::Tensor& b) {
  check_pairwise(a, b, "box_iou");
  auto [inter, uni] = intersection_and_union(a, b);
  return inter / uni.clamp_min(kAreaEps);
}

torch::Tensor generalized_box_iou(const torch::Tensor& a, const torch::Tensor& b) {
  check_pairwise(a, b, "generalized_box_iou");
  using torch::indexing::None;
  using torch::indexing::Slice;
  auto [inter, uni] = intersection_and_union(a, b);
  auto iou = inter / uni.clamp_min(kAreaEps);
  auto top_left = torch::min(a.index({Slice(), None, Slice(0, 2)}), b.index({Slice(), Slice(0, 2)}));
  auto bottom_right =
      torch::max(a.index({Slice(), None, Slice(2, 4)}), b.index({Slice(), Slice(2, 4)}));
  auto wh = (bottom_right - top_left).clamp_min(0);
  auto enclosing = wh.select(-1, 0) * wh.select(-1, 1);  // [N, M]
  return iou - (enclosing - uni) / enclosing.clamp_min(kAreaEps);
}

}  // namespace unitrain::nn

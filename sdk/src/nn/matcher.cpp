#include "unitrain/nn/matcher.h"

#include <algorithm>

#include "unitrain/nn/box_ops.h"
#include "unitrain/nn/hungarian.h"

namespace unitrain::nn {

std::vector<MatchIndices> hungarian_match(const torch::Tensor& pred_logits,
                                          const torch::Tensor& pred_boxes,
                                          const std::vector<torch::Tensor>& classes,
                                          const std::vector<torch::Tensor>& boxes,
                                          const HungarianMatcherOptions& options) {
  TORCH_CHECK(pred_logits.dim() == 3 && pred_boxes.dim() == 3 && pred_boxes.size(2) == 4 &&
                  pred_logits.size(0) == pred_boxes.size(0) &&
                  pred_logits.size(1) == pred_boxes.size(1),
              "hungarian_match: expected pred_logits [B, Q, C+1] and pred_boxes [B, Q, 4], got ",
              pred_logits.sizes(), " and ", pred_boxes.sizes());
  const int64_t batch = pred_logits.size(0);
  const int64_t queries = pred_logits.size(1);
  TORCH_CHECK(static_cast<int64_t>(classes.size()) == batch &&
                  static_cast<int64_t>(boxes.size()) == batch,
              "hungarian_match: ", batch, " images but ", classes.size(), " class lists and ",
              boxes.size(), " box lists");
  TORCH_CHECK(options.target_repeats >= 1, "hungarian_match: target_repeats must be >= 1, got ",
              options.target_repeats);

  torch::NoGradGuard no_grad;
  // Per image: how many copies of its targets take part, and their original indices.
  std::vector<torch::Tensor> repeated_classes, repeated_boxes;
  std::vector<int64_t> sizes, originals;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t n = classes[i].numel();
    TORCH_CHECK(boxes[i].dim() == 2 && boxes[i].size(0) == n && boxes[i].size(1) == 4,
                "hungarian_match: image ", i, " has ", n, " classes but boxes of shape ",
                boxes[i].sizes());
    const int64_t repeats = n == 0 ? 1 : std::max<int64_t>(1, std::min(options.target_repeats, queries / n));
    repeated_classes.push_back(classes[i].reshape({-1}).repeat({repeats}));
    repeated_boxes.push_back(boxes[i].repeat({repeats, 1}));
    sizes.push_back(n * repeats);
    originals.push_back(n);
  }

  // Cost blocks [Q, t_i] per image, side by side in one [Q, T] matrix that crosses to
  // the CPU once. (DETR computes the full [B*Q, T] matrix and keeps its diagonal
  // blocks; this is B times less work.)
  auto prob = pred_logits.softmax(-1);  // [B, Q, C+1]
  std::vector<torch::Tensor> blocks;
  for (int64_t i = 0; i < batch; ++i) {
    if (sizes[i] == 0) continue;
    auto target_classes = repeated_classes[i].to(pred_logits.device(), torch::kLong);
    auto target_boxes = repeated_boxes[i].to(pred_boxes.device(), pred_boxes.scalar_type());
    auto out_boxes = pred_boxes[i];  // [Q, 4]
    auto l1 = (out_boxes.unsqueeze(1) - target_boxes.unsqueeze(0)).abs().sum(-1);  // [Q, t]
    auto giou = generalized_box_iou(box_cxcywh_to_xyxy(out_boxes), box_cxcywh_to_xyxy(target_boxes));
    blocks.push_back(options.cost_bbox * l1 -
                     options.cost_class * prob[i].index_select(1, target_classes) -
                     options.cost_giou * giou);
  }
  torch::Tensor cost;
  if (!blocks.empty()) cost = torch::cat(blocks, 1).to(torch::kCPU, torch::kDouble).contiguous();

  std::vector<MatchIndices> result;
  result.reserve(batch);
  int64_t offset = 0;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t t = sizes[i];
    if (t == 0) {
      result.push_back({torch::empty({0}, torch::kLong), torch::empty({0}, torch::kLong)});
      continue;
    }
    auto block = cost.narrow(1, offset, t).contiguous();  // [Q, t]
    offset += t;
    auto pairs = solve_assignment(block.data_ptr<double>(), queries, t);
    auto pred = torch::empty({static_cast<int64_t>(pairs.size())}, torch::kLong);
    auto target = torch::empty_like(pred);
    auto* p = pred.data_ptr<int64_t>();
    auto* g = target.data_ptr<int64_t>();
    for (size_t k = 0; k < pairs.size(); ++k) {
      p[k] = pairs[k].row;
      g[k] = pairs[k].col % originals[i];
    }
    result.push_back({pred, target});
  }
  return result;
}

}  // namespace unitrain::nn

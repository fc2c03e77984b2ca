#include "unitrain/nn/box_ops.h"

#include <gtest/gtest.h>

namespace unitrain::nn {
namespace {

torch::Tensor t(std::vector<float> values, int64_t rows) {
  return torch::tensor(values).reshape({rows, 4});
}

TEST(BoxOps, CxcywhToXyxyAndBack) {
  auto cxcywh = t({0.5f, 0.5f, 0.2f, 0.4f, 0.1f, 0.2f, 0.2f, 0.2f}, 2);
  auto xyxy = box_cxcywh_to_xyxy(cxcywh);
  EXPECT_TRUE(torch::allclose(xyxy, t({0.4f, 0.3f, 0.6f, 0.7f, 0.0f, 0.1f, 0.2f, 0.3f}, 2)));
  EXPECT_TRUE(torch::allclose(box_xyxy_to_cxcywh(xyxy), cxcywh));
}

TEST(BoxOps, ConversionKeepsLeadingDimensions) {
  auto boxes = torch::rand({2, 3, 4});
  EXPECT_EQ(box_cxcywh_to_xyxy(boxes).sizes(), boxes.sizes());
  EXPECT_THROW(box_cxcywh_to_xyxy(torch::rand({3, 5})), c10::Error);
}

TEST(BoxOps, Area) {
  auto area = box_area(t({0, 0, 2, 3, 1, 1, 2, 2}, 2));
  EXPECT_TRUE(torch::equal(area, torch::tensor({6.0f, 1.0f})));
}

TEST(BoxOps, IouHandComputed) {
  // a = [0,0,2,2] (area 4); b0 = [1,1,3,3] overlaps 1 -> 1/7; b1 = a -> 1;
  // b2 = [3,3,4,4] disjoint -> 0; b3 = [0,0,1,2] inside a -> 2/4.
  auto a = t({0, 0, 2, 2}, 1);
  auto b = t({1, 1, 3, 3, 0, 0, 2, 2, 3, 3, 4, 4, 0, 0, 1, 2}, 4);
  auto iou = box_iou(a, b);
  ASSERT_EQ(iou.sizes(), (std::vector<int64_t>{1, 4}));
  EXPECT_TRUE(torch::allclose(iou, torch::tensor({{1.0f / 7, 1.0f, 0.0f, 0.5f}})));
}

TEST(BoxOps, GeneralizedIouHandComputed) {
  // b0: enclosing [0,0,3,3] = 9, union 7 -> 1/7 - 2/9.
  // b1: identical -> 1.
  // b2: enclosing [0,0,4,4] = 16, union 5, iou 0 -> -11/16.
  // b3: contained, enclosing = a -> 0.5.
  auto a = t({0, 0, 2, 2}, 1);
  auto b = t({1, 1, 3, 3, 0, 0, 2, 2, 3, 3, 4, 4, 0, 0, 1, 2}, 4);
  auto giou = generalized_box_iou(a, b);
  auto expected = torch::tensor({{1.0f / 7 - 2.0f / 9, 1.0f, -11.0f / 16, 0.5f}});
  EXPECT_TRUE(torch::allclose(giou, expected)) << giou;
}

TEST(BoxOps, GeneralizedIouIsPairwiseAndSymmetric) {
  auto a = box_cxcywh_to_xyxy(torch::rand({5, 4}) * 0.5 + 0.1);
  auto b = box_cxcywh_to_xyxy(torch::rand({3, 4}) * 0.5 + 0.1);
  auto ab = generalized_box_iou(a, b);
  ASSERT_EQ(ab.sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_TRUE(torch::allclose(ab, generalized_box_iou(b, a).t()));
  EXPECT_TRUE(ab.le(1.0).all().item<bool>());
  EXPECT_TRUE(ab.ge(-1.0).all().item<bool>());
  EXPECT_TRUE(torch::allclose(generalized_box_iou(a, a).diagonal(), torch::ones({5})));
}

TEST(BoxOps, ZeroAreaBoxesStayFinite) {
  auto point = t({1, 1, 1, 1}, 1);
  EXPECT_TRUE(torch::isfinite(box_iou(point, point)).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(generalized_box_iou(point, point)).all().item<bool>());
}

TEST(BoxOps, GeneralizedIouHasGradient) {
  auto a = t({0.1f, 0.1f, 0.5f, 0.5f}, 1).requires_grad_();
  auto b = t({0.3f, 0.3f, 0.8f, 0.9f}, 1);
  generalized_box_iou(a, b).sum().backward();
  ASSERT_TRUE(a.grad().defined());
  // Growing a's far corner toward b raises GIoU.
  EXPECT_GT(a.grad()[0][2].item<float>(), 0.0f);
  EXPECT_GT(a.grad()[0][3].item<float>(), 0.0f);
}

}  // namespace
}  // namespace unitrain::nn

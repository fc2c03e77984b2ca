// nn::conv2d: the im2col + sgemm path against torch::conv2d (values and gradients), the
// rule that picks it, and per-image results independent of the batch.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "unitrain/nn/conv.h"

namespace nn = unitrain::nn;

namespace {

nn::Conv2dGeometry geometry(int64_t stride, int64_t padding, int64_t dilation = 1) {
  nn::Conv2dGeometry g;
  g.stride = {stride, stride};
  g.padding = {padding, padding};
  g.dilation = {dilation, dilation};
  return g;
}

// Largest |a - b| relative to the largest |b|.
double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

struct Case {
  const char* name;
  std::vector<int64_t> input, weight;
  nn::Conv2dGeometry geometry;
  bool input_grad;
};

}  // namespace

// Every case takes the sgemm path; output, input gradient, weight gradient and bias
// gradient equal torch::conv2d's to float32 rounding.
TEST(Conv2d, GemmPathMatchesTorchConv2dWithGradients) {
  const std::vector<Case> cases = {
      {"ResNet-18 layer4 3x3 on 2x2", {4, 512, 2, 2}, {512, 512, 3, 3}, geometry(1, 1), true},
      {"layer4 entry 3x3/2 from 4x4", {3, 256, 4, 4}, {512, 256, 3, 3}, geometry(2, 1), true},
      {"1x1/2 projection", {3, 256, 4, 4}, {512, 256, 1, 1}, geometry(2, 0), true},
      {"non-square 3x4 map", {2, 512, 3, 4}, {64, 512, 3, 3}, geometry(1, 1), true},
      {"dilation 2", {2, 512, 4, 4}, {32, 512, 3, 3}, geometry(1, 2, 2), true},
      {"one image, input without gradient", {1, 512, 2, 2}, {16, 512, 3, 3}, geometry(1, 1),
       false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    torch::manual_seed(3);
    auto x = torch::randn(c.input, torch::requires_grad(c.input_grad));
    auto w = torch::randn(c.weight, torch::requires_grad());
    auto b = torch::randn({c.weight[0]}, torch::requires_grad());
    ASSERT_TRUE(nn::use_gemm_conv2d(x, w, c.geometry));

    auto expected = torch::conv2d(x, w, b, c.geometry.stride, c.geometry.padding,
                                  c.geometry.dilation);
    auto got = nn::conv2d(x, w, b, c.geometry);
    ASSERT_EQ(got.sizes(), expected.sizes());
    EXPECT_LT(relative_difference(got, expected), 1e-5);

    auto dy = torch::randn_like(expected);
    std::vector<torch::Tensor> leaves = {w, b};
    if (c.input_grad) leaves.push_back(x);
    auto want = torch::autograd::grad({expected}, leaves, {dy});
    auto have = torch::autograd::grad({got}, leaves, {dy});
    for (size_t i = 0; i < leaves.size(); ++i) {
      SCOPED_TRACE("gradient " + std::to_string(i));
      ASSERT_TRUE(have[i].defined());
      EXPECT_EQ(have[i].sizes(), want[i].sizes());
      EXPECT_LT(relative_difference(have[i], want[i]), 1e-5);
    }
  }
}

// The sgemm path for small maps with many input channels on CPU float32; torch::conv2d
// for everything else.
TEST(Conv2d, PicksTheGemmPathBySizeChannelsDeviceAndDtype) {
  auto x = [](std::vector<int64_t> s) { return torch::zeros(s); };
  auto w = [](std::vector<int64_t> s) { return torch::zeros(s); };
  // ResNet-18 on 64 px images: layer4 (2x2 outputs) yes, layer3 (4x4 of 256 x 9) no.
  EXPECT_TRUE(nn::use_gemm_conv2d(x({16, 512, 2, 2}), w({512, 512, 3, 3}), geometry(1, 1)));
  EXPECT_TRUE(nn::use_gemm_conv2d(x({16, 256, 4, 4}), w({512, 256, 3, 3}), geometry(2, 1)));
  EXPECT_FALSE(nn::use_gemm_conv2d(x({16, 256, 4, 4}), w({256, 256, 3, 3}), geometry(1, 1)));
  // 4x4 outputs with a reduction of 512 x 9 = 4608 yes; 6x6 no.
  EXPECT_TRUE(nn::use_gemm_conv2d(x({16, 512, 4, 4}), w({512, 512, 3, 3}), geometry(1, 1)));
  EXPECT_FALSE(nn::use_gemm_conv2d(x({16, 512, 6, 6}), w({512, 512, 3, 3}), geometry(1, 1)));
  // Large maps (the stem on 64 px images) stay on torch::conv2d.
  EXPECT_FALSE(nn::use_gemm_conv2d(x({16, 3, 64, 64}), w({64, 3, 7, 7}), geometry(2, 3)));
  // Other dtypes, mismatched channels, empty batches.
  EXPECT_FALSE(nn::use_gemm_conv2d(x({16, 512, 2, 2}).to(torch::kDouble),
                                   w({512, 512, 3, 3}).to(torch::kDouble), geometry(1, 1)));
  EXPECT_FALSE(nn::use_gemm_conv2d(x({16, 512, 2, 2}).to(torch::kBFloat16),
                                   w({512, 512, 3, 3}).to(torch::kBFloat16), geometry(1, 1)));
  EXPECT_FALSE(nn::use_gemm_conv2d(x({16, 256, 2, 2}), w({512, 512, 3, 3}), geometry(1, 1)));
  {
    // Under CPU autocast, torch::conv2d (which then runs in bfloat16), with gradients.
    at::autocast::set_cpu_enabled(true);
    auto input = torch::randn({2, 512, 2, 2}, torch::requires_grad());
    auto kernel = torch::randn({8, 512, 3, 3}, torch::requires_grad());
    EXPECT_FALSE(nn::use_gemm_conv2d(input, kernel, geometry(1, 1)));
    auto y = nn::conv2d(input, kernel, {}, geometry(1, 1));
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    y.sum().backward();
    EXPECT_EQ(kernel.grad().sizes(), kernel.sizes());
  }
  EXPECT_FALSE(nn::use_gemm_conv2d(x({0, 512, 2, 2}), w({512, 512, 3, 3}), geometry(1, 1)));
  // Off the sgemm path, conv2d is torch::conv2d exactly.
  torch::manual_seed(4);
  auto big = torch::randn({2, 8, 12, 12});
  auto kernel = torch::randn({4, 8, 3, 3});
  EXPECT_TRUE(torch::equal(nn::conv2d(big, kernel, {}, geometry(1, 1)),
                           torch::conv2d(big, kernel, {}, 1, 1)));
  // And its errors are torch::conv2d's.
  EXPECT_THROW(nn::conv2d(torch::zeros({2, 7, 2, 2}), torch::zeros({4, 8, 3, 3}), {},
                          geometry(1, 1)),
               c10::Error);
}

// The output may be modified in place, as torch::conv2d's may (mul_, relu_), and the
// gradient flows through that.
TEST(Conv2d, OutputCanBeModifiedInPlace) {
  torch::manual_seed(6);
  auto x = torch::randn({3, 512, 2, 2}, torch::requires_grad());
  auto w = torch::randn({16, 512, 3, 3}, torch::requires_grad());
  ASSERT_TRUE(nn::use_gemm_conv2d(x, w, geometry(1, 1)));
  auto ours = nn::conv2d(x, w, {}, geometry(1, 1)).mul_(2.0).relu_();
  auto theirs = torch::conv2d(x, w, {}, 1, 1).mul_(2.0).relu_();
  EXPECT_LT(relative_difference(ours, theirs), 1e-5);
  auto dy = torch::randn_like(theirs);
  auto want = torch::autograd::grad({theirs}, {x, w}, {dy});
  auto have = torch::autograd::grad({ours}, {x, w}, {dy});
  EXPECT_LT(relative_difference(have[0], want[0]), 1e-5);
  EXPECT_LT(relative_difference(have[1], want[1]), 1e-5);
}

// Without gradients (NoGradGuard) and in inference mode the sgemm path saves nothing
// for backward and gives the same values.
TEST(Conv2d, RunsWithoutGradientAndInInferenceMode) {
  torch::manual_seed(7);
  auto x = torch::randn({2, 512, 2, 2});
  auto w = torch::randn({8, 512, 3, 3}, torch::requires_grad());
  ASSERT_TRUE(nn::use_gemm_conv2d(x, w, geometry(1, 1)));
  const auto expected = torch::conv2d(x, w, {}, 1, 1).detach();
  {
    torch::NoGradGuard no_grad;
    auto y = nn::conv2d(x, w, {}, geometry(1, 1));
    EXPECT_FALSE(y.requires_grad());
    EXPECT_LT(relative_difference(y, expected), 1e-5);
  }
  {
    c10::InferenceMode inference;
    auto y = nn::conv2d(x, w.detach(), {}, geometry(1, 1));
    EXPECT_TRUE(y.is_inference());
    EXPECT_LT(relative_difference(y, expected), 1e-5);
  }
}

// An image's output does not depend on the images beside it in the batch.
TEST(Conv2d, ImageOutputDoesNotDependOnTheBatch) {
  torch::manual_seed(5);
  auto batch = torch::randn({5, 512, 2, 2});
  auto w = torch::randn({128, 512, 3, 3});
  ASSERT_TRUE(nn::use_gemm_conv2d(batch, w, geometry(1, 1)));
  auto together = nn::conv2d(batch, w, {}, geometry(1, 1));
  for (int64_t i = 0; i < batch.size(0); ++i) {
    auto alone = nn::conv2d(batch.slice(0, i, i + 1), w, {}, geometry(1, 1));
    EXPECT_LT(relative_difference(alone, together.slice(0, i, i + 1)), 1e-6) << "image " << i;
  }
}

// nn::max_pool2d against torch::max_pool2d: values, the position each gradient goes to
// (ties and NaN included), the no-gradient path and the fallback for other inputs.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "unitrain/nn/pool.h"

namespace nn = unitrain::nn;

namespace {

struct Case {
  const char* name;
  std::vector<int64_t> input;
  std::array<int64_t, 2> kernel, stride, padding;
};

const std::vector<Case> kCases = {
    {"ResNet stem 3x3/2 pad 1", {2, 3, 16, 16}, {3, 3}, {2, 2}, {1, 1}},
    {"odd sizes", {2, 4, 15, 9}, {3, 3}, {2, 2}, {1, 1}},
    {"2x2/2 no padding", {1, 2, 8, 6}, {2, 2}, {2, 2}, {0, 0}},
    {"rectangular kernel and stride", {2, 2, 11, 12}, {3, 2}, {1, 2}, {1, 1}},
    {"window larger than stride 1", {1, 3, 7, 7}, {5, 5}, {1, 1}, {2, 2}},
    {"one pixel", {3, 2, 1, 1}, {3, 3}, {2, 2}, {1, 1}},
};

torch::Tensor reference(const torch::Tensor& x, const Case& c) {
  return torch::max_pool2d(x, {c.kernel[0], c.kernel[1]}, {c.stride[0], c.stride[1]},
                           {c.padding[0], c.padding[1]});
}

}  // namespace

// Random values: outputs bit-equal, input gradients bit-equal (each output's gradient
// reaches the same position, and overlapping windows add up).
TEST(MaxPool2d, MatchesTorchWithGradients) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    torch::manual_seed(5);
    auto x = torch::randn(c.input, torch::requires_grad());
    auto got = nn::max_pool2d(x, c.kernel, c.stride, c.padding);
    auto expected = reference(x, c);
    ASSERT_EQ(got.sizes(), expected.sizes());
    EXPECT_TRUE(torch::equal(got, expected));
    auto upstream = torch::randn(got.sizes());
    auto dx = torch::autograd::grad({got}, {x}, {upstream})[0];
    auto dx_expected = torch::autograd::grad({expected}, {x}, {upstream})[0];
    EXPECT_TRUE(torch::equal(dx, dx_expected)) << (dx - dx_expected).abs().max();
  }
}

// Integer values (ties in most windows), zeros as after a ReLU, and NaNs: the gradient
// goes where PyTorch's goes, and NaN propagates.
TEST(MaxPool2d, TiesAndNanResolveAsTorch) {
  torch::manual_seed(6);
  auto values = torch::randint(0, 3, {2, 3, 12, 10}).to(torch::kFloat32);
  values.index_put_({0, 1, 4, 4}, NAN);
  values.index_put_({1, 2, 0, 0}, NAN);
  values.index_put_({1, 2, 0, 1}, NAN);
  for (const auto& c : kCases) {
    if (c.input.size() != 4 || c.input[2] == 1) continue;
    SCOPED_TRACE(c.name);
    auto x = values.clone().requires_grad_();
    auto got = nn::max_pool2d(x, c.kernel, c.stride, c.padding);
    auto expected = reference(x, c);
    EXPECT_TRUE(torch::equal(got.isnan(), expected.isnan()));
    EXPECT_TRUE(torch::equal(got.nan_to_num(-1), expected.nan_to_num(-1)));
    auto upstream = torch::arange(got.numel(), torch::kFloat32).view(got.sizes());
    auto dx = torch::autograd::grad({got}, {x}, {upstream})[0];
    auto dx_expected = torch::autograd::grad({expected}, {x}, {upstream})[0];
    EXPECT_TRUE(torch::equal(dx, dx_expected));
  }
  // Windows of zeros: each output's gradient goes to its window's first position inside
  // the image, rows 0-1 / 1-3 by columns 0-1 / 1-3 here.
  auto zeros = torch::zeros({1, 1, 4, 4}, torch::requires_grad());
  auto y = nn::max_pool2d(zeros, {3, 3}, {2, 2}, {1, 1});
  auto upstream = torch::tensor({1.f, 2.f, 3.f, 4.f}).view({1, 1, 2, 2});
  auto dz = torch::autograd::grad({y}, {zeros}, {upstream})[0];
  auto expected = torch::zeros({4, 4});
  expected.index_put_({0, 0}, 1.f);
  expected.index_put_({0, 1}, 2.f);
  expected.index_put_({1, 0}, 3.f);
  expected.index_put_({1, 1}, 4.f);
  EXPECT_TRUE(torch::equal(dz[0][0], expected)) << dz;
}

// Without a gradient (no_grad, an input that needs none, inference mode) the result is
// the same and records no graph.
TEST(MaxPool2d, WithoutGradient) {
  torch::manual_seed(7);
  auto x = torch::randn({4, 8, 20, 20});
  const auto expected = torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  auto y = nn::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  EXPECT_TRUE(torch::equal(y, expected));
  EXPECT_FALSE(y.requires_grad());
  {
    torch::NoGradGuard no_grad;
    auto leaf = x.clone().requires_grad_();
    auto z = nn::max_pool2d(leaf, {3, 3}, {2, 2}, {1, 1});
    EXPECT_TRUE(torch::equal(z, expected));
    EXPECT_FALSE(z.requires_grad());
  }
  {
    c10::InferenceMode inference;
    EXPECT_TRUE(torch::equal(nn::max_pool2d(x, {3, 3}, {2, 2}, {1, 1}), expected));
  }
}

// Inputs the kernel does not take (channels-last, float64, a strided view) go to
// torch::max_pool2d: same values and gradients.
TEST(MaxPool2d, OtherInputsFallBackToTorch) {
  torch::manual_seed(8);
  auto base = torch::randn({2, 4, 9, 9});
  const std::vector<torch::Tensor> inputs = {
      base.contiguous(at::MemoryFormat::ChannelsLast), base.to(torch::kFloat64),
      base.transpose(2, 3)};
  for (const auto& input : inputs) {
    auto x = input.detach().requires_grad_();
    auto got = nn::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
    auto expected = torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
    EXPECT_TRUE(torch::equal(got, expected));
    auto upstream = torch::randn(got.sizes(), got.options());
    EXPECT_TRUE(torch::equal(torch::autograd::grad({got}, {x}, {upstream})[0],
                             torch::autograd::grad({expected}, {x}, {upstream})[0]));
  }
  // torch::max_pool2d's own error for a padding over half the kernel.
  EXPECT_THROW(nn::max_pool2d(base, {3, 3}, {2, 2}, {2, 2}), c10::Error);
}

// Results per image do not depend on the batch, with several intra-op threads.
TEST(MaxPool2d, PerImageResultsIndependentOfTheBatchAndThreads) {
  const int threads = torch::get_num_threads();
  torch::manual_seed(9);
  auto x = torch::randn({6, 16, 64, 64});
  torch::set_num_threads(2);
  auto batch = nn::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  torch::set_num_threads(1);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_TRUE(torch::equal(batch[i], nn::max_pool2d(x.slice(0, i, i + 1), {3, 3}, {2, 2},
                                                      {1, 1})[0]));
  }
  torch::set_num_threads(threads);
}

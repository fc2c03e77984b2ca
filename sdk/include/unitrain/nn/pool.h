// 2-D max pooling with a direct CPU kernel.
#pragma once

#include <array>

#include <torch/torch.h>

namespace unitrain::nn {

// torch::max_pool2d(x, kernel, stride, padding) with dilation 1 and floor mode: the same
// values and the same gradient. Each output's gradient goes to one position of its
// window, PyTorch's: the first maximum in row-major order (the last NaN, which
// propagates). Contiguous CPU float32 [B, C, H, W] inputs take a direct kernel, one
// (image, channel) plane per task of LibTorch's intra-op pool, with int32 indices
// saved for the backward only when a gradient is wanted; LibTorch 1.13's
// max_pool2d_with_indices is 1.5-2x slower on ResNet stems (bench/conv_bench). Everything
// else (CUDA, other dtypes, channels-last) calls torch::max_pool2d.
torch::Tensor max_pool2d(const torch::Tensor& x, std::array<int64_t, 2> kernel,
                         std::array<int64_t, 2> stride, std::array<int64_t, 2> padding);

}  // namespace unitrain::nn

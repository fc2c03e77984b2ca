// 2-D convolution that picks its CPU algorithm by shape.
#pragma once

#include <array>

#include <torch/torch.h>

namespace unitrain::nn {

// Geometry of one convolution, per axis (height, width).
struct Conv2dGeometry {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};

  // Output size along `axis` (0: height, 1: width) of an input of `n` positions and a
  // kernel of `kernel` taps: floor((n + 2p - d (k - 1) - 1) / s) + 1, PyTorch's rule.
  int64_t output_size(int axis, int64_t n, int64_t kernel) const {
    return (n + 2 * padding[axis] - dilation[axis] * (kernel - 1) - 1) / stride[axis] + 1;
  }
};

// torch::conv2d(x, weight, bias, ...) with groups 1, differentiable in x and weight
// (bias, when defined, is added and differentiable too). On CPU float32, small feature
// maps with many input channels go through im2col and BLAS sgemm instead of oneDNN
// (see use_gemm_conv2d); everything else calls torch::conv2d.
torch::Tensor conv2d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     const Conv2dGeometry& geometry);

// True when conv2d takes the im2col + sgemm path for this input and weight: CPU float32
// outside CPU autocast, and an output of at most 4 positions per image, or at most 16
// with a reduction (in_channels * kh * kw) of 4096 or more. There LibTorch 1.13's oneDNN
// convolution (forward + backward) is 1.3-3x slower than the GEMMs (ResNet-18's layer4
// on 64 px images: 512 channels at 2x2); bench/conv_bench measures both on each shape.
bool use_gemm_conv2d(const torch::Tensor& x, const torch::Tensor& weight,
                     const Conv2dGeometry& geometry);

}  // namespace unitrain::nn

// Batched matrix product for attention-sized problems.
#pragma once

#include <torch/torch.h>

namespace unitrain::nn {

// a [G, M, K] @ b [G, K, N] -> [G, M, N], differentiable (also twice): the same result
// as torch::bmm. On CPU float32 it calls BLAS sgemm once per batch item on the tensors'
// own strides (row-major or transposed operands are not copied), split over the
// intra-op threads. LibTorch 1.13's CPU bmm spends ~3-5 us of dispatch on every item
// (a select and an addmm per item), 2-7x the arithmetic of attention with a few dozen
// tokens and 16-32 dims per head; bench/attention_bench measures the two. Other devices
// and dtypes use torch::bmm.
torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace unitrain::nn

#include "unitrain/nn/batched_matmul.h"

#include <climits>

#include <ATen/Parallel.h>
#include <cblas.h>

namespace unitrain::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// One operand of sgemm: where its items start, how they are laid out, and the
// leading dimension in that layout.
struct Operand {
  torch::Tensor tensor;  // keeps a contiguous copy alive when one was needed
  CBLAS_TRANSPOSE trans;
  int ld;
};

// Row-major [rows, cols] items (stride(2) == 1) pass as they are, column-major ones
// (stride(1) == 1, e.g. a transpose(1, 2) view) as transposed; anything else is copied.
Operand operand(const torch::Tensor& t) {
  const int64_t rows = t.size(1), cols = t.size(2);
  if (t.stride(2) == 1 && t.stride(1) >= std::max<int64_t>(1, cols) && t.stride(1) <= INT_MAX) {
    return {t, CblasNoTrans, static_cast<int>(t.stride(1))};
  }
  if (t.stride(1) == 1 && t.stride(2) >= std::max<int64_t>(1, rows) && t.stride(2) <= INT_MAX) {
    return {t, CblasTrans, static_cast<int>(t.stride(2))};
  }
  auto c = t.contiguous();
  return {c, CblasNoTrans, static_cast<int>(std::max<int64_t>(1, cols))};
}

bool blas_fits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == torch::kFloat32 &&
         b.scalar_type() == torch::kFloat32 && a.size(1) <= INT_MAX && a.size(2) <= INT_MAX &&
         b.size(2) <= INT_MAX && a.size(1) * a.size(2) <= INT_MAX &&
         b.size(1) * b.size(2) <= INT_MAX && a.size(1) * b.size(2) <= INT_MAX;
}

// Only for operands that pass blas_fits (batched_matmul checks before applying).
torch::Tensor product(const torch::Tensor& a, const torch::Tensor& b) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  if (batch == 0 || m == 0 || n == 0 || k == 0) return torch::zeros({batch, m, n}, a.options());
  auto out = torch::empty({batch, m, n}, a.options());
  const Operand x = operand(a), y = operand(b);
  const float* xp = x.tensor.data_ptr<float>();
  const float* yp = y.tensor.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t xs = x.tensor.stride(0), ys = y.tensor.stride(0), os = m * n;
  // Enough items per task that a thread's share outweighs its start-up.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, m * n * k));
  at::parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      cblas_sgemm(CblasRowMajor, x.trans, y.trans, static_cast<int>(m), static_cast<int>(n),
                  static_cast<int>(k), 1.0f, xp + i * xs, x.ld, yp + i * ys, y.ld, 0.0f,
                  op + i * os, static_cast<int>(n));
    }
  });
  return out;
}

class BatchedMatmul : public torch::autograd::Function<BatchedMatmul> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& a,
                               const torch::Tensor& b) {
    ctx->save_for_backward({a, b});
    return product(a, b);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& a = saved[0];
    const auto& b = saved[1];
    const auto& g = grads[0];
    torch::Tensor grad_a, grad_b;
    if (ctx->needs_input_grad(0)) grad_a = batched_matmul(g, b.transpose(1, 2));
    if (ctx->needs_input_grad(1)) grad_b = batched_matmul(a.transpose(1, 2), g);
    return {grad_a, grad_b};
  }
};

}  // namespace

torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
              "batched_matmul: expected [G, M, K] and [G, K, N], got ", a.sizes(), " and ",
              b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.device() == b.device(),
              "batched_matmul: operands differ in dtype or device (", a.scalar_type(), " on ",
              a.device(), " vs ", b.scalar_type(), " on ", b.device(), ")");
  if (!blas_fits(a, b)) return torch::bmm(a, b);
  return BatchedMatmul::apply(a, b);
}

}  // namespace unitrain::nn

#include "unitrain/nn/conv.h"

#include <ATen/autocast_mode.h>

namespace unitrain::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Rows of the batch's im2col matrix are (image, output position), columns the K =
// C kh kw taps, so the whole batch is one sgemm: Y^T [B L, O] = cols [B L, K] @ W^T.
// (One sgemm per image would pack the weight once per image; for ResNet's layer4 that
// is 9 MB each time.) Backward: dW = dY [O, B L] @ cols and dcols = dY^T @ W, folded
// back onto the input's positions by col2im.
class GemmConv2d : public torch::autograd::Function<GemmConv2d> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const Conv2dGeometry& g) {
    const int64_t batch = x.size(0), out = weight.size(0);
    const int64_t kh = weight.size(2), kw = weight.size(3);
    const int64_t oh = g.output_size(0, x.size(2), kh), ow = g.output_size(1, x.size(3), kw);
    // [B, K, L] -> [B L, K]
    auto cols = at::im2col(x.contiguous(), {kh, kw}, g.dilation, g.padding, g.stride);
    const int64_t taps = cols.size(1), positions = cols.size(2);
    cols = cols.transpose(1, 2).reshape({batch * positions, taps});
    auto w = weight.contiguous().view({out, taps});
    auto y = torch::mm(cols, w.t()).view({batch, positions, out}).permute({0, 2, 1});
    ctx->save_for_backward({cols, weight});
    ctx->saved_data["geometry"] = std::vector<int64_t>{
        x.size(2), x.size(3), g.stride[0], g.stride[1], g.padding[0], g.padding[1],
        g.dilation[0], g.dilation[1]};
    // A tensor of its own, not a view: callers may modify the output in place (relu_).
    auto result = torch::empty({batch, out, oh, ow}, x.options());
    result.view({batch, out, positions}).copy_(y);
    return result;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& cols = saved[0];  // [B L, K]
    const auto& weight = saved[1];
    const auto geo = ctx->saved_data["geometry"].toIntVector();
    const int64_t out = weight.size(0), taps = cols.size(1);
    const int64_t batch = grads[0].size(0), positions = cols.size(0) / batch;
    auto dy = grads[0].reshape({batch, out, positions});
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(1)) {
      dw = torch::mm(dy.transpose(0, 1).reshape({out, batch * positions}), cols)
               .view(weight.sizes());
    }
    if (ctx->needs_input_grad(0)) {
      auto dcols = torch::mm(dy.transpose(1, 2).reshape({batch * positions, out}),
                             weight.contiguous().view({out, taps}));
      dx = at::col2im(dcols.view({batch, positions, taps}).transpose(1, 2).contiguous(),
                      {geo[0], geo[1]}, {weight.size(2), weight.size(3)}, {geo[6], geo[7]},
                      {geo[4], geo[5]}, {geo[2], geo[3]});
    }
    return {dx, dw, torch::Tensor()};
  }
};

}  // namespace

bool use_gemm_conv2d(const torch::Tensor& x, const torch::Tensor& weight,
                     const Conv2dGeometry& g) {
  // Under CPU autocast torch::conv2d runs in the autocast dtype; so does every
  // convolution then.
  if (at::autocast::is_cpu_enabled()) return false;
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32 ||
      weight.scalar_type() != torch::kFloat32 || x.dim() != 4 || weight.dim() != 4 ||
      x.size(1) != weight.size(1) || x.size(0) == 0) {
    return false;
  }
  const int64_t oh = g.output_size(0, x.size(2), weight.size(2));
  const int64_t ow = g.output_size(1, x.size(3), weight.size(3));
  if (oh <= 0 || ow <= 0) return false;
  const int64_t positions = oh * ow;
  const int64_t reduction = weight.size(1) * weight.size(2) * weight.size(3);
  return positions <= 4 || (positions <= 16 && reduction >= 4096);
}

torch::Tensor conv2d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     const Conv2dGeometry& g) {
  if (!use_gemm_conv2d(x, weight, g)) {
    return torch::conv2d(x, weight, bias, g.stride, g.padding, g.dilation);
  }
  auto y = GemmConv2d::apply(x, weight, g);
  return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
}

}  // namespace unitrain::nn

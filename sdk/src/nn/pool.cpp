#include "unitrain/nn/pool.h"

#include <cmath>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

namespace unitrain::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct PoolShape {
  int64_t planes, height, width, out_height, out_width;
  std::array<int64_t, 2> kernel, stride, padding;
};

// Every output of planes [begin, end): the window's maximum and, when `indices` is not
// null, its position in the plane (h * width + w). Each output visits its window's
// positions in row-major order with PyTorch's CPU comparison, `value > max ||
// isnan(value)`, from -inf at the window's first position, so ties and NaNs resolve to
// the same index. The loops run per output row and window tap over the row's outputs,
// branch-free (the compiler vectorizes the innermost loop), which is what makes this
// faster than LibTorch's kernel.
void pool_planes(const PoolShape& s, const float* in, float* out, int32_t* indices,
                 int64_t begin, int64_t end) {
  const int64_t plane_in = s.height * s.width, plane_out = s.out_height * s.out_width;
  const int64_t sh = s.stride[0], sw = s.stride[1], ph = s.padding[0], pw = s.padding[1];
  const int64_t out_w = s.out_width;
  std::vector<int32_t> scratch(indices ? 0 : static_cast<size_t>(out_w));
  // Per tap kw, the outputs whose tap lies inside the row: [first[kw], last[kw]).
  std::vector<int64_t> first(static_cast<size_t>(s.kernel[1])), last(first.size());
  for (int64_t kw = 0; kw < s.kernel[1]; ++kw) {
    first[kw] = kw >= pw ? 0 : (pw - kw + sw - 1) / sw;
    const int64_t reach = s.width - 1 + pw - kw;  // ow * sw <= reach
    last[kw] = reach < 0 ? 0 : std::min(out_w, reach / sw + 1);
  }
  for (int64_t p = begin; p < end; ++p) {
    const float* x = in + p * plane_in;
    for (int64_t oh = 0; oh < s.out_height; ++oh) {
      float* __restrict y = out + p * plane_out + oh * out_w;
      int32_t* __restrict index = indices ? indices + p * plane_out + oh * out_w : scratch.data();
      const int64_t h0 = oh * sh - ph;
      const int64_t h_begin = std::max<int64_t>(h0, 0);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        y[ow] = -std::numeric_limits<float>::infinity();
        index[ow] = static_cast<int32_t>(h_begin * s.width + std::max<int64_t>(ow * sw - pw, 0));
      }
      for (int64_t h = h_begin; h < std::min(h0 + s.kernel[0], s.height); ++h) {
        const float* __restrict row = x + h * s.width;
        const auto row_start = static_cast<int32_t>(h * s.width);
        for (int64_t kw = 0; kw < s.kernel[1]; ++kw) {
          for (int64_t ow = first[kw]; ow < last[kw]; ++ow) {
            const int64_t w = ow * sw - pw + kw;
            const float v = row[w];
            const bool take = v > y[ow] || v != v;
            y[ow] = take ? v : y[ow];
            index[ow] = take ? row_start + static_cast<int32_t>(w) : index[ow];
          }
        }
      }
    }
  }
}

// Planes per task of the intra-op pool: about 32K outputs each, so that small maps do
// not pay for threads.
int64_t planes_per_task(int64_t outputs_per_plane) {
  return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, outputs_per_plane));
}

torch::Tensor pool(const PoolShape& s, const torch::Tensor& x, torch::Tensor* indices) {
  auto y = torch::empty({x.size(0), x.size(1), s.out_height, s.out_width}, x.options());
  if (indices) *indices = torch::empty(y.sizes(), x.options().dtype(torch::kInt32));
  const float* in = x.data_ptr<float>();
  float* out = y.data_ptr<float>();
  int32_t* index = indices ? indices->data_ptr<int32_t>() : nullptr;
  const int64_t grain = planes_per_task(s.out_height * s.out_width);
  at::parallel_for(0, s.planes, grain, [&](int64_t begin, int64_t end) {
    pool_planes(s, in, out, index, begin, end);
  });
  return y;
}

class MaxPool2d : public torch::autograd::Function<MaxPool2d> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const PoolShape& s) {
    torch::Tensor indices;
    auto y = pool(s, x, &indices);
    ctx->save_for_backward({indices});
    ctx->saved_data["input"] = std::vector<int64_t>(x.sizes().begin(), x.sizes().end());
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto indices = ctx->get_saved_variables()[0];
    const auto sizes = ctx->saved_data["input"].toIntVector();
    const auto dy = grads[0].contiguous();
    auto dx = torch::zeros(sizes, dy.options());
    const int64_t planes = sizes[0] * sizes[1], plane_in = sizes[2] * sizes[3];
    const int64_t plane_out = indices.size(2) * indices.size(3);
    const float* g = dy.data_ptr<float>();
    const int32_t* index = indices.data_ptr<int32_t>();
    float* out = dx.data_ptr<float>();
    // Windows overlap, so one input position may take several outputs' gradients: a
    // plane is one task's alone, summed in a fixed order.
    at::parallel_for(0, planes, planes_per_task(plane_out), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        float* d = out + p * plane_in;
        for (int64_t k = p * plane_out; k < (p + 1) * plane_out; ++k) d[index[k]] += g[k];
      }
    });
    return {dx, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor max_pool2d(const torch::Tensor& x, std::array<int64_t, 2> kernel,
                         std::array<int64_t, 2> stride, std::array<int64_t, 2> padding) {
  const bool direct = !x.is_mkldnn() && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 &&
                      x.dim() == 4 && x.is_contiguous() && x.numel() > 0;
  bool valid = true;
  for (int axis = 0; axis < 2; ++axis) {
    // torch::max_pool2d's own checks (and messages) for anything else.
    valid = valid && kernel[axis] > 0 && stride[axis] > 0 && padding[axis] >= 0 &&
            padding[axis] <= kernel[axis] / 2 && x.dim() == 4 &&
            x.size(2 + axis) + 2 * padding[axis] >= kernel[axis];
  }
  if (!direct || !valid || x.size(2) * x.size(3) > std::numeric_limits<int32_t>::max()) {
    return torch::max_pool2d(x, {kernel[0], kernel[1]}, {stride[0], stride[1]},
                             {padding[0], padding[1]});
  }
  PoolShape s;
  s.planes = x.size(0) * x.size(1);
  s.height = x.size(2);
  s.width = x.size(3);
  s.out_height = (s.height + 2 * padding[0] - kernel[0]) / stride[0] + 1;
  s.out_width = (s.width + 2 * padding[1] - kernel[1]) / stride[1] + 1;
  s.kernel = kernel;
  s.stride = stride;
  s.padding = padding;
  if (!(torch::GradMode::is_enabled() && x.requires_grad())) return pool(s, x, nullptr);
  return MaxPool2d::apply(x, s);
}

}  // namespace unitrain::nn

#include "resnet.h"

#include <stdexcept>

#include "unitrain/nn/conv.h"
#include "unitrain/nn/pool.h"

namespace unitrain::image {

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t num_features_, double eps_)
    : num_features(num_features_), eps(eps_) {
  reset();
}

void FrozenBatchNorm2dImpl::reset() {
  weight = register_buffer("weight", torch::ones({num_features}));
  bias = register_buffer("bias", torch::zeros({num_features}));
  running_mean = register_buffer("running_mean", torch::zeros({num_features}));
  running_var = register_buffer("running_var", torch::ones({num_features}));
}

torch::Tensor FrozenBatchNorm2dImpl::scale() const {
  return weight * (running_var + eps).rsqrt();
}

torch::Tensor FrozenBatchNorm2dImpl::shift() const { return bias - running_mean * scale(); }

torch::Tensor FrozenBatchNorm2dImpl::forward(const torch::Tensor& x) {
  // One scale and shift: y = x * w / sqrt(var + eps) + (b - mean * scale).
  return x * scale().view({1, -1, 1, 1}).to(x.dtype()) + shift().view({1, -1, 1, 1}).to(x.dtype());
}

torch::Tensor conv_frozen_bn(const torch::nn::Conv2dImpl& conv, const FrozenBatchNorm2dImpl& bn,
                             const torch::Tensor& x) {
  const auto& o = conv.options;
  TORCH_CHECK(!o.bias(), "conv_frozen_bn: the convolution must have no bias");
  TORCH_CHECK(o.groups() == 1, "conv_frozen_bn: grouped convolutions are not supported");
  const auto padding = c10::get<torch::ExpandingArray<2>>(o.padding());
  nn::Conv2dGeometry geometry;
  int64_t positions = 1;  // output positions per image
  for (int axis = 0; axis < 2; ++axis) {
    geometry.stride[axis] = (*o.stride())[axis];
    geometry.padding[axis] = (*padding)[axis];
    geometry.dilation[axis] = (*o.dilation())[axis];
    positions *= geometry.output_size(axis, x.size(2 + axis), (*o.kernel_size())[axis]);
  }
  // bn(conv(x, W)) = conv(x, W * scale) + shift, per output channel. Scaling the weight
  // costs one pass over W and one over its gradient; scaling the output, one over the
  // output and one over its gradient. The smaller is taken: the weight on large images,
  // the output for the last stages on small ones (layer4 of a ResNet-18 on a batch of
  // 16 images of 64 px: 2.4M weights against 33K outputs). Both give the same values up
  // to float rounding.
  if (conv.weight.numel() <= x.size(0) * conv.weight.size(0) * positions) {
    auto weight = conv.weight * bn.scale().view({-1, 1, 1, 1}).to(conv.weight.dtype());
    return nn::conv2d(x, weight, bn.shift().to(x.dtype()), geometry);
  }
  auto y = nn::conv2d(x, conv.weight, {}, geometry);
  return torch::addcmul(bn.shift().view({1, -1, 1, 1}).to(y.dtype()), y,
                        bn.scale().view({1, -1, 1, 1}).to(y.dtype()));
}

torch::Tensor valid_region(const torch::Tensor& valid, int64_t height, int64_t width) {
  auto opts = valid.options();
  auto rows = torch::arange(height, opts).unsqueeze(0) < valid.select(1, 0).unsqueeze(1);
  auto cols = torch::arange(width, opts).unsqueeze(0) < valid.select(1, 1).unsqueeze(1);
  return rows.unsqueeze(2).logical_and(cols.unsqueeze(1));
}

namespace {

// Output size of a convolution or pooling window along one axis, for input sizes `n`
// (an int64 tensor): floor((n + 2p - d (k - 1) - 1) / s) + 1, PyTorch's rule.
torch::Tensor window_output(const torch::Tensor& n, int64_t kernel, int64_t stride,
                            int64_t padding, int64_t dilation) {
  return (n + (2 * padding - dilation * (kernel - 1) - 1)).div(stride, "floor") + 1;
}

torch::Tensor conv_output(const torch::nn::Conv2dImpl& conv, const torch::Tensor& valid) {
  if (!valid.defined()) return valid;
  const auto& o = conv.options;
  const auto padding = c10::get<torch::ExpandingArray<2>>(o.padding());
  return torch::stack({window_output(valid.select(1, 0), (*o.kernel_size())[0], (*o.stride())[0],
                                     (*padding)[0], (*o.dilation())[0]),
                       window_output(valid.select(1, 1), (*o.kernel_size())[1], (*o.stride())[1],
                                     (*padding)[1], (*o.dilation())[1])},
                      1);
}

// The stem's max-pool: kernel 3, stride 2, padding 1.
torch::Tensor pool_output(const torch::Tensor& valid) {
  if (!valid.defined()) return valid;
  return window_output(valid, 3, 2, 1, 1);
}

// y [B, C, H, W] with every position outside image i's valid[i] = (h, w) set to zero;
// y itself when valid is undefined.
torch::Tensor zero_outside(const torch::Tensor& y, const torch::Tensor& valid) {
  if (!valid.defined()) return y;
  return y * valid_region(valid, y.size(2), y.size(3)).unsqueeze(1).to(y.dtype());
}

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                       int64_t dilation = 1) {
  const int64_t padding = kernel == 1 ? 0 : dilation * (kernel / 2);
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                               .stride(stride)
                               .padding(padding)
                               .dilation(dilation)
                               .bias(false));
}

// Shared shape of BasicBlock and Bottleneck: a chain of (conv, frozen bn) pairs with
// ReLU between, plus the identity or a projected shortcut.
class BlockImpl : public torch::nn::Cloneable<BlockImpl> {
 public:
  BlockImpl(bool bottleneck, int64_t in, int64_t planes, int64_t stride, int64_t dilation)
      : bottleneck_(bottleneck), in_(in), planes_(planes), stride_(stride), dilation_(dilation) {
    reset();
  }

  static int64_t expansion(bool bottleneck) { return bottleneck ? 4 : 1; }

  void reset() override {
    convs_.clear();
    bns_.clear();
    const int64_t out = planes_ * expansion(bottleneck_);
    auto add = [&](int idx, torch::nn::Conv2d c) {
      convs_.push_back(register_module("conv" + std::to_string(idx), c));
      bns_.push_back(register_module(
          "bn" + std::to_string(idx), FrozenBatchNorm2d(c->options.out_channels())));
    };
    if (bottleneck_) {
      // v1.5: the stride sits on the 3x3 conv. Dilation only on the 3x3.
      add(1, conv(in_, planes_, 1));
      add(2, conv(planes_, planes_, 3, stride_, dilation_));
      add(3, conv(planes_, out, 1));
    } else {
      add(1, conv(in_, planes_, 3, stride_, dilation_));
      add(2, conv(planes_, planes_, 3, 1, dilation_));
    }
    downsample_ = nullptr;
    if (stride_ != 1 || in_ != out) {
      downsample_ = register_module(
          "downsample", torch::nn::Sequential(conv(in_, out, 1, stride_), FrozenBatchNorm2d(out)));
    }
  }

  // x [B, C, H, W] whose positions outside `valid` (see ResNetImpl::forward) are zero;
  // returns the block's output, zero outside the block's output sizes, and sets `*valid`
  // to them. (A pointer: modules held by a Sequential may not take references.)
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* valid) {
    auto y = x;
    torch::Tensor y_valid = *valid;
    for (size_t i = 0; i < convs_.size(); ++i) {
      y_valid = conv_output(*convs_[i], y_valid);
      y = zero_outside(conv_frozen_bn(*convs_[i], *bns_[i], y), y_valid);
      if (i + 1 < convs_.size()) y = torch::relu(y);
    }
    auto shortcut = x;
    if (downsample_) {
      const auto& projection = *downsample_[0]->as<torch::nn::Conv2d>();
      shortcut = zero_outside(
          conv_frozen_bn(projection, *downsample_[1]->as<FrozenBatchNorm2d>(), x),
          conv_output(projection, *valid));
    }
    *valid = y_valid;
    return torch::relu(y + shortcut);
  }

  // The block's output sizes for input sizes `valid`.
  torch::Tensor output_valid(torch::Tensor valid) const {
    for (const auto& c : convs_) valid = conv_output(*c, valid);
    return valid;
  }

 private:
  bool bottleneck_;
  int64_t in_, planes_, stride_, dilation_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<FrozenBatchNorm2d> bns_;
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(Block);

}  // namespace

ResNetImpl::ResNetImpl(const ResNetOptions& options_) : options(options_) { reset(); }

std::vector<int64_t> ResNetImpl::blocks_per_stage() const {
  if (!options.layers().empty()) return options.layers();
  switch (options.depth()) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    default:
      throw std::invalid_argument("ResNet depth must be 18, 34, 50, 101 or 152, got " +
                                  std::to_string(options.depth()));
  }
}

void ResNetImpl::reset() {
  const auto blocks = blocks_per_stage();
  TORCH_CHECK(blocks.size() == 4, "ResNet: layers must list 4 stages, got ", blocks.size());
  TORCH_CHECK(options.return_layer() >= 1 && options.return_layer() <= 4,
              "ResNet: return_layer must be 1..4, got ", options.return_layer());
  TORCH_CHECK(options.width() > 0, "ResNet: width must be positive, got ", options.width());
  const bool bottleneck = options.depth() >= 50;
  const int64_t w = options.width();
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, w, 7)
                                                         .stride(2)
                                                         .padding(3)
                                                         .bias(false)));
  bn1 = register_module("bn1", FrozenBatchNorm2d(w));
  stages.clear();
  int64_t in = w;
  int64_t dilation = 1;
  for (int64_t s = 0; s < options.return_layer(); ++s) {
    const int64_t planes = w << s;
    int64_t stride = s == 0 ? 1 : 2;
    const int64_t previous_dilation = dilation;
    if (s == 3 && options.dilation()) {
      dilation *= stride;
      stride = 1;
    }
    torch::nn::Sequential stage;
    for (int64_t b = 0; b < blocks[s]; ++b) {
      // As torchvision: the first block of a dilated stage keeps the previous dilation.
      stage->push_back(Block(bottleneck, in, planes, b == 0 ? stride : 1,
                             b == 0 ? previous_dilation : dilation));
      in = planes * BlockImpl::expansion(bottleneck);
    }
    stages.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  num_channels_ = in;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& x, const torch::Tensor& valid_in) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet: expected images [B, 3, H, W], got ",
              x.sizes());
  torch::Tensor valid;
  if (valid_in.defined()) {
    TORCH_CHECK(valid_in.dim() == 2 && valid_in.size(0) == x.size(0) && valid_in.size(1) == 2,
                "ResNet: valid sizes must be [B, 2] = [", x.size(0), ", 2], got ",
                valid_in.sizes());
    valid = valid_in.to(x.device(), torch::kLong);
    // A batch without padding needs no masking (and then costs nothing extra).
    const bool padded = (valid.select(1, 0) < x.size(2)).logical_or(valid.select(1, 1) < x.size(3))
                            .any()
                            .item<bool>();
    if (!padded) valid = torch::Tensor();
  }
  // The image's own padding must be zero too, as the stem's convolution sees it.
  auto image = zero_outside(x, valid);
  // Channels-last through the backbone on CUDA (what cuDNN's tensor-core kernels
  // take); NCHW on the CPU, where LibTorch 1.13's oneDNN convolution backward on
  // channels-last inputs spends ~40% of a ResNet-18 step reordering (measured on a
  // 64 px batch of 16: 604 ms per step against 378 in NCHW, bench/step_bench
  // --profile).
  valid = conv_output(*conv1, valid);
  if (image.is_cuda()) image = image.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = torch::relu(zero_outside(conv_frozen_bn(*conv1, *bn1, image), valid));
  // After the ReLU every value is >= 0, so the zeros outside an image act as the
  // max-pool's own (-inf) padding does; the pool's output still needs masking, since a
  // window that overhangs the border by two pixels sees image values.
  valid = pool_output(valid);
  y = zero_outside(nn::max_pool2d(y, {3, 3}, {2, 2}, {1, 1}), valid);
  for (auto& stage : stages) {
    for (const auto& block : stage->children()) y = block->as<BlockImpl>()->forward(y, &valid);
  }
  return y.contiguous();
}

torch::Tensor ResNetImpl::feature_valid(const torch::Tensor& valid_in) const {
  auto valid = pool_output(conv_output(*conv1, valid_in.to(torch::kLong)));
  for (const auto& stage : stages) {
    for (const auto& block : stage->children()) {
      valid = block->as<BlockImpl>()->output_valid(valid);
    }
  }
  return valid;
}

}  // namespace unitrain::image

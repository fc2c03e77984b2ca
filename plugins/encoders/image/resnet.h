// ResNet backbone with frozen batch norm, as DETR (and UniT) use it: torchvision's
// layout and parameter names (conv1, bn1, layer1..layer4, downsample.0/1), v1.5
// bottlenecks (stride on the 3x3 conv), optional dilation in the last stage (DC5).
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace unitrain::image {

// BatchNorm2d with fixed statistics and affine parameters, all of them buffers:
// nothing here is trained and nothing changes in train() mode.
class FrozenBatchNorm2dImpl : public torch::nn::Cloneable<FrozenBatchNorm2dImpl> {
 public:
  explicit FrozenBatchNorm2dImpl(int64_t num_features, double eps = 1e-5);
  void reset() override;
  // x [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor scale() const;  // weight / sqrt(running_var + eps), per channel
  torch::Tensor shift() const;  // bias - running_mean * scale, per channel

  int64_t num_features;
  double eps;
  torch::Tensor weight, bias, running_mean, running_var;
};
TORCH_MODULE(FrozenBatchNorm2d);

// bn(conv(x)): the batch norm folded into the convolution's weight and bias, or
// applied to its output where the output is smaller than the weight. Through
// nn::conv2d. The convolution must have no bias and one group.
torch::Tensor conv_frozen_bn(const torch::nn::Conv2dImpl& conv, const FrozenBatchNorm2dImpl& bn,
                             const torch::Tensor& x);

// [B, height, width] bool: true inside each sample's top-left region valid[i] = (h, w)
// (`valid` [B, 2] int64), false outside it.
torch::Tensor valid_region(const torch::Tensor& valid, int64_t height, int64_t width);

struct ResNetOptions {
  // 18, 34 (BasicBlock) or 50, 101, 152 (Bottleneck). Default: 50.
  TORCH_ARG(int64_t, depth) = 50;
  // Channels of the stem and of layer1's blocks before expansion; stage i uses
  // width * 2^i. Default: 64 (torchvision).
  TORCH_ARG(int64_t, width) = 64;
  // Blocks per stage, overriding the depth's ({3, 4, 6, 3} for 50). Empty = from
  // depth. Default: {}.
  TORCH_ARG(std::vector<int64_t>, layers) = {};
  // Replace layer4's stride by dilation 2 (DETR's DC5). Default: false.
  TORCH_ARG(bool, dilation) = false;
  // Last stage computed and returned: 1..4 (layer1..layer4). Default: 4 (C5).
  TORCH_ARG(int64_t, return_layer) = 4;
};

// Only the stages up to return_layer are built.
class ResNetImpl : public torch::nn::Cloneable<ResNetImpl> {
 public:
  explicit ResNetImpl(const ResNetOptions& options);
  void reset() override;
  // x [B, 3, H, W] -> [B, num_channels(), ceil(H/s), ceil(W/s)], s = 4 * 2^(return_layer-1)
  // (layer4 with dilation keeps s = 16).
  // `valid` [B, 2] int64: height and width of each image's unpadded region, at the top
  // left of the canvas as `collate` pads; undefined = every pixel is image. Every
  // activation outside an image's region is held at zero, which is what the
  // convolutions' own zero padding shows an image alone: an image's features are the
  // same whatever canvas it was padded to (DETR lets the padding leak into the border
  // features through the receptive field; here it cannot).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& valid = {});
  // The [B, 2] valid sizes on the returned feature map for input sizes `valid` [B, 2]:
  // each convolution's and the max-pool's output-size rule applied in turn.
  torch::Tensor feature_valid(const torch::Tensor& valid) const;
  // Channels of the returned feature map.
  int64_t num_channels() const { return num_channels_; }
  // Blocks per stage after applying depth and the `layers` override.
  std::vector<int64_t> blocks_per_stage() const;

  ResNetOptions options;
  torch::nn::Conv2d conv1{nullptr};
  FrozenBatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> stages;  // registered as layer1..layerN

 private:
  int64_t num_channels_ = 0;
};
TORCH_MODULE(ResNet);

}  // namespace unitrain::image

// The UniT image encoder: ResNet backbone (frozen BN) -> 1x1 projection -> 2-D sine
// position embedding -> DETR post-norm transformer encoder -> projection to the
// decoder width.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "resnet.h"
#include "unitrain/encoder.h"
#include "unitrain/nn/transformer.h"
#include "unitrain/options.h"
#include "unitrain/weights/importer.h"

namespace unitrain::image {

// JSON keys are the field names. Defaults follow MMF's UniT (configs/models/unit).
struct ImageEncoderOptions {
  // ResNet depth: 18, 34 (BasicBlock) or 50, 101, 152 (Bottleneck). Default: 50.
  TORCH_ARG(int64_t, depth) = 50;
  // Base channels of the backbone (stage i has width * 2^i). Default: 64.
  TORCH_ARG(int64_t, width) = 64;
  // Blocks per stage (4 numbers) overriding depth, for tiny models. Default: [].
  TORCH_ARG(std::vector<int64_t>, layers) = {};
  // Dilate layer4 instead of striding (DC5: twice the resolution, more memory).
  // Default: false.
  TORCH_ARG(bool, dilation) = false;
  // Backbone stage whose output is encoded: "layer1".."layer4". "layer3" keeps more
  // resolution for small images (stride 16 instead of 32). Default: "layer4".
  TORCH_ARG(std::string, return_layer) = "layer4";
  // Backbone stages trained, counted from layer4 down (5 = also the stem); the
  // others get requires_grad = false. DETR trains layer2..layer4. Default: 3.
  TORCH_ARG(int64_t, trainable_layers) = 3;
  // Width of the transformer encoder. Default: 256.
  TORCH_ARG(int64_t, hidden_dim) = 256;
  TORCH_ARG(int64_t, num_layers) = 6;  // Default: 6.
  TORCH_ARG(int64_t, num_heads) = 8;   // Default: 8.
  TORCH_ARG(int64_t, dim_feedforward) = 2048;  // Default: 2048.
  TORCH_ARG(double, dropout) = 0.1;            // Default: 0.1.
  // memory = src + encoder(src) (MMF's residual_in_encoder). Default: true.
  TORCH_ARG(bool, residual) = true;
  // Prepend a learned task token Embedding(max_tasks, hidden_dim)[task_index] to the
  // encoder input. Default: false.
  TORCH_ARG(bool, task_token) = false;
  TORCH_ARG(int64_t, max_tasks) = 256;  // Default: 256.
  // Keep the task token's output as the first memory position. MMF drops it after
  // the encoder. Default: false.
  TORCH_ARG(bool, keep_task_token) = false;
  // Width of the memory handed to the decoder; a Linear projects memory and position
  // embedding when it differs from hidden_dim. Default: 768.
  TORCH_ARG(int64_t, output_dim) = 768;
};

// Every option declared once (key, meaning, rule; the default is the field's): the
// plugin's defaults JSON, the parsing below, to_json and the README's key table.
const options::OptionSet<ImageEncoderOptions>& image_encoder_option_set();

// Reads options from a JSON object (every key optional here; the host has merged the
// defaults). Throws ConfigError "<where>/<key>: ..." for wrong types or values.
ImageEncoderOptions image_encoder_options_from_json(const nlohmann::json& j,
                                                    const std::string& where);
nlohmann::json to_json(const ImageEncoderOptions& options);

class ImageEncoderImpl : public torch::nn::Cloneable<ImageEncoderImpl>,
                         public Encoder,
                         public weights::WeightImporter {
 public:
  explicit ImageEncoderImpl(const ImageEncoderOptions& options);
  void reset() override;

  // torchvision_resnet (the backbone), detr (backbone, input_proj, transformer encoder),
  // mmf_unit (all of it). The tables are in the README (image_weights.cpp).
  std::vector<std::string> weight_formats() const override;
  weights::WeightMap weight_map(const weights::ImportContext& context) const override;

  std::string modality() const override { return "image"; }
  int64_t output_dim() const override { return options.output_dim(); }
  // Reads batch.image [B, 3, H, W] and batch.image_mask [B, H, W] (true at padding;
  // all valid when undefined). Returns memory [B, h*w (+1), output_dim], mask
  // [B, h*w (+1)], pos [B, h*w (+1), output_dim], where (h, w) is the feature map of
  // return_layer and +1 is the task token when kept.
  EncoderOutput encode(const Batch& batch, int64_t task_index) override;
  EncoderOutput forward(const torch::Tensor& image, const torch::Tensor& image_mask,
                        int64_t task_index);

  ImageEncoderOptions options;
  ResNet backbone{nullptr};
  torch::nn::Conv2d input_proj{nullptr};
  unitrain::nn::TransformerEncoder encoder{nullptr};
  torch::nn::Embedding task_embeddings{nullptr};  // null without task_token
  torch::nn::Linear output_proj{nullptr};         // null when output_dim == hidden_dim
  torch::nn::Linear pos_proj{nullptr};            // null when output_dim == hidden_dim
};
TORCH_MODULE(ImageEncoder);

}  // namespace unitrain::image

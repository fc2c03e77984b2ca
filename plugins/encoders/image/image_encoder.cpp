#include "image_encoder.h"

#include <algorithm>

#include "unitrain/errors.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"

namespace unitrain::image {
namespace {

using options::key_path;

int64_t stage_index(const std::string& return_layer, const std::string& where) {
  for (int64_t i = 1; i <= 4; ++i) {
    if (return_layer == "layer" + std::to_string(i)) return i;
  }
  throw ConfigError(key_path(where, "return_layer") + ": unknown stage \"" + return_layer +
                    "\" (valid: layer1, layer2, layer3, layer4)");
}

// The checks a single rule does not say, after every option is read.
void check_together(const ImageEncoderOptions& o, const nlohmann::json&, const std::string& where) {
  static const int64_t kDepths[] = {18, 34, 50, 101, 152};
  if (std::find(std::begin(kDepths), std::end(kDepths), o.depth()) == std::end(kDepths)) {
    throw ConfigError(key_path(where, "depth") + ": must be 18, 34, 50, 101 or 152, got " +
                      std::to_string(o.depth()));
  }
  if (!o.layers().empty() && o.layers().size() != 4) {
    throw ConfigError(key_path(where, "layers") + ": must list 4 block counts (one per stage), got " +
                      std::to_string(o.layers().size()));
  }
  for (int64_t n : o.layers()) {
    if (n < 1) throw ConfigError(key_path(where, "layers") + ": block counts must be >= 1");
  }
  if (o.hidden_dim() < 2 || o.hidden_dim() % 2 != 0) {
    throw ConfigError(key_path(where, "hidden_dim") +
                      ": must be positive and even (half of it encodes y, half x), got " +
                      std::to_string(o.hidden_dim()));
  }
  options::check_divides(where, "num_heads", o.num_heads(), "hidden_dim", o.hidden_dim());
}

}  // namespace

const options::OptionSet<ImageEncoderOptions>& image_encoder_option_set() {
  using options::at_least;
  static const auto set =
      options::OptionSet<ImageEncoderOptions>()
          .add(UNITRAIN_OPTION(depth),
               "ResNet depth: 18, 34 (BasicBlock), 50, 101, 152 (Bottleneck)")
          .add(UNITRAIN_OPTION(width),
               "base channels; stage i has `width * 2^i` (x4 after a bottleneck)", at_least(1))
          .add(UNITRAIN_OPTION(layers),
               "blocks per stage (4 numbers), overriding `depth` (tiny models: `[1,1,1,1]`)")
          .add(UNITRAIN_OPTION(dilation), "dilate layer4 instead of striding (DC5)")
          .add(UNITRAIN_OPTION(return_layer),
               "stage encoded: `layer1`..`layer4` (strides 4, 8, 16, 32); later stages are not "
               "built",
               options::one_of({"layer1", "layer2", "layer3", "layer4"}))
          .add(UNITRAIN_OPTION(trainable_layers),
               "stages trained counting down from layer4 (5 = also the stem); others frozen",
               options::between(0, 5))
          .add(UNITRAIN_OPTION(hidden_dim), "transformer encoder width (even)")
          .add(UNITRAIN_OPTION(num_layers), "encoder layers", at_least(0))
          .add(UNITRAIN_OPTION(num_heads), "attention heads (divides `hidden_dim`)", at_least(1))
          .add(UNITRAIN_OPTION(dim_feedforward), "feed-forward width", at_least(1))
          .add(UNITRAIN_OPTION(dropout), "dropout in attention and feed-forward",
               options::in_range(0, 1))
          .add(UNITRAIN_OPTION(residual), "`memory = src + encoder(src)` (MMF `residual_in_encoder`)")
          .add(UNITRAIN_OPTION(task_token),
               "prepend `Embedding(max_tasks, hidden_dim)[task_index]` (mask false, zero position)")
          .add(UNITRAIN_OPTION(max_tasks), "rows of the task embedding", at_least(1))
          .add(UNITRAIN_OPTION(keep_task_token),
               "keep the task token in the memory (S + 1); MMF drops it after the encoder")
          .add(UNITRAIN_OPTION(output_dim),
               "memory width for the decoder; Linear projections of memory and position "
               "embedding when it differs from `hidden_dim`",
               at_least(1))
          .validate(check_together);
  return set;
}

ImageEncoderOptions image_encoder_options_from_json(const nlohmann::json& j,
                                                    const std::string& where) {
  return image_encoder_option_set().parse(j, where);
}

nlohmann::json to_json(const ImageEncoderOptions& o) { return image_encoder_option_set().to_json(o); }

ImageEncoderImpl::ImageEncoderImpl(const ImageEncoderOptions& options_) : options(options_) {
  reset();
}

void ImageEncoderImpl::reset() {
  const int64_t d = options.hidden_dim();
  backbone = register_module(
      "backbone", ResNet(ResNetOptions()
                             .depth(options.depth())
                             .width(options.width())
                             .layers(options.layers())
                             .dilation(options.dilation())
                             .return_layer(stage_index(options.return_layer(), ""))));
  input_proj = register_module(
      "input_proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(backbone->num_channels(), d, 1)));
  auto layer = unitrain::nn::TransformerLayerOptions(d, options.num_heads())
                   .dim_feedforward(options.dim_feedforward())
                   .dropout(options.dropout());
  encoder = register_module(
      "encoder", unitrain::nn::TransformerEncoder(
                     unitrain::nn::TransformerEncoderOptions(layer, options.num_layers())));
  unitrain::nn::xavier_uniform_matrices(*encoder);
  task_embeddings = nullptr;
  if (options.task_token()) {
    task_embeddings =
        register_module("task_embeddings", torch::nn::Embedding(options.max_tasks(), d));
  }
  output_proj = nullptr;
  pos_proj = nullptr;
  if (options.output_dim() != d) {
    output_proj = register_module("output_proj", torch::nn::Linear(d, options.output_dim()));
    pos_proj = register_module("pos_proj", torch::nn::Linear(d, options.output_dim()));
    unitrain::nn::xavier_uniform_matrices(*output_proj);
    unitrain::nn::xavier_uniform_matrices(*pos_proj);
  }
  // Freeze the backbone stages DETR does not train (stem and layer1 by default).
  const int64_t trainable = options.trainable_layers();
  for (auto& item : backbone->named_parameters()) {
    const std::string& name = item.key();
    int64_t stage = 0;  // 0 = stem (conv1)
    if (name.rfind("layer", 0) == 0) stage = name[5] - '0';
    const bool train = stage == 0 ? trainable >= 5 : stage > 4 - trainable;
    item.value().set_requires_grad(train);
  }
}

EncoderOutput ImageEncoderImpl::encode(const Batch& batch, int64_t task_index) {
  TORCH_CHECK(batch.image.defined(), "image encoder: batch of task '", batch.task,
              "' has no image");
  return forward(batch.image, batch.image_mask, task_index);
}

EncoderOutput ImageEncoderImpl::forward(const torch::Tensor& image,
                                        const torch::Tensor& image_mask, int64_t task_index) {
  TORCH_CHECK(image.dim() == 4 && image.size(1) == 3,
              "image encoder: expected image [B, 3, H, W], got ", image.sizes());
  const int64_t batch = image.size(0);
  torch::Tensor mask = image_mask.defined()
                           ? image_mask.to(torch::kBool)
                           : torch::zeros({batch, image.size(2), image.size(3)},
                                          image.options().dtype(torch::kBool));
  TORCH_CHECK(mask.dim() == 3 && mask.size(0) == batch && mask.size(1) == image.size(2) &&
                  mask.size(2) == image.size(3),
              "image encoder: image_mask must be [B, H, W] matching image ", image.sizes(),
              ", got ", mask.sizes());

  // Each image fills the top-left (height, width) of its canvas, as collate pads.
  torch::Tensor valid;  // [B, 2] int64 (h, w); undefined without a mask
  if (image_mask.defined()) {
    auto inside = mask.logical_not();
    valid = torch::stack({inside.any(2).sum(1), inside.any(1).sum(1)}, 1);
    TORCH_CHECK(torch::equal(valid_region(valid, image.size(2), image.size(3)), inside),
                "image encoder: image_mask must mark padding at the bottom and right of each "
                "image only (one top-left rectangle of image per sample, as collate pads)");
  }
  auto features = backbone->forward(image, valid);  // [B, C, h, w]
  const int64_t h = features.size(2), w = features.size(3);
  // The padding on the feature grid by the backbone's own output-size arithmetic, so that
  // a feature is masked exactly when the backbone held it at zero.
  auto feature_mask =
      valid.defined()
          ? valid_region(backbone->feature_valid(valid), h, w).logical_not()
          : torch::zeros({batch, h, w}, image.options().dtype(torch::kBool));  // [B, h, w]
  auto pos = unitrain::nn::position_embedding_sine(
      feature_mask,
      unitrain::nn::PositionEmbeddingSineOptions().num_pos_feats(options.hidden_dim() / 2));

  auto src = input_proj(features).flatten(2).permute({2, 0, 1});  // [hw, B, D]
  pos = pos.to(src.dtype()).flatten(2).permute({2, 0, 1});       // [hw, B, D]
  auto key_mask = feature_mask.flatten(1);                        // [B, hw]

  if (task_embeddings) {
    TORCH_CHECK(task_index >= 0 && task_index < options.max_tasks(),
                "image encoder: task_index ", task_index, " outside [0, max_tasks=",
                options.max_tasks(), ")");
    auto token = task_embeddings->weight[task_index].view({1, 1, -1}).expand({1, batch, -1});
    src = torch::cat({token, src}, 0);
    pos = torch::cat({torch::zeros_like(pos.narrow(0, 0, 1)), pos}, 0);
    key_mask = torch::cat({torch::zeros_like(key_mask.narrow(1, 0, 1)), key_mask}, 1);
  }

  auto memory = encoder(src, key_mask, pos);
  if (task_embeddings && !options.keep_task_token()) {
    // As MMF: the token steers the encoder but is not handed to the decoder.
    src = src.narrow(0, 1, src.size(0) - 1);
    pos = pos.narrow(0, 1, pos.size(0) - 1);
    key_mask = key_mask.narrow(1, 1, key_mask.size(1) - 1);
    memory = memory.narrow(0, 1, memory.size(0) - 1);
  }
  if (options.residual()) memory = src + memory;
  if (output_proj) {
    memory = output_proj(memory);
    pos = pos_proj(pos);
  }
  return {memory.transpose(0, 1), key_mask, pos.transpose(0, 1)};
}

}  // namespace unitrain::image

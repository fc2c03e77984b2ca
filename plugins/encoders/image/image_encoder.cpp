#include "image_encoder.h"

#include <algorithm>

#include "unitrain/errors.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace unitrain::image {
namespace {

using options::key_path;
using options::read;

int64_t stage_index(const std::string& return_layer, const std::string& where) {
  for (int64_t i = 1; i <= 4; ++i) {
    if (return_layer == "layer" + std::to_string(i)) return i;
  }
  throw ConfigError(key_path(where, "return_layer") + ": unknown stage \"" + return_layer +
                    "\" (valid: layer1, layer2, layer3, layer4)");
}

}  // namespace

ImageEncoderOptions image_encoder_options_from_json(const nlohmann::json& j,
                                                    const std::string& where) {
  ImageEncoderOptions o;
  read(j, where, "depth", o.depth());
  read(j, where, "width", o.width());
  read(j, where, "layers", o.layers());
  read(j, where, "dilation", o.dilation());
  read(j, where, "return_layer", o.return_layer());
  read(j, where, "trainable_layers", o.trainable_layers());
  read(j, where, "hidden_dim", o.hidden_dim());
  read(j, where, "num_layers", o.num_layers());
  read(j, where, "num_heads", o.num_heads());
  read(j, where, "dim_feedforward", o.dim_feedforward());
  read(j, where, "dropout", o.dropout());
  read(j, where, "residual", o.residual());
  read(j, where, "task_token", o.task_token());
  read(j, where, "max_tasks", o.max_tasks());
  read(j, where, "keep_task_token", o.keep_task_token());
  read(j, where, "output_dim", o.output_dim());

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
  stage_index(o.return_layer(), where);
  if (o.trainable_layers() < 0 || o.trainable_layers() > 5) {
    throw ConfigError(key_path(where, "trainable_layers") + ": must be 0..5, got " +
                      std::to_string(o.trainable_layers()));
  }
  if (o.width() < 1) throw ConfigError(key_path(where, "width") + ": must be positive");
  if (o.hidden_dim() < 2 || o.hidden_dim() % 2 != 0) {
    throw ConfigError(key_path(where, "hidden_dim") +
                      ": must be positive and even (half of it encodes y, half x), got " +
                      std::to_string(o.hidden_dim()));
  }
  if (o.num_heads() < 1 || o.hidden_dim() % o.num_heads() != 0) {
    throw ConfigError(key_path(where, "num_heads") + ": must divide hidden_dim (" +
                      std::to_string(o.hidden_dim()) + "), got " + std::to_string(o.num_heads()));
  }
  if (o.num_layers() < 0) throw ConfigError(key_path(where, "num_layers") + ": must be >= 0");
  if (o.dim_feedforward() < 1) {
    throw ConfigError(key_path(where, "dim_feedforward") + ": must be positive");
  }
  if (o.dropout() < 0 || o.dropout() >= 1) {
    throw ConfigError(key_path(where, "dropout") + ": must be in [0, 1)");
  }
  if (o.max_tasks() < 1) throw ConfigError(key_path(where, "max_tasks") + ": must be positive");
  if (o.output_dim() < 1) throw ConfigError(key_path(where, "output_dim") + ": must be positive");
  return o;
}

nlohmann::json to_json(const ImageEncoderOptions& o) {
  return {{"depth", o.depth()},
          {"width", o.width()},
          {"layers", o.layers()},
          {"dilation", o.dilation()},
          {"return_layer", o.return_layer()},
          {"trainable_layers", o.trainable_layers()},
          {"hidden_dim", o.hidden_dim()},
          {"num_layers", o.num_layers()},
          {"num_heads", o.num_heads()},
          {"dim_feedforward", o.dim_feedforward()},
          {"dropout", o.dropout()},
          {"residual", o.residual()},
          {"task_token", o.task_token()},
          {"max_tasks", o.max_tasks()},
          {"keep_task_token", o.keep_task_token()},
          {"output_dim", o.output_dim()}};
}

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

namespace {

// Every key with its default; the host rejects keys not listed here.
constexpr const char* kDefaultsJson = R"({
  "depth": 50, "width": 64, "layers": [], "dilation": false, "return_layer": "layer4",
  "trainable_layers": 3, "hidden_dim": 256, "num_layers": 6, "num_heads": 8,
  "dim_feedforward": 2048, "dropout": 0.1, "residual": true, "task_token": false,
  "max_tasks": 256, "keep_task_token": false, "output_dim": 768
})";

std::shared_ptr<unitrain::Encoder> make_image_encoder(const nlohmann::json& options) {
  auto o = unitrain::image::image_encoder_options_from_json(options, "");
  return std::make_shared<unitrain::image::ImageEncoderImpl>(o);
}

}  // namespace

UNITRAIN_PLUGIN(kImageEncoder, unitrain::Encoder, "encoder", "image", "0.1.0",
                "ResNet + DETR transformer image encoder (UniT)", kDefaultsJson, kReadme,
                make_image_encoder);
UNITRAIN_EXPORT_PLUGINS(&kImageEncoder);

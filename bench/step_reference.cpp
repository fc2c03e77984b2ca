#include "step_reference.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace step_reference {
namespace {

namespace F = torch::nn::functional;

// unit_small.json's sizes: every transformer is d = 128, 4 heads, FFN 256, 2 layers,
// dropout 0.1; ResNet-18 at width 64 to layer4.
constexpr int64_t kDModel = 128;
constexpr int64_t kHeads = 4;
constexpr int64_t kFeedForward = 256;
constexpr int64_t kLayers = 2;
constexpr double kDropout = 0.1;
constexpr int64_t kResNetWidth = 64;
const std::vector<int64_t> kResNetBlocks = {2, 2, 2, 2};
constexpr double kBertEps = 1e-12;   // BERT's and UniT's classifier LayerNorm epsilon
constexpr double kBertInitStd = 0.02;

// DETR's loss and matching weights.
constexpr double kCostClass = 1.0, kCostBbox = 5.0, kCostGiou = 2.0;
constexpr double kLossCe = 1.0, kLossBbox = 5.0, kLossGiou = 2.0, kLossAttribute = 1.0;
constexpr double kEosCoef = 0.1;

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

torch::Tensor with_pos(const torch::Tensor& x, const torch::Tensor& pos) {
  return pos.defined() ? x + pos : x;
}

// Xavier-uniform on every matrix (DETR's Transformer._reset_parameters).
void xavier_matrices(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() > 1) torch::nn::init::xavier_uniform_(p);
  }
}

// ---------------------------------------------------------------------------------
// DETR's util/box_ops.py.

torch::Tensor box_cxcywh_to_xyxy(const torch::Tensor& b) {
  auto c = b.unbind(-1);
  return torch::stack({c[0] - 0.5 * c[2], c[1] - 0.5 * c[3], c[0] + 0.5 * c[2], c[1] + 0.5 * c[3]},
                      -1);
}

torch::Tensor box_area(const torch::Tensor& b) {
  return (b.select(1, 2) - b.select(1, 0)) * (b.select(1, 3) - b.select(1, 1));
}

// a [N, 4], b [M, 4] xyxy -> [N, M]
torch::Tensor generalized_box_iou(const torch::Tensor& a, const torch::Tensor& b) {
  auto area1 = box_area(a), area2 = box_area(b);
  auto a_lo = a.narrow(1, 0, 2).unsqueeze(1), a_hi = a.narrow(1, 2, 2).unsqueeze(1);
  auto b_lo = b.narrow(1, 0, 2), b_hi = b.narrow(1, 2, 2);
  auto wh = (torch::min(a_hi, b_hi) - torch::max(a_lo, b_lo)).clamp_min(0);  // [N, M, 2]
  auto inter = wh.select(2, 0) * wh.select(2, 1);
  auto union_ = area1.unsqueeze(1) + area2 - inter;
  auto iou = inter / union_;
  auto hull = (torch::max(a_hi, b_hi) - torch::min(a_lo, b_lo)).clamp_min(0);
  auto area = hull.select(2, 0) * hull.select(2, 1);
  return iou - (area - union_) / area;
}

// ---------------------------------------------------------------------------------
// Hungarian matching: scipy's linear_sum_assignment and DETR's HungarianMatcher.

// Minimum-cost assignment of a [R, C] cost matrix (CPU, double, contiguous): the
// shortest-augmenting-path Hungarian algorithm, O(R^2 C) with R <= C. Returns
// min(R, C) (row, col) pairs.
std::vector<std::pair<int64_t, int64_t>> linear_sum_assignment(const torch::Tensor& cost) {
  if (cost.size(0) > cost.size(1)) {
    auto pairs = linear_sum_assignment(cost.t().contiguous());
    for (auto& p : pairs) std::swap(p.first, p.second);
    return pairs;
  }
  const int64_t n = cost.size(0), m = cost.size(1);
  const double* a = cost.data_ptr<double>();
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based potentials u (rows), v (columns); p[j] = row matched to column j.
  std::vector<double> u(n + 1, 0.0), v(m + 1, 0.0);
  std::vector<int64_t> p(m + 1, 0), way(m + 1, 0);
  for (int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    int64_t j0 = 0;
    std::vector<double> minv(m + 1, inf);
    std::vector<bool> used(m + 1, false);
    do {
      used[j0] = true;
      const int64_t i0 = p[j0];
      double delta = inf;
      int64_t j1 = 0;
      for (int64_t j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const double cur = a[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int64_t j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const int64_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t j = 1; j <= m; ++j) {
    if (p[j] != 0) pairs.emplace_back(p[j] - 1, j - 1);
  }
  return pairs;
}

struct Match {
  torch::Tensor batch, query, target;  // [K] int64 each: image, its query, its target
};

// DETR's HungarianMatcher: the full [B*Q, sum N] cost matrix, its per-image blocks
// solved on the CPU. logits [B, Q, C+1], boxes [B, Q, 4]; targets on the same device.
Match hungarian_match(const torch::Tensor& logits, const torch::Tensor& boxes,
                      const std::vector<torch::Tensor>& classes,
                      const std::vector<torch::Tensor>& target_boxes) {
  torch::NoGradGuard no_grad;
  const int64_t b = logits.size(0), q = logits.size(1);
  auto tgt_ids = torch::cat(classes);
  auto tgt_bbox = torch::cat(target_boxes);
  std::vector<int64_t> batch_idx, query_idx, target_idx;
  if (tgt_ids.numel() > 0) {
    auto out_prob = logits.flatten(0, 1).softmax(-1);          // [B*Q, C+1]
    auto out_bbox = boxes.flatten(0, 1).to(tgt_bbox.dtype());  // [B*Q, 4]
    auto cost_class = -out_prob.index_select(1, tgt_ids);
    auto cost_bbox = torch::cdist(out_bbox, tgt_bbox, 1);
    auto cost_giou = -generalized_box_iou(box_cxcywh_to_xyxy(out_bbox), box_cxcywh_to_xyxy(tgt_bbox));
    auto c = (kCostBbox * cost_bbox + kCostClass * cost_class + kCostGiou * cost_giou)
                 .view({b, q, -1})
                 .to(torch::kCPU, torch::kDouble);
    int64_t offset = 0;
    for (int64_t i = 0; i < b; ++i) {
      const int64_t n = classes[i].numel();
      if (n == 0) continue;
      auto block = c[i].narrow(1, offset, n).contiguous();  // [Q, N_i]
      offset += n;
      for (const auto& [query, target] : linear_sum_assignment(block)) {
        batch_idx.push_back(i);
        query_idx.push_back(query);
        target_idx.push_back(target);
      }
    }
  }
  const auto device = logits.device();
  auto to_tensor = [&](const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::kLong).to(device);
  };
  return {to_tensor(batch_idx), to_tensor(query_idx), to_tensor(target_idx)};
}

// The matched targets of every image, concatenated in match order: rows of
// per_image[i] picked by the matches of image i.
torch::Tensor matched_rows(const std::vector<torch::Tensor>& per_image, const Match& match) {
  std::vector<torch::Tensor> offsets;
  int64_t offset = 0;
  for (const auto& t : per_image) {
    offsets.push_back(torch::tensor(offset, torch::kLong));
    offset += t.size(0);
  }
  auto start = torch::stack(offsets).to(match.batch.device()).index_select(0, match.batch);
  return torch::cat(per_image).index_select(0, start + match.target);
}

}  // namespace

// ---------------------------------------------------------------------------------
// ResNet

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t num_features) {
  weight = register_buffer("weight", torch::ones({num_features}));
  bias = register_buffer("bias", torch::zeros({num_features}));
  running_mean = register_buffer("running_mean", torch::zeros({num_features}));
  running_var = register_buffer("running_var", torch::ones({num_features}));
}

torch::Tensor FrozenBatchNorm2dImpl::forward(const torch::Tensor& x) {
  auto scale = weight * (running_var + 1e-5).rsqrt();
  auto shift = bias - running_mean * scale;
  // NOTE: cast to x's dtype, so that under autocast the activations stay in half
  // precision between convolutions (DETR's version promotes them to float32).
  return x * scale.view({1, -1, 1, 1}).to(x.dtype()) + shift.view({1, -1, 1, 1}).to(x.dtype());
}

BasicBlockImpl::BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", conv(in_planes, planes, 3, stride, 1));
  bn1 = register_module("bn1", FrozenBatchNorm2d(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", FrozenBatchNorm2d(planes));
  if (stride != 1 || in_planes != planes) {
    downsample = register_module(
        "downsample", torch::nn::Sequential(conv(in_planes, planes, 1, stride, 0), FrozenBatchNorm2d(planes)));
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  auto out = torch::relu(bn1(conv1(x)));
  out = bn2(conv2(out));
  return torch::relu(out + (downsample ? downsample->forward(x) : x));
}

ResNetImpl::ResNetImpl(int64_t width, const std::vector<int64_t>& blocks) {
  TORCH_CHECK(blocks.size() == 4, "ResNet: expected 4 stages, got ", blocks.size());
  conv1 = register_module("conv1", conv(3, width, 7, 2, 3));
  bn1 = register_module("bn1", FrozenBatchNorm2d(width));
  maxpool = register_module("maxpool",
                            torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t in = width;
  torch::nn::Sequential* stages[] = {&layer1, &layer2, &layer3, &layer4};
  for (int64_t s = 0; s < 4; ++s) {
    const int64_t planes = width << s;
    torch::nn::Sequential stage;
    for (int64_t b = 0; b < blocks[s]; ++b) {
      stage->push_back(BasicBlock(in, planes, b == 0 && s > 0 ? 2 : 1));
      in = planes;
    }
    *stages[s] = register_module("layer" + std::to_string(s + 1), stage);
  }
  num_channels_ = in;
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  auto y = maxpool(torch::relu(bn1(conv1(x))));
  return layer4->forward(layer3->forward(layer2->forward(layer1->forward(y))));
}

// ---------------------------------------------------------------------------------
// Image encoder

torch::Tensor position_embedding_sine(const torch::Tensor& mask, int64_t num_pos_feats) {
  constexpr double kScale = 2.0 * 3.14159265358979323846, kTemperature = 10000.0, kEps = 1e-6;
  auto not_mask = mask.logical_not();
  auto y_embed = not_mask.cumsum(1, torch::kFloat32);  // [B, H, W]
  auto x_embed = not_mask.cumsum(2, torch::kFloat32);
  y_embed = y_embed / (y_embed.narrow(1, y_embed.size(1) - 1, 1) + kEps) * kScale;
  x_embed = x_embed / (x_embed.narrow(2, x_embed.size(2) - 1, 1) + kEps) * kScale;
  auto dim_t = torch::arange(num_pos_feats, mask.options().dtype(torch::kFloat32));
  dim_t = torch::pow(kTemperature, 2 * torch::floor(dim_t / 2) / num_pos_feats);
  auto encode = [&](const torch::Tensor& embed) {
    auto p = embed.unsqueeze(-1) / dim_t;  // [B, H, W, F]
    using torch::indexing::Slice;
    using torch::indexing::None;
    auto sin = p.index({"...", Slice(0, None, 2)}).sin();
    auto cos = p.index({"...", Slice(1, None, 2)}).cos();
    return torch::stack({sin, cos}, 4).flatten(3);
  };
  return torch::cat({encode(y_embed), encode(x_embed)}, 3).permute({0, 3, 1, 2});
}

DetrEncoderLayerImpl::DetrEncoderLayerImpl(int64_t d_model, int64_t num_heads,
                                           int64_t dim_feedforward, double p) {
  self_attn = register_module(
      "self_attn",
      torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(d_model, num_heads).dropout(p)));
  linear1 = register_module("linear1", torch::nn::Linear(d_model, dim_feedforward));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  linear2 = register_module("linear2", torch::nn::Linear(dim_feedforward, d_model));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  dropout1 = register_module("dropout1", torch::nn::Dropout(p));
  dropout2 = register_module("dropout2", torch::nn::Dropout(p));
}

torch::Tensor DetrEncoderLayerImpl::forward(const torch::Tensor& src,
                                            const torch::Tensor& key_padding_mask,
                                            const torch::Tensor& pos) {
  auto q = with_pos(src, pos);
  auto attn = std::get<0>(self_attn->forward(q, q, src, key_padding_mask, /*need_weights=*/false));
  auto x = norm1(src + dropout1(attn));
  auto ff = linear2(dropout(torch::relu(linear1(x))));
  return norm2(x + dropout2(ff));
}

ImageEncoderImpl::ImageEncoderImpl() {
  backbone = register_module("backbone", ResNet(kResNetWidth, kResNetBlocks));
  input_proj = register_module(
      "input_proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(backbone->num_channels(), kDModel, 1)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < kLayers; ++i) {
    layers->push_back(DetrEncoderLayer(kDModel, kHeads, kFeedForward, kDropout));
  }
  xavier_matrices(*layers);
}

Memory ImageEncoderImpl::forward(const torch::Tensor& image, const torch::Tensor& image_mask) {
  TORCH_CHECK(image.dim() == 4 && image.size(1) == 3, "image encoder: expected [B, 3, H, W], got ",
              image.sizes());
  auto features = backbone(image);  // [B, C, h, w]
  auto pixel_mask = image_mask.defined()
                        ? image_mask.to(torch::kBool)
                        : torch::zeros({image.size(0), image.size(2), image.size(3)},
                                       image.options().dtype(torch::kBool));
  // DETR's NestedTensor mask, resized to the feature map by nearest interpolation.
  auto mask = F::interpolate(pixel_mask.unsqueeze(1).to(torch::kFloat32),
                             F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{features.size(2), features.size(3)})
                                 .mode(torch::kNearest))
                  .squeeze(1)
                  .to(torch::kBool);  // [B, h, w]
  auto src = input_proj(features);    // [B, D, h, w]
  auto pos = position_embedding_sine(mask, kDModel / 2).to(src.dtype());
  src = src.flatten(2).permute({2, 0, 1});  // [hw, B, D]
  pos = pos.flatten(2).permute({2, 0, 1});  // [hw, B, D]
  auto key_mask = mask.flatten(1);          // [B, hw]
  auto x = src;
  for (const auto& layer : *layers) x = layer->as<DetrEncoderLayerImpl>()->forward(x, key_mask, pos);
  return {src + x, key_mask, pos};
}

// ---------------------------------------------------------------------------------
// Text encoder

TextEncoderImpl::TextEncoderImpl(int64_t vocab_size, int64_t max_position) {
  word_embeddings = register_module("word_embeddings", torch::nn::Embedding(vocab_size, kDModel));
  position_embeddings =
      register_module("position_embeddings", torch::nn::Embedding(max_position, kDModel));
  token_type_embeddings = register_module("token_type_embeddings", torch::nn::Embedding(2, kDModel));
  layer_norm = register_module(
      "layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({kDModel}).eps(kBertEps)));
  dropout = register_module("dropout", torch::nn::Dropout(kDropout));
  auto layer = torch::nn::TransformerEncoderLayerOptions(kDModel, kHeads)
                   .dim_feedforward(kFeedForward)
                   .dropout(kDropout)
                   .activation(torch::kGELU);
  encoder = register_module(
      "encoder", torch::nn::TransformerEncoder(torch::nn::TransformerEncoderOptions(layer, kLayers)));
  projection = register_module("projection", torch::nn::Linear(kDModel, kDModel));
  pos_projection = register_module("pos_projection", torch::nn::Linear(kDModel, kDModel));

  torch::NoGradGuard no_grad;
  for (auto& m : encoder->modules(/*include_self=*/false)) {
    // NOTE: LibTorch's TransformerEncoderLayerOptions has no layer_norm_eps; BERT's
    // 1e-12 is set on the layers' LayerNorms after they are built.
    if (auto* norm = m->as<torch::nn::LayerNorm>()) norm->options.eps(kBertEps);
  }
  // BERT's initialization: N(0, 0.02) matrices and embeddings, zero biases.
  for (auto* module : {static_cast<torch::nn::Module*>(word_embeddings.get()),
                       static_cast<torch::nn::Module*>(position_embeddings.get()),
                       static_cast<torch::nn::Module*>(token_type_embeddings.get()),
                       static_cast<torch::nn::Module*>(encoder.get())}) {
    for (auto& p : module->named_parameters()) {
      if (p.value().dim() > 1) {
        p.value().normal_(0.0, kBertInitStd);
      } else if (p.key().find("norm") == std::string::npos) {
        p.value().zero_();
      }
    }
  }
}

Memory TextEncoderImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& text_mask,
                                const torch::Tensor& segment_ids) {
  TORCH_CHECK(input_ids.dim() == 2, "text encoder: expected input_ids [B, T], got ",
              input_ids.sizes());
  const int64_t batch = input_ids.size(0), length = input_ids.size(1);
  auto mask = text_mask.defined() ? text_mask.to(torch::kBool)
                                  : torch::zeros_like(input_ids, input_ids.options().dtype(torch::kBool));
  auto segments = segment_ids.defined() ? segment_ids : torch::zeros_like(input_ids);
  auto positions = torch::arange(length, input_ids.options().dtype(torch::kLong));
  auto x = word_embeddings(input_ids) + position_embeddings(positions).unsqueeze(0) +
           token_type_embeddings(segments);          // [B, T, D]
  x = dropout(layer_norm(x)).transpose(0, 1);         // [T, B, D]
  x = encoder(x, /*src_mask=*/torch::Tensor(), mask);  // [T, B, D]
  auto pos = pos_projection(position_embeddings(positions)).unsqueeze(1).expand({length, batch, -1});
  return {projection(x), mask, pos};
}

// ---------------------------------------------------------------------------------
// Decoder

DetrDecoderLayerImpl::DetrDecoderLayerImpl(int64_t d_model, int64_t num_heads,
                                           int64_t dim_feedforward, double p) {
  auto attention = torch::nn::MultiheadAttentionOptions(d_model, num_heads).dropout(p);
  self_attn = register_module("self_attn", torch::nn::MultiheadAttention(attention));
  multihead_attn = register_module("multihead_attn", torch::nn::MultiheadAttention(attention));
  linear1 = register_module("linear1", torch::nn::Linear(d_model, dim_feedforward));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  linear2 = register_module("linear2", torch::nn::Linear(dim_feedforward, d_model));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  norm3 = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  dropout1 = register_module("dropout1", torch::nn::Dropout(p));
  dropout2 = register_module("dropout2", torch::nn::Dropout(p));
  dropout3 = register_module("dropout3", torch::nn::Dropout(p));
}

torch::Tensor DetrDecoderLayerImpl::forward(const torch::Tensor& tgt, const torch::Tensor& memory,
                                            const torch::Tensor& memory_mask,
                                            const torch::Tensor& pos,
                                            const torch::Tensor& query_pos) {
  auto q = with_pos(tgt, query_pos);
  auto attn = std::get<0>(self_attn->forward(q, q, tgt, torch::Tensor(), /*need_weights=*/false));
  auto x = norm1(tgt + dropout1(attn));
  auto cross = std::get<0>(multihead_attn->forward(with_pos(x, query_pos), with_pos(memory, pos),
                                                   memory, memory_mask, /*need_weights=*/false));
  x = norm2(x + dropout2(cross));
  auto ff = linear2(dropout(torch::relu(linear1(x))));
  return norm3(x + dropout3(ff));
}

DecoderImpl::DecoderImpl(const std::vector<TaskSpec>& tasks) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < kLayers; ++i) {
    layers->push_back(DetrDecoderLayer(kDModel, kHeads, kFeedForward, kDropout));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({kDModel})));
  xavier_matrices(*layers);
  query_embed = register_module("query_embed", torch::nn::ModuleDict());
  for (const auto& t : tasks) {
    query_embed->update({{t.name, torch::nn::Embedding(t.num_queries, kDModel).ptr()}});
  }
}

torch::Tensor DecoderImpl::forward(const std::string& task, const Memory& memory) {
  const int64_t batch = memory.memory.size(1);
  auto query_pos = query_embed[task]->as<torch::nn::Embedding>()->weight.unsqueeze(1).repeat(
      {1, batch, 1});  // [Q, B, D]
  auto x = torch::zeros_like(query_pos);
  std::vector<torch::Tensor> intermediate;
  for (const auto& layer : *layers) {
    x = layer->as<DetrDecoderLayerImpl>()->forward(x, memory.memory, memory.mask, memory.pos,
                                                   query_pos);
    intermediate.push_back(norm(x));
  }
  return torch::stack(intermediate).transpose(1, 2);  // [L, B, Q, D]
}

// ---------------------------------------------------------------------------------
// Heads

DetrHeadImpl::DetrHeadImpl(int64_t d_model, int64_t num_classes, int64_t num_attributes)
    : num_classes_(num_classes), num_attributes_(num_attributes) {
  class_embed = register_module("class_embed", torch::nn::Linear(d_model, num_classes + 1));
  bbox_embed = register_module(
      "bbox_embed", torch::nn::ModuleList(torch::nn::Linear(d_model, d_model),
                                          torch::nn::Linear(d_model, d_model),
                                          torch::nn::Linear(d_model, 4)));
  if (num_attributes > 0) {
    // unit_small's vg head: attribute_class_embed_dim 32, attribute_hidden_dim 64.
    constexpr int64_t kClassEmbed = 32, kHidden = 64;
    attribute_class_embed = register_module("attribute_class_embed",
                                            torch::nn::Embedding(num_classes + 1, kClassEmbed));
    attribute_fc1 = register_module("attribute_fc1", torch::nn::Linear(d_model + kClassEmbed, kHidden));
    attribute_fc2 = register_module("attribute_fc2", torch::nn::Linear(kHidden, num_attributes));
  }
  auto weight = torch::ones({num_classes + 1});
  weight[num_classes] = kEosCoef;
  empty_weight = register_buffer("empty_weight", weight);
}

torch::Tensor DetrHeadImpl::loss(const torch::Tensor& hs, const Inputs& in) {
  const int64_t layers = hs.size(0), batch = hs.size(1), queries = hs.size(2);
  TORCH_CHECK(static_cast<int64_t>(in.boxes.size()) == batch &&
                  static_cast<int64_t>(in.classes.size()) == batch,
              "detr head: ", batch, " images but ", in.boxes.size(), " box and ", in.classes.size(),
              " class tensors");
  const auto device = hs.device();
  std::vector<torch::Tensor> classes, boxes, attributes;
  int64_t num_boxes = 0;
  for (int64_t i = 0; i < batch; ++i) {
    classes.push_back(in.classes[i].to(device, torch::kLong).reshape({-1}));
    boxes.push_back(in.boxes[i].to(device, torch::kFloat32).reshape({-1, 4}));
    if (num_attributes_ > 0) {
      TORCH_CHECK(static_cast<int64_t>(in.attributes.size()) == batch && in.attributes[i].defined() &&
                      in.attributes[i].dim() == 2 &&
                      in.attributes[i].size(0) == classes.back().numel(),
                  "detr head: attributes need one [N, K] tensor (-1 padded) per image");
      attributes.push_back(in.attributes[i].to(device, torch::kLong));
    }
    num_boxes += classes.back().numel();
  }
  const double normalizer = std::max<int64_t>(num_boxes, 1);

  auto logits = class_embed(hs);  // [L, B, Q, C+1]
  auto x = hs;
  for (size_t i = 0; i < bbox_embed->size(); ++i) {
    x = bbox_embed[i]->as<torch::nn::Linear>()->forward(x);
    if (i + 1 < bbox_embed->size()) x = torch::relu(x);
  }
  auto pred_boxes = x.sigmoid();  // [L, B, Q, 4]

  torch::Tensor total = torch::zeros({}, hs.options().dtype(torch::kFloat32));
  for (int64_t l = 0; l < layers; ++l) {
    const auto layer_logits = logits[l], layer_boxes = pred_boxes[l];
    const Match match = hungarian_match(layer_logits, layer_boxes, classes, boxes);
    auto target_classes_o = matched_rows(classes, match);  // [K]

    // Classification: unmatched queries learn "no object" (class C).
    auto target_classes = torch::full({batch, queries}, num_classes_,
                                      torch::dtype(torch::kLong).device(device));
    target_classes.index_put_({match.batch, match.query}, target_classes_o);
    auto loss_ce = F::cross_entropy(layer_logits.transpose(1, 2), target_classes,
                                    F::CrossEntropyFuncOptions().weight(empty_weight));

    // Boxes: L1 and GIoU over matched pairs, normalized by the number of targets.
    auto src_boxes = layer_boxes.index({match.batch, match.query});  // [K, 4]
    auto target_boxes = matched_rows(boxes, match).to(src_boxes.dtype());
    auto loss_bbox = (src_boxes - target_boxes).abs().sum() / normalizer;
    auto giou = torch::diagonal(
        generalized_box_iou(box_cxcywh_to_xyxy(src_boxes), box_cxcywh_to_xyxy(target_boxes)));
    auto loss_giou = (1 - giou).sum() / normalizer;
    total = total + kLossCe * loss_ce + kLossBbox * loss_bbox + kLossGiou * loss_giou;

    if (num_attributes_ > 0 && l == layers - 1) {
      // Multi-label BCE over each matched box's attribute ids (-1 = padding), averaged
      // over attributes and over the boxes with at least one attribute.
      auto ids = matched_rows(attributes, match);  // [K, 16]
      auto valid = ids.ge(0);
      auto multi_hot = torch::zeros({ids.size(0), num_attributes_ + 1}, hs.options());
      multi_hot.scatter_(1, torch::where(valid, ids, torch::full_like(ids, num_attributes_)), 1.0);
      multi_hot = multi_hot.narrow(1, 0, num_attributes_);
      auto hidden = hs[l].index({match.batch, match.query});  // [K, D]
      auto embed = attribute_class_embed(target_classes_o).to(hidden.dtype());
      auto attribute_logits = attribute_fc2(torch::relu(attribute_fc1(torch::cat({hidden, embed}, -1))));
      auto per_box = F::binary_cross_entropy_with_logits(
                         attribute_logits, multi_hot.to(attribute_logits.dtype()),
                         F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone))
                         .mean(-1);
      auto has_any = valid.any(-1).to(per_box.dtype());
      total = total + kLossAttribute * (per_box * has_any).sum() / has_any.sum().clamp_min(1.0);
    }
  }
  return total;
}

ClassifierHeadImpl::ClassifierHeadImpl(int64_t d_model, int64_t num_labels, bool soft_labels)
    : num_labels_(num_labels), soft_labels_(soft_labels) {
  dropout = register_module("dropout", torch::nn::Dropout(kDropout));
  fc1 = register_module("fc1", torch::nn::Linear(d_model, d_model));
  norm = register_module("norm",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model}).eps(kBertEps)));
  fc2 = register_module("fc2", torch::nn::Linear(d_model, num_labels));
}

torch::Tensor ClassifierHeadImpl::loss(const torch::Tensor& hs, const Inputs& in) {
  auto x = hs[hs.size(0) - 1].select(1, 0);  // [B, D]: the first query of the last layer
  auto logits = fc2(norm(torch::gelu(fc1(dropout(x)))));  // [B, C]
  if (soft_labels_) {
    TORCH_CHECK(in.soft_labels.defined() && in.soft_labels.sizes() == logits.sizes(),
                "classifier: soft_labels must be ", logits.sizes(), ", got ",
                in.soft_labels.defined() ? in.soft_labels.sizes() : torch::IntArrayRef{});
    auto targets = in.soft_labels.to(logits.device(), logits.scalar_type());
    return F::binary_cross_entropy_with_logits(logits, targets) * static_cast<double>(num_labels_);
  }
  TORCH_CHECK(in.labels.defined(), "classifier: cross-entropy needs labels");
  return F::cross_entropy(logits, in.labels.to(logits.device(), torch::kLong));
}

// ---------------------------------------------------------------------------------

UnitSmallImpl::UnitSmallImpl(const std::vector<TaskSpec>& tasks, int64_t vocab_size,
                             int64_t max_position)
    : tasks_(tasks) {
  bool image = false, text = false;
  for (const auto& t : tasks) {
    TORCH_CHECK(t.image || t.text, "task '", t.name, "' reads neither encoder");
    TORCH_CHECK(t.kind == "detection" || t.kind == "classification" ||
                    t.kind == "soft_classification",
                "task '", t.name, "': unknown kind '", t.kind,
                "' (expected detection, classification or soft_classification)");
    TORCH_CHECK(t.num_classes > 0 && t.num_queries > 0, "task '", t.name,
                "' needs num_classes and num_queries > 0");
    image = image || t.image;
    text = text || t.text;
  }
  // Registration order as unitrain's: encoders (image, text), decoder, heads.
  if (image) image_encoder = register_module("image_encoder", ImageEncoder());
  if (text) text_encoder = register_module("text_encoder", TextEncoder(vocab_size, max_position));
  decoder = register_module("decoder", Decoder(tasks));
  heads = register_module("heads", torch::nn::ModuleDict());
  for (const auto& t : tasks) {
    std::shared_ptr<torch::nn::Module> head;
    if (t.kind == "detection") {
      head = DetrHead(kDModel, t.num_classes, t.num_attributes).ptr();
    } else {
      head = ClassifierHead(kDModel, t.num_classes, t.kind == "soft_classification").ptr();
    }
    heads->update({{t.name, head}});
  }
}

const TaskSpec& UnitSmallImpl::spec(const std::string& task) const {
  std::string known;
  for (const auto& t : tasks_) {
    if (t.name == task) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  throw std::invalid_argument("step_reference: unknown task '" + task + "' (tasks: " + known + ")");
}

torch::Tensor UnitSmallImpl::loss(const std::string& task, const Inputs& in) {
  const TaskSpec& s = spec(task);
  std::vector<Memory> parts;
  if (s.image) parts.push_back(image_encoder(in.image, in.image_mask));
  if (s.text) parts.push_back(text_encoder(in.input_ids, in.text_mask, in.segment_ids));
  Memory memory = parts[0];
  if (parts.size() > 1) {
    memory = {torch::cat({parts[0].memory, parts[1].memory}, 0),
              torch::cat({parts[0].mask, parts[1].mask}, 1),
              torch::cat({parts[0].pos, parts[1].pos}, 0)};
  }
  auto hs = decoder->forward(task, memory);  // [L, B, Q, D]
  if (s.kind == "detection") return heads[task]->as<DetrHeadImpl>()->loss(hs, in);
  return heads[task]->as<ClassifierHeadImpl>()->loss(hs, in);
}

int64_t UnitSmallImpl::parameter_count() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

}  // namespace step_reference

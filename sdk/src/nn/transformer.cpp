#include "unitrain/nn/transformer.h"

#include <cmath>
#include <stdexcept>

#include "unitrain/nn/batched_matmul.h"

namespace unitrain::nn {
namespace {

torch::Tensor with_pos(const torch::Tensor& x, const torch::Tensor& pos) {
  return pos.defined() ? x + pos : x;
}

void check_activation(const std::string& name) {
  TORCH_CHECK(name == "relu" || name == "gelu", "unknown activation '", name,
              "' (expected \"relu\" or \"gelu\")");
}

}  // namespace

torch::Tensor activation(const torch::Tensor& x, const std::string& name) {
  if (name == "relu") return torch::relu(x);
  if (name == "gelu") return torch::gelu(x);
  throw std::invalid_argument("unknown activation '" + name + "' (expected \"relu\" or \"gelu\")");
}

// ---------------------------------------------------------------------------------
// MultiheadAttention

MultiheadAttentionImpl::MultiheadAttentionImpl(const MultiheadAttentionOptions& options_)
    : options(options_) {
  reset();
}

void MultiheadAttentionImpl::reset() {
  const int64_t d = options.embed_dim();
  TORCH_CHECK(d > 0 && options.num_heads() > 0 && d % options.num_heads() == 0,
              "MultiheadAttention: embed_dim (", d, ") must be a positive multiple of num_heads (",
              options.num_heads(), ")");
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * d, d}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * d}));
  out_proj = register_module("out_proj", torch::nn::Linear(d, d));
  // As PyTorch: xavier on the packed projection, zero biases.
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(in_proj_weight);
  torch::nn::init::zeros_(out_proj->bias);
}

torch::Tensor MultiheadAttentionImpl::attend(torch::Tensor q, torch::Tensor k, torch::Tensor v,
                                             const torch::Tensor& key_padding_mask) {
  const int64_t tgt_len = q.size(0), batch = q.size(1), d = q.size(2);
  const int64_t src_len = k.size(0);
  const int64_t heads = options.num_heads(), head_dim = d / heads;
  // [L, B, D] -> [B*H, L, hd]
  q = q.contiguous().view({tgt_len, batch * heads, head_dim}).transpose(0, 1);
  k = k.contiguous().view({src_len, batch * heads, head_dim}).transpose(0, 1);
  v = v.contiguous().view({src_len, batch * heads, head_dim}).transpose(0, 1);
  q = q * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  auto weights = batched_matmul(q, k.transpose(1, 2));  // [B*H, L, S]
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.dim() == 2 && key_padding_mask.size(0) == batch &&
                    key_padding_mask.size(1) == src_len,
                "MultiheadAttention: key_padding_mask must be [B, S] = [", batch, ", ", src_len,
                "], got ", key_padding_mask.sizes());
    auto mask = key_padding_mask.to(torch::kBool).view({batch, 1, 1, src_len});
    weights = weights.view({batch, heads, tgt_len, src_len})
                  .masked_fill(mask, -std::numeric_limits<float>::infinity())
                  .view({batch * heads, tgt_len, src_len});
  }
  weights = torch::softmax(weights, -1);
  if (options.dropout() > 0 && is_training()) {
    weights = torch::dropout(weights, options.dropout(), /*train=*/true);
  }
  auto out = batched_matmul(weights, v);  // [B*H, L, hd]
  out = out.transpose(0, 1).contiguous().view({tgt_len, batch, d});
  return out_proj->forward(out);
}

torch::Tensor MultiheadAttentionImpl::forward(const torch::Tensor& query, const torch::Tensor& key,
                                              const torch::Tensor& value,
                                              const torch::Tensor& key_padding_mask) {
  const int64_t d = options.embed_dim();
  TORCH_CHECK(query.dim() == 3 && query.size(2) == d && key.dim() == 3 && key.size(2) == d &&
                  key.sizes() == value.sizes() && key.size(1) == query.size(1),
              "MultiheadAttention: expected query [L, B, ", d, "] and key/value [S, B, ", d,
              "], got query ", query.sizes(), ", key ", key.sizes(), ", value ", value.sizes());
  auto w = in_proj_weight.split(d, 0);
  auto b = in_proj_bias.split(d, 0);
  return attend(torch::linear(query, w[0], b[0]), torch::linear(key, w[1], b[1]),
                torch::linear(value, w[2], b[2]), key_padding_mask);
}

torch::Tensor MultiheadAttentionImpl::forward_self(const torch::Tensor& q_k,
                                                   const torch::Tensor& value,
                                                   const torch::Tensor& key_padding_mask) {
  const int64_t d = options.embed_dim();
  TORCH_CHECK(q_k.dim() == 3 && q_k.size(2) == d && q_k.sizes() == value.sizes(),
              "MultiheadAttention: expected q_k and value [S, B, ", d, "], got ", q_k.sizes(),
              " and ", value.sizes());
  auto qk = torch::linear(q_k, in_proj_weight.narrow(0, 0, 2 * d),
                          in_proj_bias.narrow(0, 0, 2 * d))
                .chunk(2, -1);
  auto v = torch::linear(value, in_proj_weight.narrow(0, 2 * d, d),
                         in_proj_bias.narrow(0, 2 * d, d));
  return attend(qk[0], qk[1], v, key_padding_mask);
}

// ---------------------------------------------------------------------------------
// Layers

namespace {
MultiheadAttentionOptions attention_options(const TransformerLayerOptions& o) {
  const double p = o.attention_dropout() < 0 ? o.dropout() : o.attention_dropout();
  return MultiheadAttentionOptions(o.d_model(), o.num_heads()).dropout(p);
}
torch::nn::LayerNormOptions norm_options(const TransformerLayerOptions& o) {
  return torch::nn::LayerNormOptions({o.d_model()}).eps(o.layer_norm_eps());
}
}  // namespace

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(const TransformerLayerOptions& options_)
    : options(options_) {
  reset();
}

void TransformerEncoderLayerImpl::reset() {
  check_activation(options.activation());
  self_attn = register_module("self_attn", MultiheadAttention(attention_options(options)));
  linear1 = register_module("linear1", torch::nn::Linear(options.d_model(), options.dim_feedforward()));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  linear2 = register_module("linear2", torch::nn::Linear(options.dim_feedforward(), options.d_model()));
  norm1 = register_module("norm1", torch::nn::LayerNorm(norm_options(options)));
  norm2 = register_module("norm2", torch::nn::LayerNorm(norm_options(options)));
  dropout1 = register_module("dropout1", torch::nn::Dropout(options.dropout()));
  dropout2 = register_module("dropout2", torch::nn::Dropout(options.dropout()));
}

torch::Tensor TransformerEncoderLayerImpl::forward(const torch::Tensor& src,
                                                   const torch::Tensor& key_padding_mask,
                                                   const torch::Tensor& pos) {
  auto x = src;
  x = norm1(x + dropout1(self_attn->forward_self(with_pos(x, pos), x, key_padding_mask)));
  auto ff = linear2(dropout(activation(linear1(x), options.activation())));
  return norm2(x + dropout2(ff));
}

TransformerDecoderLayerImpl::TransformerDecoderLayerImpl(const TransformerLayerOptions& options_)
    : options(options_) {
  reset();
}

void TransformerDecoderLayerImpl::reset() {
  check_activation(options.activation());
  self_attn = register_module("self_attn", MultiheadAttention(attention_options(options)));
  multihead_attn = register_module("multihead_attn", MultiheadAttention(attention_options(options)));
  linear1 = register_module("linear1", torch::nn::Linear(options.d_model(), options.dim_feedforward()));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  linear2 = register_module("linear2", torch::nn::Linear(options.dim_feedforward(), options.d_model()));
  norm1 = register_module("norm1", torch::nn::LayerNorm(norm_options(options)));
  norm2 = register_module("norm2", torch::nn::LayerNorm(norm_options(options)));
  norm3 = register_module("norm3", torch::nn::LayerNorm(norm_options(options)));
  dropout1 = register_module("dropout1", torch::nn::Dropout(options.dropout()));
  dropout2 = register_module("dropout2", torch::nn::Dropout(options.dropout()));
  dropout3 = register_module("dropout3", torch::nn::Dropout(options.dropout()));
}

torch::Tensor TransformerDecoderLayerImpl::forward(const torch::Tensor& tgt,
                                                   const torch::Tensor& memory,
                                                   const torch::Tensor& memory_key_padding_mask,
                                                   const torch::Tensor& pos,
                                                   const torch::Tensor& query_pos) {
  auto x = tgt;
  x = norm1(x + dropout1(self_attn->forward_self(with_pos(x, query_pos), x)));
  auto cross = multihead_attn->forward(with_pos(x, query_pos), with_pos(memory, pos), memory,
                                       memory_key_padding_mask);
  x = norm2(x + dropout2(cross));
  auto ff = linear2(dropout(activation(linear1(x), options.activation())));
  return norm3(x + dropout3(ff));
}

// ---------------------------------------------------------------------------------
// Stacks

TransformerEncoderImpl::TransformerEncoderImpl(const TransformerEncoderOptions& options_)
    : options(options_) {
  reset();
}

void TransformerEncoderImpl::reset() {
  TORCH_CHECK(options.num_layers() >= 0, "TransformerEncoder: num_layers must be >= 0, got ",
              options.num_layers());
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers(); ++i) {
    layers->push_back(TransformerEncoderLayer(options.layer()));
  }
  norm = nullptr;
  if (options.final_norm()) {
    norm = register_module("norm", torch::nn::LayerNorm(norm_options(options.layer())));
  }
}

torch::Tensor TransformerEncoderImpl::forward(const torch::Tensor& src,
                                              const torch::Tensor& key_padding_mask,
                                              const torch::Tensor& pos) {
  auto x = src;
  for (const auto& layer : *layers) {
    x = layer->as<TransformerEncoderLayer>()->forward(x, key_padding_mask, pos);
  }
  return norm ? norm(x) : x;
}

TransformerDecoderImpl::TransformerDecoderImpl(const TransformerDecoderOptions& options_)
    : options(options_) {
  reset();
}

void TransformerDecoderImpl::reset() {
  TORCH_CHECK(options.num_layers() >= 1, "TransformerDecoder: num_layers must be >= 1, got ",
              options.num_layers());
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers(); ++i) {
    layers->push_back(TransformerDecoderLayer(options.layer()));
  }
  norm = nullptr;
  if (options.final_norm()) {
    norm = register_module("norm", torch::nn::LayerNorm(norm_options(options.layer())));
  }
}

torch::Tensor TransformerDecoderImpl::forward(const torch::Tensor& tgt, const torch::Tensor& memory,
                                              const torch::Tensor& memory_key_padding_mask,
                                              const torch::Tensor& pos,
                                              const torch::Tensor& query_pos) {
  std::vector<torch::Tensor> outputs;
  auto x = tgt;
  for (const auto& layer : *layers) {
    x = layer->as<TransformerDecoderLayer>()->forward(x, memory, memory_key_padding_mask, pos,
                                                      query_pos);
    if (options.return_intermediate()) outputs.push_back(norm ? norm(x) : x);
  }
  if (!options.return_intermediate()) outputs.push_back(norm ? norm(x) : x);
  return torch::stack(outputs);
}

// ---------------------------------------------------------------------------------
// Position embedding and initialization

torch::Tensor position_embedding_sine(const torch::Tensor& mask,
                                      const PositionEmbeddingSineOptions& options) {
  TORCH_CHECK(mask.dim() == 3, "position_embedding_sine: mask must be [B, H, W], got ",
              mask.sizes());
  TORCH_CHECK(options.num_pos_feats() > 0 && options.num_pos_feats() % 2 == 0,
              "position_embedding_sine: num_pos_feats must be positive and even, got ",
              options.num_pos_feats());
  auto not_mask = mask.to(torch::kBool).logical_not();
  auto y = not_mask.cumsum(1, torch::kFloat32);  // [B, H, W]
  auto x = not_mask.cumsum(2, torch::kFloat32);
  if (options.normalize()) {
    constexpr double kEps = 1e-6;
    y = y / (y.narrow(1, y.size(1) - 1, 1) + kEps) * options.scale();
    x = x / (x.narrow(2, x.size(2) - 1, 1) + kEps) * options.scale();
  }
  const int64_t f = options.num_pos_feats();
  auto idx = torch::arange(f, mask.options().dtype(torch::kFloat32));
  // Frequencies come in pairs: channel 2i (sin) and 2i+1 (cos) share temperature^(2i/F).
  auto dim_t = torch::pow(options.temperature(), 2.0 * torch::floor(idx / 2) / f);
  auto encode = [&](const torch::Tensor& coord) {
    auto p = coord.unsqueeze(-1) / dim_t;  // [B, H, W, F]
    auto even = p.slice(-1, 0, f, 2).sin();
    auto odd = p.slice(-1, 1, f, 2).cos();
    return torch::stack({even, odd}, -1).flatten(3);  // interleaved sin, cos
  };
  return torch::cat({encode(y), encode(x)}, 3).permute({0, 3, 1, 2});
}

void xavier_uniform_matrices(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() > 1) torch::nn::init::xavier_uniform_(p);
  }
}

}  // namespace unitrain::nn

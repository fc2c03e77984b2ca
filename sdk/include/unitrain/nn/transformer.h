// Reusable transformer building blocks, DETR style (post-norm): multi-head attention,
// encoder and decoder layers and stacks, and the 2-D sine position embedding.
//
// Layout follows DETR and torch.nn.MultiheadAttention: sequences are
// sequence-first, [S, B, D]. Key padding masks are [B, S] bool with true at padding.
// Position embeddings are added to queries and keys (never to values) in every layer,
// as DETR does. Parameter names match PyTorch's (`self_attn.in_proj_weight`,
// `linear1`, `norm1`...), so DETR state dicts map one to one.
#pragma once

#include <string>

#include <torch/torch.h>

namespace unitrain::nn {

struct MultiheadAttentionOptions {
  MultiheadAttentionOptions(int64_t embed_dim, int64_t num_heads)
      : embed_dim_(embed_dim), num_heads_(num_heads) {}
  // Width D of queries, keys and values. Must be divisible by num_heads.
  TORCH_ARG(int64_t, embed_dim);
  TORCH_ARG(int64_t, num_heads);
  // Dropout on the attention weights (training only). Default: 0.0.
  TORCH_ARG(double, dropout) = 0.0;
};

// Multi-head attention with PyTorch's parameter layout (`in_proj_weight` [3D, D],
// `in_proj_bias` [3D], `out_proj`). Unlike torch::nn::MultiheadAttention it never
// compares its inputs element-wise to detect self-attention (a device sync on CUDA)
// and works with any floating dtype.
class MultiheadAttentionImpl : public torch::nn::Cloneable<MultiheadAttentionImpl> {
 public:
  explicit MultiheadAttentionImpl(const MultiheadAttentionOptions& options);
  void reset() override;

  // query [L, B, D], key and value [S, B, D], key_padding_mask [B, S] bool (true =
  // ignored key) or undefined. Returns [L, B, D]. A query whose keys are all padding
  // gets NaN, as in PyTorch: callers keep at least one key valid.
  torch::Tensor forward(const torch::Tensor& query, const torch::Tensor& key,
                        const torch::Tensor& value,
                        const torch::Tensor& key_padding_mask = {});
  // Self-attention where queries and keys share one input (x + pos) and values
  // another (x): one fused projection for q and k. q_k [S, B, D], value [S, B, D].
  torch::Tensor forward_self(const torch::Tensor& q_k, const torch::Tensor& value,
                             const torch::Tensor& key_padding_mask = {});

  MultiheadAttentionOptions options;
  torch::Tensor in_proj_weight;
  torch::Tensor in_proj_bias;
  torch::nn::Linear out_proj{nullptr};

 private:
  torch::Tensor attend(torch::Tensor q, torch::Tensor k, torch::Tensor v,
                       const torch::Tensor& key_padding_mask);
};
TORCH_MODULE(MultiheadAttention);

struct TransformerLayerOptions {
  TransformerLayerOptions(int64_t d_model, int64_t num_heads)
      : d_model_(d_model), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, num_heads);
  // Hidden width of the feed-forward block. Default: 2048 (DETR).
  TORCH_ARG(int64_t, dim_feedforward) = 2048;
  // Dropout after attention and in the feed-forward block. Default: 0.1.
  TORCH_ARG(double, dropout) = 0.1;
  // Dropout on attention weights; negative means "same as dropout". Default: -1.
  TORCH_ARG(double, attention_dropout) = -1.0;
  // "relu" (DETR) or "gelu" (BERT, exact erf form). Default: "relu".
  TORCH_ARG(std::string, activation) = "relu";
  // LayerNorm epsilon: 1e-5 in DETR, 1e-12 in BERT. Default: 1e-5.
  TORCH_ARG(double, layer_norm_eps) = 1e-5;
};

// Post-norm encoder layer: x = norm1(x + drop(attn(x+pos, x+pos, x)));
// x = norm2(x + drop(ffn(x))). With activation "gelu" and eps 1e-12 it is a BERT layer.
class TransformerEncoderLayerImpl : public torch::nn::Cloneable<TransformerEncoderLayerImpl> {
 public:
  explicit TransformerEncoderLayerImpl(const TransformerLayerOptions& options);
  void reset() override;

  // src [S, B, D], key_padding_mask [B, S] or undefined, pos [S, B, D] or undefined.
  // Returns [S, B, D].
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& key_padding_mask = {},
                        const torch::Tensor& pos = {});

  TransformerLayerOptions options;
  MultiheadAttention self_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr};
};
TORCH_MODULE(TransformerEncoderLayer);

// Post-norm decoder layer: self-attention over the queries (query_pos added to q/k),
// cross-attention to memory (query_pos on q, pos on k), feed-forward; each followed
// by dropout, residual and LayerNorm.
class TransformerDecoderLayerImpl : public torch::nn::Cloneable<TransformerDecoderLayerImpl> {
 public:
  explicit TransformerDecoderLayerImpl(const TransformerLayerOptions& options);
  void reset() override;

  // tgt [Q, B, D], memory [S, B, D], memory_key_padding_mask [B, S] or undefined,
  // pos [S, B, D] or undefined, query_pos [Q, B, D] or undefined. Returns [Q, B, D].
  torch::Tensor forward(const torch::Tensor& tgt, const torch::Tensor& memory,
                        const torch::Tensor& memory_key_padding_mask = {},
                        const torch::Tensor& pos = {}, const torch::Tensor& query_pos = {});

  TransformerLayerOptions options;
  MultiheadAttention self_attn{nullptr}, multihead_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  torch::nn::Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr},
      dropout3{nullptr};
};
TORCH_MODULE(TransformerDecoderLayer);

struct TransformerEncoderOptions {
  TransformerEncoderOptions(TransformerLayerOptions layer, int64_t num_layers)
      : layer_(std::move(layer)), num_layers_(num_layers) {}
  TORCH_ARG(TransformerLayerOptions, layer);
  TORCH_ARG(int64_t, num_layers);
  // A LayerNorm after the last layer (pre-norm stacks need it; DETR's post-norm
  // encoder has none). Default: false.
  TORCH_ARG(bool, final_norm) = false;
};

// `num_layers` encoder layers (registered as "layers.<i>") and an optional "norm".
class TransformerEncoderImpl : public torch::nn::Cloneable<TransformerEncoderImpl> {
 public:
  explicit TransformerEncoderImpl(const TransformerEncoderOptions& options);
  void reset() override;

  // src [S, B, D], key_padding_mask [B, S], pos [S, B, D]. Returns [S, B, D].
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& key_padding_mask = {},
                        const torch::Tensor& pos = {});

  TransformerEncoderOptions options;
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};  // null without final_norm
};
TORCH_MODULE(TransformerEncoder);

struct TransformerDecoderOptions {
  TransformerDecoderOptions(TransformerLayerOptions layer, int64_t num_layers)
      : layer_(std::move(layer)), num_layers_(num_layers) {}
  TORCH_ARG(TransformerLayerOptions, layer);
  TORCH_ARG(int64_t, num_layers);
  // A LayerNorm applied to the output (of every layer when return_intermediate).
  // Default: true (DETR).
  TORCH_ARG(bool, final_norm) = true;
  // Return every layer's (normed) output, for auxiliary losses. Default: true.
  TORCH_ARG(bool, return_intermediate) = true;
};

// `num_layers` decoder layers ("layers.<i>") and the final "norm".
class TransformerDecoderImpl : public torch::nn::Cloneable<TransformerDecoderImpl> {
 public:
  explicit TransformerDecoderImpl(const TransformerDecoderOptions& options);
  void reset() override;

  // tgt [Q, B, D], memory [S, B, D], memory_key_padding_mask [B, S], pos [S, B, D],
  // query_pos [Q, B, D]. Returns [L, Q, B, D]: L = num_layers with
  // return_intermediate, else 1 (the last layer only).
  torch::Tensor forward(const torch::Tensor& tgt, const torch::Tensor& memory,
                        const torch::Tensor& memory_key_padding_mask = {},
                        const torch::Tensor& pos = {}, const torch::Tensor& query_pos = {});

  TransformerDecoderOptions options;
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};  // null without final_norm
};
TORCH_MODULE(TransformerDecoder);

struct PositionEmbeddingSineOptions {
  // Features per axis; the embedding has 2 * num_pos_feats channels (y then x).
  // DETR uses hidden_dim / 2 = 128. Default: 128.
  TORCH_ARG(int64_t, num_pos_feats) = 128;
  // Base of the geometric frequency progression. Default: 10000.
  TORCH_ARG(double, temperature) = 10000.0;
  // Divide cumulative coordinates by the unpadded extent so that every image spans
  // [0, scale] whatever its padding. Default: true.
  TORCH_ARG(bool, normalize) = true;
  // Range of normalized coordinates. Default: 2*pi.
  TORCH_ARG(double, scale) = 2.0 * 3.14159265358979323846;
};

// 2-D sine position embedding of a padded feature map (DETR's
// PositionEmbeddingSine). mask [B, H, W] bool, true at padding. Returns
// [B, 2 * num_pos_feats, H, W] float32: channels [0, F) encode y, [F, 2F) encode x,
// each as interleaved sin/cos pairs. Unpadded positions do not depend on how much
// padding follows them.
torch::Tensor position_embedding_sine(const torch::Tensor& mask,
                                      const PositionEmbeddingSineOptions& options = {});

// Xavier-uniform initialization of every parameter of `module` with two or more
// dimensions (DETR's Transformer._reset_parameters).
void xavier_uniform_matrices(torch::nn::Module& module);

// Applies "relu" or "gelu"; throws std::invalid_argument on another name.
torch::Tensor activation(const torch::Tensor& x, const std::string& name);

}  // namespace unitrain::nn

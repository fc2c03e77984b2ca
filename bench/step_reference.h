// The reference side of bench/step_bench: the model experiments/bench/unit_small.json
// builds in unitrain, written as an ordinary LibTorch user would write it (the analogue
// of a PyTorch-eager UniT): torchvision's ResNet-18 with frozen batch norm as a separate
// scale-and-shift module, DETR's encoder and decoder layers on
// torch::nn::MultiheadAttention, a BERT encoder on torch::nn::TransformerEncoder, and
// DETR's Hungarian matcher and set criterion. Only <torch/torch.h> and the standard
// library; no unitrain code, and no optimizations: it is the baseline.
//
// Layout is DETR's: sequences are sequence-first [S, B, D]; key padding masks are
// [B, S] bool with true at padding. The sizes are unit_small's (kDModel and friends in
// step_reference.cpp); parameter names follow torchvision, DETR and BERT, so that the
// backbone's contain "backbone." (step_bench gives them their own learning rate).
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace step_reference {

struct TaskSpec {
  std::string name;          // "coco", "vqa2", ...
  std::string kind;          // "detection", "classification" (cross-entropy) or "soft_classification" (soft BCE, VQA)
  bool image = false, text = false;  // which encoders feed its memory
  int64_t num_queries = 4;
  int64_t num_classes = 0;     // detection classes, or labels
  int64_t num_attributes = 0;  // detection attributes (vg), 0 = none
};

struct Inputs {  // one batch's tensors, as unitrain's Batch holds them (bench/step_bench copies them over)
  torch::Tensor image, image_mask;                  // [B,3,H,W] float, [B,H,W] bool (true = padding)
  torch::Tensor input_ids, text_mask, segment_ids;  // [B,T] int64, bool (true = padding), int64
  torch::Tensor labels, soft_labels;                // [B] int64, [B,C] float
  std::vector<torch::Tensor> boxes, classes, attributes;  // per image: [N,4] cxcywh normalized, [N] int64, [N,16] int64 (-1 padded)
};

// An encoder's output, as DETR hands memory to its decoder.
struct Memory {
  torch::Tensor memory;  // [S, B, D]
  torch::Tensor mask;    // [B, S] bool, true at padding
  torch::Tensor pos;     // [S, B, D] added to the keys of cross-attention
};

// ---------------------------------------------------------------------------------
// Image encoder: torchvision ResNet (frozen BN) -> 1x1 conv -> sine positions -> DETR
// encoder layers.

// DETR's FrozenBatchNorm2d: batch norm with fixed statistics and affine terms, all of
// them buffers.
class FrozenBatchNorm2dImpl : public torch::nn::Module {
 public:
  explicit FrozenBatchNorm2dImpl(int64_t num_features);
  // x [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight, bias, running_mean, running_var;
};
TORCH_MODULE(FrozenBatchNorm2d);

// torchvision's BasicBlock with frozen batch norm.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride);
  // x [B, in_planes, H, W] -> [B, planes, H / stride, W / stride]
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  FrozenBatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};  // null when the shortcut is the identity
};
TORCH_MODULE(BasicBlock);

// torchvision's resnet18 without avgpool and fc: the C5 feature map, every layer
// trained (unit_small's trainable_layers 5).
class ResNetImpl : public torch::nn::Module {
 public:
  ResNetImpl(int64_t width, const std::vector<int64_t>& blocks);
  // x [B, 3, H, W] -> [B, 8 * width, ceil(H / 32), ceil(W / 32)]
  torch::Tensor forward(const torch::Tensor& x);
  int64_t num_channels() const { return num_channels_; }

  torch::nn::Conv2d conv1{nullptr};
  FrozenBatchNorm2d bn1{nullptr};
  torch::nn::MaxPool2d maxpool{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};

 private:
  int64_t num_channels_ = 0;
};
TORCH_MODULE(ResNet);

// DETR's PositionEmbeddingSine (normalize = true, scale 2 pi, temperature 10000).
// mask [B, H, W] bool, true at padding -> [B, 2 * num_pos_feats, H, W] float32.
torch::Tensor position_embedding_sine(const torch::Tensor& mask, int64_t num_pos_feats);

// DETR's post-norm TransformerEncoderLayer: the position is added to queries and keys.
class DetrEncoderLayerImpl : public torch::nn::Module {
 public:
  DetrEncoderLayerImpl(int64_t d_model, int64_t num_heads, int64_t dim_feedforward,
                       double dropout);
  // src [S, B, D], key_padding_mask [B, S], pos [S, B, D] -> [S, B, D]
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& key_padding_mask,
                        const torch::Tensor& pos);

  torch::nn::MultiheadAttention self_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr};
};
TORCH_MODULE(DetrEncoderLayer);

class ImageEncoderImpl : public torch::nn::Module {
 public:
  ImageEncoderImpl();
  // image [B, 3, H, W], image_mask [B, H, W] (undefined = no padding) -> memory
  // [h*w, B, D] = src + encoder(src) (MMF's residual_in_encoder), its mask and the
  // sine position embedding.
  Memory forward(const torch::Tensor& image, const torch::Tensor& image_mask);

  ResNet backbone{nullptr};
  torch::nn::Conv2d input_proj{nullptr};
  torch::nn::ModuleList layers{nullptr};  // DetrEncoderLayer
};
TORCH_MODULE(ImageEncoder);

// ---------------------------------------------------------------------------------
// Text encoder: BERT embeddings and post-norm GELU layers, projected to the decoder.

class TextEncoderImpl : public torch::nn::Module {
 public:
  TextEncoderImpl(int64_t vocab_size, int64_t max_position);
  // input_ids [B, T], text_mask [B, T] (undefined = no padding), segment_ids [B, T]
  // (undefined = zeros) -> memory [T, B, D], mask [B, T], pos [T, B, D] (the position
  // embedding rows, projected, as MMF hands them to the decoder).
  Memory forward(const torch::Tensor& input_ids, const torch::Tensor& text_mask,
                 const torch::Tensor& segment_ids);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
      token_type_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::TransformerEncoder encoder{nullptr};
  torch::nn::Linear projection{nullptr}, pos_projection{nullptr};
};
TORCH_MODULE(TextEncoder);

// ---------------------------------------------------------------------------------
// Shared decoder: DETR's post-norm decoder, one learned query table per task.

class DetrDecoderLayerImpl : public torch::nn::Module {
 public:
  DetrDecoderLayerImpl(int64_t d_model, int64_t num_heads, int64_t dim_feedforward,
                       double dropout);
  // tgt [Q, B, D], memory [S, B, D], memory_mask [B, S], pos [S, B, D], query_pos
  // [Q, B, D] -> [Q, B, D]
  torch::Tensor forward(const torch::Tensor& tgt, const torch::Tensor& memory,
                        const torch::Tensor& memory_mask, const torch::Tensor& pos,
                        const torch::Tensor& query_pos);

  torch::nn::MultiheadAttention self_attn{nullptr}, multihead_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  torch::nn::Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr}, dropout3{nullptr};
};
TORCH_MODULE(DetrDecoderLayer);

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const std::vector<TaskSpec>& tasks);
  // Zero targets with the task's queries as query position -> every layer's output
  // after the final LayerNorm (for the auxiliary losses), hs [L, B, Q, D].
  torch::Tensor forward(const std::string& task, const Memory& memory);

  torch::nn::ModuleList layers{nullptr};  // DetrDecoderLayer
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::ModuleDict query_embed{nullptr};  // task -> Embedding(num_queries, D)
};
TORCH_MODULE(Decoder);

// ---------------------------------------------------------------------------------
// Heads. Each returns its task's summed, weighted loss.

// DETR's class Linear and 3-layer box MLP on every decoder layer, Hungarian matching
// and the set criterion (CE with eos_coef 0.1, L1 x5, GIoU x2) on the last layer plus
// auxiliary losses on the others; with attributes (Visual Genome) an attribute MLP on
// the matched queries of the last layer, conditioned on the target class.
class DetrHeadImpl : public torch::nn::Module {
 public:
  DetrHeadImpl(int64_t d_model, int64_t num_classes, int64_t num_attributes);
  // hs [L, B, Q, D]; targets in.boxes, in.classes (and in.attributes) -> scalar loss.
  torch::Tensor loss(const torch::Tensor& hs, const Inputs& in);

  torch::nn::Linear class_embed{nullptr};
  torch::nn::ModuleList bbox_embed{nullptr};  // Linear(D, D), Linear(D, D), Linear(D, 4)
  torch::nn::Embedding attribute_class_embed{nullptr};  // null without attributes
  torch::nn::Linear attribute_fc1{nullptr}, attribute_fc2{nullptr};
  torch::Tensor empty_weight;  // [C + 1] CE class weights, eos_coef for "no object"

 private:
  int64_t num_classes_, num_attributes_;
};
TORCH_MODULE(DetrHead);

// UniT's classifier: dropout -> fc1 -> GELU -> LayerNorm -> fc2 on the first query of
// the last decoder layer; cross-entropy, or MMF's logit BCE (mean x C) for soft labels.
class ClassifierHeadImpl : public torch::nn::Module {
 public:
  ClassifierHeadImpl(int64_t d_model, int64_t num_labels, bool soft_labels);
  // hs [L, B, Q, D]; targets in.labels [B] or in.soft_labels [B, C] -> scalar loss.
  torch::Tensor loss(const torch::Tensor& hs, const Inputs& in);

  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  int64_t num_labels_;
  bool soft_labels_;
};
TORCH_MODULE(ClassifierHead);

// ---------------------------------------------------------------------------------

class UnitSmallImpl : public torch::nn::Module {
 public:
  UnitSmallImpl(const std::vector<TaskSpec>& tasks, int64_t vocab_size, int64_t max_position);
  // Encoders (image memory first, then text, concatenated along S) -> decoder -> the
  // task's head: forward and summed loss (scalar).
  torch::Tensor loss(const std::string& task, const Inputs& in);
  int64_t parameter_count() const;

  ImageEncoder image_encoder{nullptr};  // null when no task reads images
  TextEncoder text_encoder{nullptr};    // null when no task reads text
  Decoder decoder{nullptr};
  torch::nn::ModuleDict heads{nullptr};  // task -> DetrHead or ClassifierHead

 private:
  const TaskSpec& spec(const std::string& task) const;

  std::vector<TaskSpec> tasks_;
};
TORCH_MODULE(UnitSmall);

}  // namespace step_reference

// The UniT text encoder: a BERT-style encoder (token + position + segment embeddings,
// LayerNorm, post-norm GELU transformer layers, no pooler) whose hidden states and
// position embeddings are projected to the decoder width.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/encoder.h"
#include "unitrain/nn/transformer.h"
#include "unitrain/options.h"
#include "unitrain/sizes.h"
#include "unitrain/weights/importer.h"

namespace unitrain::text {

// JSON keys are the field names. Defaults are BERT-base (uncased) and MMF's UniT.
struct TextEncoderOptions {
  // Rows of the token embedding. Default: 30522 (bert-base-uncased). Overridden by
  // the tokenizer's vocabulary size when `tokenizer` is given in JSON.
  TORCH_ARG(int64_t, vocab_size) = 30522;
  TORCH_ARG(int64_t, hidden_dim) = 768;         // Default: 768.
  TORCH_ARG(int64_t, num_layers) = 12;          // Default: 12.
  TORCH_ARG(int64_t, num_heads) = 12;           // Default: 12.
  TORCH_ARG(int64_t, intermediate_dim) = 3072;  // Feed-forward width. Default: 3072.
  // Longest input (rows of the position embedding). Default: 512.
  TORCH_ARG(int64_t, max_position) = 512;
  // Segment (token type) ids. Default: 2.
  TORCH_ARG(int64_t, type_vocab_size) = 2;
  // Dropout on embeddings and hidden states. Default: 0.1.
  TORCH_ARG(double, dropout) = 0.1;
  // Dropout on attention weights. Default: 0.1.
  TORCH_ARG(double, attention_dropout) = 0.1;
  TORCH_ARG(double, layer_norm_eps) = 1e-12;  // Default: 1e-12 (BERT).
  // Std of the normal initialization of weights and embeddings. Default: 0.02.
  TORCH_ARG(double, init_std) = 0.02;
  // Prepend a learned task token Embedding(max_tasks, hidden_dim)[task_index] after
  // the embeddings (never masked). Default: false.
  TORCH_ARG(bool, task_token) = false;
  TORCH_ARG(int64_t, max_tasks) = 256;  // Default: 256.
  // Keep the task token's output as the first memory position (zero position
  // embedding). MMF drops it after the encoder. Default: false.
  TORCH_ARG(bool, keep_task_token) = false;
  // Memory = the [CLS] position only (S = 1), as UniT does for SNLI-VE and GLUE.
  // Default: false.
  TORCH_ARG(bool, keep_only_cls) = false;
  // Width of memory and position embedding after the Linear projections. Default: 768.
  TORCH_ARG(int64_t, output_dim) = 768;
};

// Every option declared once (key, meaning, rule; the default is the field's): the
// plugin's defaults JSON, the parsing below, to_json and the README's key table.
const options::OptionSet<TextEncoderOptions>& text_encoder_option_set();

// Reads options from a JSON object. A "tokenizer" object (TokenizerOptions) sets
// vocab_size from the tokenizer's vocabulary. Throws ConfigError "<where>/<key>: ...".
TextEncoderOptions text_encoder_options_from_json(const nlohmann::json& j,
                                                  const std::string& where);
nlohmann::json to_json(const TextEncoderOptions& options);

// Token + position + segment embeddings, then LayerNorm and dropout (BERT names).
class TextEmbeddingsImpl : public torch::nn::Cloneable<TextEmbeddingsImpl> {
 public:
  explicit TextEmbeddingsImpl(const TextEncoderOptions& options);
  void reset() override;
  // input_ids, segment_ids [B, T] int64 -> [B, T, hidden_dim]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& segment_ids);

  TextEncoderOptions options;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
      token_type_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(TextEmbeddings);

class TextEncoderImpl : public torch::nn::Cloneable<TextEncoderImpl>,
                        public Encoder,
                        public TokenVocabulary,
                        public weights::WeightImporter {
 public:
  explicit TextEncoderImpl(const TextEncoderOptions& options);
  void reset() override;

  // hf_bert (BERT's embeddings and layers), mmf_unit (also the projections and the task
  // token). The tables are in the README (text_weights.cpp).
  std::vector<std::string> weight_formats() const override;
  weights::WeightMap weight_map(const weights::ImportContext& context) const override;

  std::string modality() const override { return "text"; }
  int64_t output_dim() const override { return options.output_dim(); }
  int64_t vocabulary_size() const override { return options.vocab_size(); }
  // Reads batch.input_ids [B, T], batch.text_mask [B, T] (true at padding; all valid
  // when undefined) and batch.segment_ids [B, T] (zeros when undefined). Returns
  // memory [B, S, output_dim], mask [B, S], pos [B, S, output_dim] with S = T
  // (+1 with a kept task token), or S = 1 with keep_only_cls.
  EncoderOutput encode(const Batch& batch, int64_t task_index) override;
  EncoderOutput forward(const torch::Tensor& input_ids, const torch::Tensor& text_mask,
                        const torch::Tensor& segment_ids, int64_t task_index);

  TextEncoderOptions options;
  TextEmbeddings embeddings{nullptr};
  unitrain::nn::TransformerEncoder encoder{nullptr};
  torch::nn::Embedding task_embeddings{nullptr};  // null without task_token
  torch::nn::Linear projection{nullptr}, pos_projection{nullptr};
};
TORCH_MODULE(TextEncoder);

}  // namespace unitrain::text

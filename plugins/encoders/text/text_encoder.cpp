#include "text_encoder.h"

#include "unitrain/errors.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"
#include "unitrain/tokenizer.h"

namespace unitrain::text {
namespace {

using options::key_path;

void check_together(const TextEncoderOptions& o, const nlohmann::json&, const std::string& where) {
  options::check_divides(where, "num_heads", o.num_heads(), "hidden_dim", o.hidden_dim());
}

}  // namespace

const options::OptionSet<TextEncoderOptions>& text_encoder_option_set() {
  using options::at_least;
  using options::in_range;
  static const auto set =
      options::OptionSet<TextEncoderOptions>()
          .add(UNITRAIN_OPTION(vocab_size),
               "token embedding rows (bert-base-uncased); replaced by the tokenizer's size when "
               "`tokenizer` is set",
               at_least(1))
          // Read by text_encoder_options_from_json: it only sets vocab_size.
          .add_json("tokenizer", nullptr, "object or null",
                    "a tokenizer block (`type`, `vocab`, `lower_case`, `max_length`) whose "
                    "vocabulary size sets `vocab_size`")
          .add(UNITRAIN_OPTION(hidden_dim), "BERT hidden size", at_least(1))
          .add(UNITRAIN_OPTION(num_layers), "transformer layers", at_least(0))
          .add(UNITRAIN_OPTION(num_heads), "attention heads (divides `hidden_dim`)", at_least(1))
          .add(UNITRAIN_OPTION(intermediate_dim), "feed-forward width", at_least(1))
          .add(UNITRAIN_OPTION(max_position), "longest input", at_least(1))
          .add(UNITRAIN_OPTION(type_vocab_size), "segment ids", at_least(1))
          .add(UNITRAIN_OPTION(dropout), "dropout on embeddings and hidden states", in_range(0, 1))
          .add(UNITRAIN_OPTION(attention_dropout), "dropout on attention weights", in_range(0, 1))
          .add(UNITRAIN_OPTION(layer_norm_eps), "LayerNorm epsilon")
          .add(UNITRAIN_OPTION(init_std), "std of the normal initialization (BERT)")
          .add(UNITRAIN_OPTION(task_token),
               "prepend `Embedding(max_tasks, hidden_dim)[task_index]` after the embeddings")
          .add(UNITRAIN_OPTION(max_tasks), "rows of the task embedding", at_least(1))
          .add(UNITRAIN_OPTION(keep_task_token),
               "keep the task token in the memory (S = T + 1); MMF drops it")
          .add(UNITRAIN_OPTION(keep_only_cls),
               "memory = the [CLS] position only (UniT: SNLI-VE and GLUE tasks)")
          .add(UNITRAIN_OPTION(output_dim), "memory width for the decoder", at_least(1))
          .validate(check_together);
  return set;
}

TextEncoderOptions text_encoder_options_from_json(const nlohmann::json& j,
                                                  const std::string& where) {
  TextEncoderOptions o = text_encoder_option_set().parse(j, where);
  if (j.contains("tokenizer") && !j.at("tokenizer").is_null()) {
    const std::string tok_where = key_path(where, "tokenizer");
    auto tokenizer = make_tokenizer(tokenizer_options_from_json(j.at("tokenizer"), tok_where));
    o.vocab_size(tokenizer->vocab_size());
  }
  return o;
}

nlohmann::json to_json(const TextEncoderOptions& o) { return text_encoder_option_set().to_json(o); }

// ---------------------------------------------------------------------------------

TextEmbeddingsImpl::TextEmbeddingsImpl(const TextEncoderOptions& options_) : options(options_) {
  reset();
}

void TextEmbeddingsImpl::reset() {
  const int64_t d = options.hidden_dim();
  word_embeddings = register_module("word_embeddings", torch::nn::Embedding(options.vocab_size(), d));
  position_embeddings =
      register_module("position_embeddings", torch::nn::Embedding(options.max_position(), d));
  token_type_embeddings =
      register_module("token_type_embeddings", torch::nn::Embedding(options.type_vocab_size(), d));
  layer_norm = register_module(
      "layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(options.layer_norm_eps())));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
}

torch::Tensor TextEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                          const torch::Tensor& segment_ids) {
  const int64_t length = input_ids.size(1);
  TORCH_CHECK(length <= options.max_position(), "text encoder: sequence of ", length,
              " tokens exceeds max_position ", options.max_position());
  auto positions = torch::arange(length, input_ids.options().dtype(torch::kLong));
  auto x = word_embeddings(input_ids) + position_embeddings(positions).unsqueeze(0) +
           token_type_embeddings(segment_ids);
  return dropout(layer_norm(x));
}

TextEncoderImpl::TextEncoderImpl(const TextEncoderOptions& options_) : options(options_) {
  reset();
}

void TextEncoderImpl::reset() {
  const int64_t d = options.hidden_dim();
  embeddings = register_module("embeddings", TextEmbeddings(options));
  // A BERT layer is a post-norm encoder layer with GELU and no position term.
  auto layer = unitrain::nn::TransformerLayerOptions(d, options.num_heads())
                   .dim_feedforward(options.intermediate_dim())
                   .dropout(options.dropout())
                   .attention_dropout(options.attention_dropout())
                   .activation("gelu")
                   .layer_norm_eps(options.layer_norm_eps());
  encoder = register_module(
      "encoder", unitrain::nn::TransformerEncoder(
                     unitrain::nn::TransformerEncoderOptions(layer, options.num_layers())));
  task_embeddings = nullptr;
  if (options.task_token()) {
    task_embeddings = register_module("task_embeddings", torch::nn::Embedding(options.max_tasks(), d));
  }
  // BERT's initialization for everything BERT has; the task embedding and the
  // projections (outside BERT in MMF) keep LibTorch's defaults.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : embeddings->named_parameters()) {
      if (p.value().dim() > 1) p.value().normal_(0.0, options.init_std());
    }
    for (auto& p : encoder->named_parameters()) {
      const auto& name = p.key();
      if (p.value().dim() > 1) {
        p.value().normal_(0.0, options.init_std());
      } else if (name.find("norm") == std::string::npos) {
        p.value().zero_();  // biases; LayerNorms keep weight 1, bias 0
      }
    }
  }
  projection = register_module("projection", torch::nn::Linear(d, options.output_dim()));
  pos_projection = register_module("pos_projection", torch::nn::Linear(d, options.output_dim()));
}

EncoderOutput TextEncoderImpl::encode(const Batch& batch, int64_t task_index) {
  TORCH_CHECK(batch.input_ids.defined(), "text encoder: batch of task '", batch.task,
              "' has no input_ids");
  return forward(batch.input_ids, batch.text_mask, batch.segment_ids, task_index);
}

EncoderOutput TextEncoderImpl::forward(const torch::Tensor& input_ids,
                                       const torch::Tensor& text_mask,
                                       const torch::Tensor& segment_ids, int64_t task_index) {
  TORCH_CHECK(input_ids.dim() == 2, "text encoder: expected input_ids [B, T], got ",
              input_ids.sizes());
  const int64_t batch = input_ids.size(0), length = input_ids.size(1);
  auto mask = text_mask.defined() ? text_mask.to(torch::kBool)
                                  : torch::zeros_like(input_ids, input_ids.options().dtype(torch::kBool));
  auto segments = segment_ids.defined() ? segment_ids : torch::zeros_like(input_ids);
  TORCH_CHECK(mask.sizes() == input_ids.sizes() && segments.sizes() == input_ids.sizes(),
              "text encoder: text_mask ", mask.sizes(), " and segment_ids ", segments.sizes(),
              " must match input_ids ", input_ids.sizes());

  auto x = embeddings(input_ids, segments).transpose(0, 1);  // [T, B, H]
  if (task_embeddings) {
    TORCH_CHECK(task_index >= 0 && task_index < options.max_tasks(), "text encoder: task_index ",
                task_index, " outside [0, max_tasks=", options.max_tasks(), ")");
    auto token = task_embeddings->weight[task_index].view({1, 1, -1}).expand({1, batch, -1});
    x = torch::cat({token, x}, 0);
    mask = torch::cat({torch::zeros_like(mask.narrow(1, 0, 1)), mask}, 1);
  }
  x = encoder(x, mask);
  const bool kept_token = task_embeddings && options.keep_task_token();
  if (task_embeddings && !kept_token) {
    x = x.narrow(0, 1, length);
    mask = mask.narrow(1, 1, length);
  }
  auto memory = projection(x.transpose(0, 1));  // [B, S, D]
  // Decoder-side position embedding: the raw position rows, projected (MMF).
  auto positions = torch::arange(length, input_ids.options().dtype(torch::kLong));
  auto pos = pos_projection(embeddings->position_embeddings(positions));  // [T, D]
  if (kept_token) pos = torch::cat({torch::zeros_like(pos.narrow(0, 0, 1)), pos}, 0);
  pos = pos.unsqueeze(0).expand({batch, -1, -1});
  if (options.keep_only_cls()) {
    const int64_t cls = kept_token ? 1 : 0;
    memory = memory.narrow(1, cls, 1);
    pos = pos.narrow(1, cls, 1);
    mask = mask.narrow(1, cls, 1);
  }
  return {memory, mask, pos};
}

}  // namespace unitrain::text

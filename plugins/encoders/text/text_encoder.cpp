#include "text_encoder.h"

#include "unitrain/errors.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"
#include "unitrain/tokenizer.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace unitrain::text {
namespace {

using options::key_path;
using options::read;

void require_positive(int64_t value, const std::string& where, const char* key) {
  if (value < 1) {
    throw ConfigError(key_path(where, key) + ": must be positive, got " + std::to_string(value));
  }
}

void require_probability(double value, const std::string& where, const char* key) {
  if (value < 0 || value >= 1) {
    throw ConfigError(key_path(where, key) + ": must be in [0, 1), got " + std::to_string(value));
  }
}

}  // namespace

TextEncoderOptions text_encoder_options_from_json(const nlohmann::json& j,
                                                  const std::string& where) {
  TextEncoderOptions o;
  read(j, where, "vocab_size", o.vocab_size());
  read(j, where, "hidden_dim", o.hidden_dim());
  read(j, where, "num_layers", o.num_layers());
  read(j, where, "num_heads", o.num_heads());
  read(j, where, "intermediate_dim", o.intermediate_dim());
  read(j, where, "max_position", o.max_position());
  read(j, where, "type_vocab_size", o.type_vocab_size());
  read(j, where, "dropout", o.dropout());
  read(j, where, "attention_dropout", o.attention_dropout());
  read(j, where, "layer_norm_eps", o.layer_norm_eps());
  read(j, where, "init_std", o.init_std());
  read(j, where, "task_token", o.task_token());
  read(j, where, "max_tasks", o.max_tasks());
  read(j, where, "keep_task_token", o.keep_task_token());
  read(j, where, "keep_only_cls", o.keep_only_cls());
  read(j, where, "output_dim", o.output_dim());
  if (j.contains("tokenizer") && !j.at("tokenizer").is_null()) {
    const std::string tok_where = key_path(where, "tokenizer");
    auto tokenizer = make_tokenizer(tokenizer_options_from_json(j.at("tokenizer"), tok_where));
    o.vocab_size(tokenizer->vocab_size());
  }
  require_positive(o.vocab_size(), where, "vocab_size");
  require_positive(o.hidden_dim(), where, "hidden_dim");
  require_positive(o.num_heads(), where, "num_heads");
  if (o.hidden_dim() % o.num_heads() != 0) {
    throw ConfigError(key_path(where, "num_heads") + ": must divide hidden_dim (" +
                      std::to_string(o.hidden_dim()) + "), got " + std::to_string(o.num_heads()));
  }
  if (o.num_layers() < 0) throw ConfigError(key_path(where, "num_layers") + ": must be >= 0");
  require_positive(o.intermediate_dim(), where, "intermediate_dim");
  require_positive(o.max_position(), where, "max_position");
  require_positive(o.type_vocab_size(), where, "type_vocab_size");
  require_probability(o.dropout(), where, "dropout");
  require_probability(o.attention_dropout(), where, "attention_dropout");
  require_positive(o.max_tasks(), where, "max_tasks");
  require_positive(o.output_dim(), where, "output_dim");
  return o;
}

nlohmann::json to_json(const TextEncoderOptions& o) {
  return {{"vocab_size", o.vocab_size()},
          {"hidden_dim", o.hidden_dim()},
          {"num_layers", o.num_layers()},
          {"num_heads", o.num_heads()},
          {"intermediate_dim", o.intermediate_dim()},
          {"max_position", o.max_position()},
          {"type_vocab_size", o.type_vocab_size()},
          {"dropout", o.dropout()},
          {"attention_dropout", o.attention_dropout()},
          {"layer_norm_eps", o.layer_norm_eps()},
          {"init_std", o.init_std()},
          {"task_token", o.task_token()},
          {"max_tasks", o.max_tasks()},
          {"keep_task_token", o.keep_task_token()},
          {"keep_only_cls", o.keep_only_cls()},
          {"output_dim", o.output_dim()}};
}

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

namespace {

// Every key with its default; "tokenizer": null accepts a TokenizerOptions object.
constexpr const char* kDefaultsJson = R"({
  "vocab_size": 30522, "hidden_dim": 768, "num_layers": 12, "num_heads": 12,
  "intermediate_dim": 3072, "max_position": 512, "type_vocab_size": 2, "dropout": 0.1,
  "attention_dropout": 0.1, "layer_norm_eps": 1e-12, "init_std": 0.02,
  "task_token": false, "max_tasks": 256, "keep_task_token": false,
  "keep_only_cls": false, "output_dim": 768, "tokenizer": null
})";

std::shared_ptr<unitrain::Encoder> make_text_encoder(const nlohmann::json& options) {
  auto o = unitrain::text::text_encoder_options_from_json(options, "");
  return std::make_shared<unitrain::text::TextEncoderImpl>(o);
}

}  // namespace

UNITRAIN_PLUGIN(kTextEncoder, unitrain::Encoder, "encoder", "text", "0.1.0",
                "BERT-style text encoder with projections to the decoder width (UniT)",
                kDefaultsJson, kReadme, make_text_encoder);
UNITRAIN_EXPORT_PLUGINS(&kTextEncoder);

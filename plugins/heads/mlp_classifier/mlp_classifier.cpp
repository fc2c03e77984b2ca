#include "mlp_classifier.h"

#include <sstream>

#include "unitrain/errors.h"

namespace unitrain::heads {

const options::OptionSet<MlpClassifierOptions>& mlp_classifier_option_set() {
  using options::at_least;
  static const auto set =
      options::OptionSet<MlpClassifierOptions>(MlpClassifierOptions(/*num_labels=*/2))
          .add(UNITRAIN_OPTION(in_dim),
               "width D of the decoder output (must equal the decoder's `d_model`)", at_least(1))
          .add(UNITRAIN_OPTION(hidden_dim), "width of the hidden layer; 0 means `in_dim` (MMF)",
               at_least(0))
          .add(UNITRAIN_OPTION(num_labels),
               "number of labels C (VQAv2 3129, SNLI-VE 3, MNLI 3, QNLI/QQP/SST-2 2)", at_least(1))
          .add(UNITRAIN_OPTION(loss),
               "`\"cross_entropy\"` on `batch.labels`, or `\"soft_bce\"` on `batch.soft_labels`",
               options::one_of({"cross_entropy", "soft_bce"}))
          .add(UNITRAIN_OPTION(dropout), "dropout on the query vector before `fc1`; 0 disables it",
               options::in_range(0, 1))
          .add(UNITRAIN_OPTION(layer_norm_eps), "LayerNorm epsilon")
          .add(UNITRAIN_OPTION(pool),
               "`\"first\"`: query 0 of the last layer (UniT); `\"mean\"`: mean over the queries")
          .validate([](const MlpClassifierOptions& o, const nlohmann::json&,
                       const std::string& where) {
            // NOTE: not options::one_of, whose message names the key's path: this one
            // predates the declaration and is kept as it was.
            if (o.pool() == "first" || o.pool() == "mean") return;
            throw ConfigError((where.empty() ? "" : where + ": ") + "pool is \"" + o.pool() +
                              "\"; expected one of \"first\", \"mean\"");
          });
  return set;
}

MlpClassifierOptions mlp_classifier_options_from_json(const nlohmann::json& json,
                                                      const std::string& where) {
  return mlp_classifier_option_set().parse(json, where);
}

nlohmann::json to_json(const MlpClassifierOptions& options) {
  return mlp_classifier_option_set().to_json(options);
}

MlpClassifierHeadImpl::MlpClassifierHeadImpl(MlpClassifierOptions options)
    : options_(std::move(options)) {
  reset();
}

void MlpClassifierHeadImpl::reset() {
  const int64_t hidden = options_.hidden_dim() > 0 ? options_.hidden_dim() : options_.in_dim();
  dropout_ = register_module("dropout", torch::nn::Dropout(options_.dropout()));
  fc1_ = register_module("fc1", torch::nn::Linear(options_.in_dim(), hidden));
  norm_ = register_module(
      "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).eps(options_.layer_norm_eps())));
  fc2_ = register_module("fc2", torch::nn::Linear(hidden, options_.num_labels()));
}

HeadOutput MlpClassifierHeadImpl::run(const torch::Tensor& decoder_out, const Batch& batch,
                                      bool with_loss) {
  TORCH_CHECK(decoder_out.dim() == 4 && decoder_out.size(3) == options_.in_dim(),
              "mlp_classifier: expected decoder output [L, B, Q, ", options_.in_dim(), "], got ",
              decoder_out.sizes());
  // [B, D] from the last layer: query 0, or the mean over the queries.
  auto x = options_.pool() == "mean" ? decoder_out[-1].mean(1) : decoder_out[-1].select(1, 0);
  auto logits = fc2_(norm_(torch::gelu(fc1_(dropout_(x)))));  // [B, C]

  HeadOutput out;
  out.outputs["logits"] = logits;
  if (!with_loss) return out;

  const std::string task = batch.task.empty() ? "" : " (task " + batch.task + ")";
  if (options_.loss() == "cross_entropy") {
    if (!batch.labels.defined()) {
      throw DataError("mlp_classifier: loss \"cross_entropy\" needs batch.labels, which is empty" + task);
    }
    auto labels = batch.labels.to(logits.device(), torch::kLong);
    auto low = labels.min().item<int64_t>();
    auto high = labels.max().item<int64_t>();
    if (low < 0 || high >= options_.num_labels()) {
      throw DataError("mlp_classifier: label ids span [" + std::to_string(low) + ", " +
                      std::to_string(high) + "], expected [0, " +
                      std::to_string(options_.num_labels() - 1) + "]" + task);
    }
    out.losses["loss_ce"] = torch::nn::functional::cross_entropy(logits, labels);
  } else {
    if (!batch.soft_labels.defined()) {
      throw DataError("mlp_classifier: loss \"soft_bce\" needs batch.soft_labels, which is empty" + task);
    }
    if (batch.soft_labels.sizes() != logits.sizes()) {
      std::ostringstream message;
      message << "mlp_classifier: soft_labels have shape " << batch.soft_labels.sizes()
              << ", logits " << logits.sizes() << task;
      throw DataError(message.str());
    }
    auto targets = batch.soft_labels.to(logits.device(), logits.scalar_type());
    // MMF's logit_bce: mean over B*C entries, times C.
    out.losses["loss_bce"] =
        torch::nn::functional::binary_cross_entropy_with_logits(logits, targets) *
        static_cast<double>(options_.num_labels());
  }
  return out;
}

Predictions MlpClassifierHeadImpl::predict(const HeadOutput& output, const Batch& /*batch*/) {
  torch::NoGradGuard no_grad;
  const auto& logits = output.outputs.at("logits");
  Predictions predictions;
  predictions.scores = options_.loss() == "soft_bce" ? logits.sigmoid() : logits.softmax(-1);
  predictions.labels = logits.argmax(-1);
  return predictions;
}

std::shared_ptr<Head> make_mlp_classifier_head(const nlohmann::json& options) {
  return std::make_shared<MlpClassifierHeadImpl>(mlp_classifier_options_from_json(options));
}

}  // namespace unitrain::heads

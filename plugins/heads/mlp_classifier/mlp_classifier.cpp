#include "mlp_classifier.h"

#include <sstream>

#include "unitrain/errors.h"

namespace unitrain::heads {
namespace {

std::string prefixed(const std::string& where, const std::string& message) {
  return where.empty() ? message : where + ": " + message;
}

}  // namespace

const char* const kMlpClassifierDefaults = R"({
  "in_dim": 768,
  "hidden_dim": 0,
  "num_labels": 2,
  "loss": "cross_entropy",
  "dropout": 0.1,
  "layer_norm_eps": 1e-12,
  "pool": "first"
})";

MlpClassifierOptions mlp_classifier_options_from_json(const nlohmann::json& json,
                                                      const std::string& where) {
  auto defaults = nlohmann::json::parse(kMlpClassifierDefaults);
  auto get = [&](const char* key) -> const nlohmann::json& {
    return json.contains(key) ? json.at(key) : defaults.at(key);
  };
  MlpClassifierOptions options(get("num_labels").get<int64_t>());
  options.in_dim(get("in_dim").get<int64_t>())
      .hidden_dim(get("hidden_dim").get<int64_t>())
      .loss(get("loss").get<std::string>())
      .dropout(get("dropout").get<double>())
      .layer_norm_eps(get("layer_norm_eps").get<double>())
      .pool(get("pool").get<std::string>());
  if (options.num_labels() < 1) {
    throw ConfigError(prefixed(where, "num_labels must be >= 1, got " +
                                          std::to_string(options.num_labels())));
  }
  if (options.in_dim() < 1) {
    throw ConfigError(prefixed(where, "in_dim must be >= 1, got " +
                                          std::to_string(options.in_dim())));
  }
  if (options.hidden_dim() < 0) {
    throw ConfigError(prefixed(where, "hidden_dim must be >= 0 (0 = in_dim), got " +
                                          std::to_string(options.hidden_dim())));
  }
  if (options.loss() != "cross_entropy" && options.loss() != "soft_bce") {
    throw ConfigError(prefixed(where, "loss is \"" + options.loss() +
                                          "\"; expected one of \"cross_entropy\", \"soft_bce\""));
  }
  if (options.pool() != "first" && options.pool() != "mean") {
    throw ConfigError(prefixed(where, "pool is \"" + options.pool() +
                                          "\"; expected one of \"first\", \"mean\""));
  }
  if (options.dropout() < 0.0 || options.dropout() >= 1.0) {
    throw ConfigError(prefixed(where, "dropout must be in [0, 1), got " +
                                          std::to_string(options.dropout())));
  }
  return options;
}

nlohmann::json to_json(const MlpClassifierOptions& options) {
  return {{"in_dim", options.in_dim()},         {"hidden_dim", options.hidden_dim()},
          {"num_labels", options.num_labels()}, {"loss", options.loss()},
          {"dropout", options.dropout()},       {"layer_norm_eps", options.layer_norm_eps()},
          {"pool", options.pool()}};
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

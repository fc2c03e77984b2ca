// UniT's classification head: an MLP on the first query of the last decoder layer.
//
//   x = dropout(decoder_out[L-1, :, 0])             [B, D]
//   logits = Linear(hidden, C)(LayerNorm(GELU(Linear(D, hidden)(x))))   [B, C]
//
// Loss "cross_entropy" against batch.labels, or "soft_bce" (VQA): binary cross-entropy
// with logits against batch.soft_labels, averaged over all B*C entries and multiplied
// by C, as MMF's logit_bce does.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/head.h"
#include "unitrain/options.h"
#include "unitrain/sizes.h"
#include "unitrain/weights/importer.h"

namespace unitrain::heads {

struct MlpClassifierOptions {
  explicit MlpClassifierOptions(int64_t num_labels) : num_labels_(num_labels) {}
  // Width D of the decoder output this head reads.
  TORCH_ARG(int64_t, in_dim) = 768;
  // Width of the hidden layer; 0 means in_dim.
  TORCH_ARG(int64_t, hidden_dim) = 0;
  // Number of output labels C (3129 for VQAv2, 3 for SNLI-VE, 2 for QNLI...).
  TORCH_ARG(int64_t, num_labels);
  // "cross_entropy" (single label) or "soft_bce" (soft scores, VQA).
  TORCH_ARG(std::string, loss) = "cross_entropy";
  // Dropout on the query vector before the first Linear; 0 disables it.
  TORCH_ARG(double, dropout) = 0.1;
  // LayerNorm epsilon (BERT's 1e-12, as in MMF).
  TORCH_ARG(double, layer_norm_eps) = 1e-12;
  // Which decoder output of the last layer is classified: "first" (query 0, UniT) or
  // "mean" (the mean over the task's queries, so every query feeds the answer).
  TORCH_ARG(std::string, pool) = "first";
};

// Every option declared once (key, meaning, rule; the default is the field's, and
// num_labels 2): the plugin's defaults JSON, the parsing below, to_json and the README's
// key table.
const options::OptionSet<MlpClassifierOptions>& mlp_classifier_option_set();

// Reads options from a JSON object whose keys are the Options field names. `where`
// prefixes error messages (ConfigError "<where>/<key>: ...").
MlpClassifierOptions mlp_classifier_options_from_json(const nlohmann::json& json,
                                                      const std::string& where = "");
nlohmann::json to_json(const MlpClassifierOptions& options);

class MlpClassifierHeadImpl : public Head,
                              public LabelCount,
                              public InputWidth,
                              public weights::WeightImporter {
 public:
  int64_t num_labels() const override { return options_.num_labels(); }
  // in_dim, checked against the decoder's d_model.
  int64_t input_width() const override { return options_.in_dim(); }
  std::string input_width_option() const override { return "in_dim"; }

  // mmf_unit: MMF's classifiers.<type>.<dataset> (BertPredictionHeadTransform + Linear).
  std::vector<std::string> weight_formats() const override;
  weights::WeightMap weight_map(const weights::ImportContext& context) const override;

  explicit MlpClassifierHeadImpl(MlpClassifierOptions options);
  void reset();

  // decoder_out [L, B, Q, D] -> outputs {"logits": [B, C]}; losses {"loss_ce"} or
  // {"loss_bce"} when with_loss.
  HeadOutput run(const torch::Tensor& decoder_out, const Batch& batch, bool with_loss) override;
  // labels [B] = argmax; scores [B, C] = softmax (cross_entropy) or sigmoid (soft_bce).
  Predictions predict(const HeadOutput& output, const Batch& batch) override;

  const MlpClassifierOptions& options() const { return options_; }

 private:
  MlpClassifierOptions options_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear fc1_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear fc2_{nullptr};
};
TORCH_MODULE(MlpClassifierHead);

// The plugin factory: options (already merged over the defaults) -> head.
std::shared_ptr<Head> make_mlp_classifier_head(const nlohmann::json& options);

}  // namespace unitrain::heads

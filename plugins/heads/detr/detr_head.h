// DETR's detection head as UniT uses it: a class Linear and a 3-layer box MLP shared by
// every decoder layer, Hungarian matching, and DETR's set losses on the last layer plus
// auxiliary losses on every earlier layer. Optionally an attribute head (Visual Genome).
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/head.h"
#include "unitrain/nn/matcher.h"
#include "unitrain/options.h"
#include "unitrain/sizes.h"
#include "unitrain/weights/importer.h"

namespace unitrain::heads {

struct DetrHeadOptions {
  // Width D of the decoder output.
  TORCH_ARG(int64_t, in_dim) = 768;
  // Object classes C; the class Linear has C+1 outputs, the last one "no object".
  TORCH_ARG(int64_t, num_classes) = 91;
  // Attribute classes A (Visual Genome 400); 0 disables the attribute head.
  TORCH_ARG(int64_t, num_attributes) = 0;
  // Attribute head: width of its hidden layer and of its class embedding.
  TORCH_ARG(int64_t, attribute_hidden_dim) = 512;
  TORCH_ARG(int64_t, attribute_class_embed_dim) = 256;
  // Matching cost weights.
  TORCH_ARG(double, cost_class) = 1.0;
  TORCH_ARG(double, cost_bbox) = 5.0;
  TORCH_ARG(double, cost_giou) = 2.0;
  // Loss weights.
  TORCH_ARG(double, ce_loss_coef) = 1.0;
  TORCH_ARG(double, bbox_loss_coef) = 5.0;
  TORCH_ARG(double, giou_loss_coef) = 2.0;
  TORCH_ARG(double, attribute_loss_coef) = 1.0;
  // Cross-entropy weight of the no-object class.
  TORCH_ARG(double, eos_coef) = 0.1;
  // Losses on every non-final decoder layer (loss_ce_0, loss_bbox_0, ...).
  TORCH_ARG(bool, aux_loss) = true;
  // One-to-many matching for the auxiliary layers: each target is matched up to this
  // many times (H-DETR style); 1 = off. The final layer stays one-to-one so that
  // predictions carry no duplicates. A convergence aid for small data.
  TORCH_ARG(int64_t, one_to_many_repeats) = 1;
  // Anchor grid: query q predicts its box centre as an offset (in logit space) from a
  // fixed reference point, the q-th cell centre of a ceil(sqrt(Q)) x ceil(sqrt(Q)) grid,
  // instead of from the image centre. Queries then start spread over the image and each
  // specializes in a region, which steadies Hungarian matching early in training (the
  // idea of Anchor DETR / DAB-DETR's reference points, here on the output side only).
  // A convergence aid for small data and short runs; off by default (plain DETR).
  TORCH_ARG(bool, anchor_grid) = false;
  // predict() drops detections scoring below this.
  TORCH_ARG(double, score_threshold) = 0.0;
};

// Every option declared once (key, meaning, rule; the default is the field's): the
// plugin's defaults JSON, the parsing below, to_json and the README's key table.
const options::OptionSet<DetrHeadOptions>& detr_head_option_set();

// Throws ConfigError "<where>/<key>: ...".
DetrHeadOptions detr_head_options_from_json(const nlohmann::json& json,
                                            const std::string& where = "");
nlohmann::json to_json(const DetrHeadOptions& options);

// The head's outputs for one decoder layer.
struct DetrLayerOutputs {
  torch::Tensor logits;  // [B, Q, C+1]
  torch::Tensor boxes;   // [B, Q, 4] cxcywh in [0, 1]
  torch::Tensor hidden;  // [B, Q, D] the decoder layer's output (for attributes)
};

class DetrHeadImpl : public Head,
                     public LabelCount,
                     public InputWidth,
                     public BoxOutput,
                     public weights::WeightImporter {
 public:
  // The object classes (num_classes), checked against the dataset's.
  int64_t num_labels() const override { return options_.num_classes(); }
  // in_dim, checked against the decoder's d_model.
  int64_t input_width() const override { return options_.in_dim(); }
  std::string input_width_option() const override { return "in_dim"; }
  // run()'s "pred_boxes".
  torch::Tensor boxes(const HeadOutput& output) const override {
    return output.outputs.at("pred_boxes");
  }

  // detr (class_embed, bbox_embed), mmf_unit (also the attribute head). Class rows are
  // remapped from category ids when the file has them (see detr_weights.cpp).
  std::vector<std::string> weight_formats() const override;
  weights::WeightMap weight_map(const weights::ImportContext& context) const override;

  explicit DetrHeadImpl(DetrHeadOptions options);
  void reset();

  // decoder_out [L, B, Q, D] -> outputs {"pred_logits": [B, Q, C+1], "pred_boxes":
  // [B, Q, 4], "pred_attributes": [B, Q, A] when num_attributes > 0} of the last layer;
  // losses loss_ce, loss_bbox, loss_giou (+ loss_attr), and with aux_loss the same with
  // suffix _l for layers l = 0..L-2.
  HeadOutput run(const torch::Tensor& decoder_out, const Batch& batch, bool with_loss) override;
  // Per image and query: score = max softmax over the real classes, its label, and the
  // box in pixels of the original image (batch.orig_size), sorted by score.
  Predictions predict(const HeadOutput& output, const Batch& batch) override;

  // Attribute logits [K, A] for hidden states [K, D] of boxes of classes [K].
  torch::Tensor attribute_logits(const torch::Tensor& hidden, const torch::Tensor& classes);

  const DetrHeadOptions& options() const { return options_; }

 private:
  // Matches every decoder layer's predictions to the targets and adds the weighted
  // losses to `losses`: the last layer's unsuffixed, with aux_loss the others' with
  // "_0", "_1"... appended. All layers' normalizers take one Batch::mean_over_ranks.
  void add_losses(const std::vector<DetrLayerOutputs>& layers, const Batch& batch,
                  std::map<std::string, torch::Tensor>& losses);
  void check_targets(const Batch& batch, int64_t batch_size) const;
  // Inverse-sigmoid offsets [Q, 4] of the anchor grid's cell centres (cx, cy; 0 for w, h).
  static torch::Tensor anchor_logits(int64_t queries, const torch::TensorOptions& options);

  DetrHeadOptions options_;
  torch::nn::Linear class_embed_{nullptr};
  torch::nn::ModuleList bbox_embed_{nullptr};  // 3 Linear layers, ReLU between
  torch::nn::Embedding attribute_class_embed_{nullptr};
  torch::nn::Linear attribute_fc1_{nullptr};
  torch::nn::Linear attribute_fc2_{nullptr};
};
TORCH_MODULE(DetrHead);

std::shared_ptr<Head> make_detr_head(const nlohmann::json& options);

}  // namespace unitrain::heads

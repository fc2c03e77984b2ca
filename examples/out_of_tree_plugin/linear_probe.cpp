// A minimal task head: a linear classifier on the mean of all queries of the last
// decoder layer. Shows the whole plugin contract: Options, options_from_json, the
// module, the factory and the export line.
#include <unitrain/head.h>

namespace linear_probe {

struct LinearProbeOptions {
  int64_t in_dim = 768;   // decoder width D
  int64_t num_labels = 2;  // classes
};

LinearProbeOptions options_from_json(const nlohmann::json& j) {
  LinearProbeOptions o;
  o.in_dim = j.at("in_dim").get<int64_t>();
  o.num_labels = j.at("num_labels").get<int64_t>();
  if (o.in_dim <= 0 || o.num_labels < 2) {
    throw std::invalid_argument("in_dim must be > 0 and num_labels >= 2");
  }
  return o;
}

class LinearProbe : public unitrain::Head {
 public:
  explicit LinearProbe(const LinearProbeOptions& o) {
    fc_ = register_module("fc", torch::nn::Linear(o.in_dim, o.num_labels));
  }

  // decoder_out [L,B,Q,D] -> logits [B,C]; loss: cross-entropy against batch.labels [B].
  unitrain::HeadOutput run(const torch::Tensor& decoder_out, const unitrain::Batch& batch,
                           bool with_loss) override {
    unitrain::HeadOutput out;
    auto logits = fc_->forward(decoder_out[-1].mean(1));
    out.outputs["logits"] = logits;
    if (with_loss) out.losses["loss_ce"] = torch::cross_entropy_loss(logits, batch.labels);
    return out;
  }

  unitrain::Predictions predict(const unitrain::HeadOutput& out, const unitrain::Batch&) override {
    unitrain::Predictions p;
    p.scores = out.outputs.at("logits").softmax(-1);
    p.labels = p.scores.argmax(-1);
    return p;
  }

 private:
  torch::nn::Linear fc_{nullptr};
};

std::shared_ptr<unitrain::Head> make(const nlohmann::json& options) {
  return std::make_shared<LinearProbe>(options_from_json(options));
}

}  // namespace linear_probe

UNITRAIN_PLUGIN(kLinearProbe, unitrain::Head, "head", "linear_probe", "1.0.0",
                "Linear classifier on the mean of the decoder queries",
                R"({"in_dim": 768, "num_labels": 2})",
                "Keys: in_dim (int, 768): decoder width; num_labels (int, 2): classes.",
                linear_probe::make);
UNITRAIN_EXPORT_PLUGINS(&kLinearProbe);

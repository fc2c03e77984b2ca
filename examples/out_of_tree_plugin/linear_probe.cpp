// A minimal task head: a linear classifier on the mean of all queries of the last
// decoder layer. Shows the whole plugin contract: Options declared once (defaults,
// parsing, to_json and the key table from one declaration), the module, the factory and
// the export lines.
#include <unitrain/head.h>
#include <unitrain/options.h>

namespace linear_probe {

struct LinearProbeOptions {
  TORCH_ARG(int64_t, in_dim) = 768;    // decoder width D
  TORCH_ARG(int64_t, num_labels) = 2;  // classes
};

const unitrain::options::OptionSet<LinearProbeOptions>& option_set() {
  using namespace unitrain::options;
  static const auto set = OptionSet<LinearProbeOptions>()
                              .add(UNITRAIN_OPTION(in_dim), "decoder width D", at_least(1))
                              .add(UNITRAIN_OPTION(num_labels), "classes", at_least(2));
  return set;
}

class LinearProbe : public unitrain::Head {
 public:
  explicit LinearProbe(const LinearProbeOptions& o) {
    fc_ = register_module("fc", torch::nn::Linear(o.in_dim(), o.num_labels()));
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
  return std::make_shared<LinearProbe>(option_set().parse(options));
}

}  // namespace linear_probe

UNITRAIN_PLUGIN(kLinearProbe, unitrain::Head, "head", "linear_probe", "1.0.0",
                "Linear classifier on the mean of the decoder queries",
                linear_probe::option_set().defaults_json().c_str(),
                linear_probe::option_set().markdown().c_str(),  // the README: its key table
                linear_probe::make);
UNITRAIN_EXPORT_PLUGINS(&kLinearProbe);
UNITRAIN_EXPORT_OPTION_TABLES(
    UNITRAIN_OPTION_TABLE("head", "linear_probe", &linear_probe::option_set));

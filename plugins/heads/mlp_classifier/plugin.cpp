// Plugin entry point of the mlp_classifier head (kept apart from the module so that
// tests can link the module without the exported symbol).
#include "mlp_classifier.h"
#include "unitrain/plugin.h"

namespace {

constexpr const char* kReadme =
    "MLP classifier on query 0 (pool \"first\") or the mean of the queries (pool \"mean\") "
    "of the last decoder layer: Linear(in_dim, hidden_dim) -> "
    "GELU -> LayerNorm -> Linear(hidden_dim, num_labels). Loss cross_entropy (labels) or "
    "soft_bce (soft scores x num_labels, as MMF for VQA). See plugins/heads/mlp_classifier/README.md.";

std::shared_ptr<unitrain::Head> make_head(const nlohmann::json& options) {
  return unitrain::heads::make_mlp_classifier_head(options);
}

}  // namespace

UNITRAIN_PLUGIN(kMlpClassifier, unitrain::Head, "head", "mlp_classifier", "0.1.0",
                "UniT classification head (MLP on the first query)",
                unitrain::heads::kMlpClassifierDefaults,
                kReadme, make_head);
UNITRAIN_EXPORT_PLUGINS(&kMlpClassifier);

// Plugin entry point of the mlp_classifier head (kept apart from the module so that
// tests can link the module without the exported symbol).
#include "mlp_classifier.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace {

std::shared_ptr<unitrain::Head> make_head(const nlohmann::json& options) {
  return unitrain::heads::make_mlp_classifier_head(options);
}

}  // namespace

UNITRAIN_PLUGIN(kMlpClassifier, unitrain::Head, "head", "mlp_classifier", "0.1.0",
                "UniT classification head (MLP on the first query)",
                unitrain::heads::mlp_classifier_option_set().defaults_json().c_str(),
                kReadme, make_head);
UNITRAIN_EXPORT_PLUGINS(&kMlpClassifier);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE(
    "head", "mlp_classifier", &unitrain::heads::mlp_classifier_option_set));

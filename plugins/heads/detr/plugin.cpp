// Plugin entry point of the detr head (kept apart from the module so that tests can
// link the module without the exported symbol).
#include "detr_head.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace {

std::shared_ptr<unitrain::Head> make_head(const nlohmann::json& options) {
  return unitrain::heads::make_detr_head(options);
}

}  // namespace

UNITRAIN_PLUGIN(kDetr, unitrain::Head, "head", "detr", "0.1.0",
                "DETR detection head with Hungarian matching (UniT's COCO / VG head)",
                unitrain::heads::detr_head_option_set().defaults_json().c_str(), kReadme,
                make_head);
UNITRAIN_EXPORT_PLUGINS(&kDetr);
UNITRAIN_EXPORT_OPTION_TABLES(
    UNITRAIN_OPTION_TABLE("head", "detr", &unitrain::heads::detr_head_option_set));

// Plugin entry point of the detr head (kept apart from the module so that tests can
// link the module without the exported symbol).
#include "detr_head.h"
#include "unitrain/plugin.h"

namespace {

constexpr const char* kReadme =
    "DETR detection head: class Linear(in_dim, num_classes+1) and box MLP(in_dim, in_dim, 4) "
    "on every decoder layer; Hungarian matching (cost_class, cost_bbox, cost_giou); losses "
    "loss_ce (no-object weight eos_coef), loss_bbox (L1), loss_giou, loss_attr (num_attributes "
    "> 0), auxiliary losses loss_*_<layer>. See plugins/heads/detr/README.md.";

std::shared_ptr<unitrain::Head> make_head(const nlohmann::json& options) {
  return unitrain::heads::make_detr_head(options);
}

}  // namespace

UNITRAIN_PLUGIN(kDetr, unitrain::Head, "head", "detr", "0.1.0",
                "DETR detection head with Hungarian matching (UniT's COCO / VG head)",
                unitrain::heads::kDetrHeadDefaults, kReadme, make_head);
UNITRAIN_EXPORT_PLUGINS(&kDetr);

// Options of the vg_detection plugin (JSON keys: README.md).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "unitrain/data/coco_style.h"
#include "unitrain/metrics.h"

namespace unitrain::vg {

// `j` holds every default key (the host merged them); file names are resolved under "root".
data::CocoStyleOptions vg_options_from_json(const nlohmann::json& j, const std::string& where);
// The plugin factory (merges `options` over the defaults itself, for direct callers).
std::shared_ptr<Dataset> make_vg_detection(const nlohmann::json& options);

}  // namespace unitrain::vg

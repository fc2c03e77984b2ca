// Options of the vg_detection plugin (declared in plugin.cpp; the table is in README.md).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "unitrain/data/coco_style.h"
#include "unitrain/metrics.h"

namespace unitrain::vg {

// The dataset block `j` (keys left out keep their defaults) read, with its file names
// resolved under "root". ConfigError naming the key under `where`.
data::CocoStyleOptions vg_options_from_json(const nlohmann::json& j, const std::string& where);
// The plugin factory.
std::shared_ptr<Dataset> make_vg_detection(const nlohmann::json& options);

}  // namespace unitrain::vg

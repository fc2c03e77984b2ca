// Loading one plugin library: the checks of docs/plugin_guide.md, in order.
#pragma once

#include <filesystem>
#include <vector>

#include "unitrain/plugin_abi.h"

namespace unitrain::registry_detail {

// Opens `file` (RTLD_NOW | RTLD_LOCAL, kept loaded for the life of the process) and
// returns its checked descriptors. Throws PluginLoadError.
std::vector<const unitrain_plugin_descriptor*> load_library(const std::filesystem::path& file);

// `unitrain_plugin_default_v1` of a library load_library opened (UNITRAIN_EXPORT_DEFAULTS),
// or nullptr when it exports none.
using DefaultPluginFn = const char* (*)(const char* kind);
DefaultPluginFn default_function(const std::filesystem::path& file);

}  // namespace unitrain::registry_detail

// Creates plugin objects the way experiments do: through a Registry that loaded the
// plugin library from the build's plugin directory.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "unitrain/registry.h"

namespace unitrain::test {

// A registry holding `lib<library>.so` from UNITRAIN_TEST_PLUGIN_DIR, loaded once per
// process (plugins are never unloaded).
inline const Registry& registry_with(const std::string& library) {
  static Registry* registry = new Registry();
  registry->load_file(std::filesystem::path(UNITRAIN_TEST_PLUGIN_DIR) / ("lib" + library + ".so"));
  return *registry;
}

template <typename Interface>
std::shared_ptr<Interface> create_plugin(const std::string& library, const std::string& kind,
                                         const std::string& name, const nlohmann::json& options) {
  return registry_with(library).create_as<Interface>(kind, name, options,
                                                     "test.json:/" + kind + "/" + name);
}

}  // namespace unitrain::test

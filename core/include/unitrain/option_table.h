// The README key table a loaded plugin declares through unitrain/options.h
// (UNITRAIN_EXPORT_OPTION_TABLES), read from its library: `unitrain plugins show NAME
// --options-markdown` prints it and tests/plugins/option_tables_test.cpp checks the
// README against it.
#pragma once

#include <dlfcn.h>

#include <optional>
#include <string>

#include "unitrain/registry.h"

namespace unitrain {

// The table, or nullopt when the plugin's library exports none for it (a plugin that
// reads its options by hand). The library must be loaded (it is, once in a Registry).
inline std::optional<std::string> declared_option_table(const PluginInfo& plugin) {
  void* library = dlopen(plugin.file.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (library == nullptr) return std::nullopt;
  using TableFn = const char* (*)(const char*, const char*);
  auto table = reinterpret_cast<TableFn>(dlsym(library, "unitrain_plugin_options_markdown_v1"));
  const char* text = table ? table(plugin.kind.c_str(), plugin.name.c_str()) : nullptr;
  std::optional<std::string> result;
  if (text != nullptr) result = std::string(text);
  // NOTE: no dlclose, as nowhere in unitrain (docs/plugin_guide.md, lifetime rules); the
  // library stays loaded by the Registry anyway.
  return result;
}

}  // namespace unitrain

// The plugin registry: loads plugin libraries (.so) and creates objects by kind and
// name. Libraries are loaded once with RTLD_NOW | RTLD_LOCAL and never unloaded (see
// docs/plugin_guide.md, "Lifetime"): objects they created may outlive any scope.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"
#include "unitrain/json_util.h"
#include "unitrain/plugin.h"

namespace unitrain {

struct PluginInfo {
  std::string kind;
  std::string name;
  std::string version;
  std::string description;
  std::string file;  // the library it came from
  // Why that library was loaded: the search-path entry or option that named it
  // ("--plugin-dir", "UNITRAIN_PLUGIN_PATH", "the build's plugin folder", ...); empty
  // when a program called load_file / load_directory without saying.
  std::string origin;
  std::string readme;
  nlohmann::json defaults;  // default options (a JSON object)
  int abi_major = 0;
  int abi_minor = 0;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry used by the CLI and the experiment builder.
  static Registry& global();

  // Loads one plugin library. Throws PluginLoadError (missing file, not a shared
  // library, no entry point, ABI or libtorch mismatch) or RegistryError (duplicate
  // kind/name; the message names both files). Loading the same file twice is a no-op.
  // `origin` says why (PluginInfo::origin).
  void load_file(const std::filesystem::path& file, const std::string& origin = "");
  // Loads every `*.so` in a directory (not recursive), in name order.
  void load_directory(const std::filesystem::path& dir, const std::string& origin = "");
  // A folder to search, and why (PluginInfo::origin).
  struct SearchDir {
    std::filesystem::path dir;
    std::string origin;
  };
  // The default search path: the build's plugin directory (or the installed one next
  // to the executable), then `extra_dirs`, then the directories of UNITRAIN_PLUGIN_PATH
  // (colon separated). Directories that do not exist are skipped, except those in
  // `extra_dirs` and UNITRAIN_PLUGIN_PATH, which are errors.
  void load_default_search_path(const std::vector<SearchDir>& extra_dirs = {});

  // Every registered plugin, sorted by kind then name; `kind` empty = all kinds.
  std::vector<PluginInfo> list(const std::string& kind = "") const;
  std::vector<std::string> kinds() const;
  bool contains(const std::string& kind, const std::string& name) const;
  // Throws RegistryError listing the registered names of that kind, nearest first.
  const PluginInfo& find(const std::string& kind, const std::string& name) const;
  // Finds a plugin by name in any kind (for `unitrain plugins show NAME`).
  std::vector<const PluginInfo*> find_any(const std::string& name) const;

  // The plugin of `kind` that a library names as that kind's default
  // (UNITRAIN_EXPORT_DEFAULTS), or nullopt when no loaded library names one.
  std::optional<std::string> default_plugin(const std::string& kind) const;

  // Merges `options` over the plugin's defaults after checking them (unknown keys,
  // JSON types): the one merge of plugin options, which the experiment's check and
  // create() both run. `where` is the "file.json:/json/pointer" of the options block and
  // prefixes every message. Throws ConfigError.
  nlohmann::json resolve_options(const std::string& kind, const std::string& name,
                                 const nlohmann::json& options,
                                 const std::string& where) const;
  // The same for the block at `pointer`, each message located by `where(pointer)` (the
  // experiment names the file or --set value each key came from).
  nlohmann::json resolve_options(const std::string& kind, const std::string& name,
                                 const nlohmann::json& options, const JsonLocator& where,
                                 const std::string& pointer) const;

  // Creates an object. Options are resolved as above; a factory's failure becomes a
  // RegistryError carrying the plugin's message.
  std::shared_ptr<PluginObject> create(const std::string& kind, const std::string& name,
                                       const nlohmann::json& options,
                                       const std::string& where) const;

  template <typename T>
  std::shared_ptr<T> create_as(const std::string& kind, const std::string& name,
                               const nlohmann::json& options, const std::string& where) const {
    auto object = create(kind, name, options, where);
    auto typed = std::dynamic_pointer_cast<T>(object);
    if (!typed) throw_wrong_interface(kind, name, where);
    return typed;
  }

 private:
  [[noreturn]] void throw_wrong_interface(const std::string& kind, const std::string& name,
                                          const std::string& where) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace unitrain

#include "unitrain/registry.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"
#include "unitrain/config.h"

namespace unitrain {
namespace fs = std::filesystem;

namespace {

struct Entry {
  PluginInfo info;
  unitrain_factory_fn create = nullptr;
};

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// The folder holding the running executable, for the installed plugin directory.
fs::path executable_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// The user name of `uid`, or "" when it has none.
std::string user_name(uid_t uid) {
  struct passwd entry {};
  struct passwd* found = nullptr;
  char buffer[1024];
  if (getpwuid_r(uid, &entry, buffer, sizeof(buffer), &found) != 0 || found == nullptr) return "";
  return found->pw_name;
}

// Loading a library runs its code: refuses `path` (a plugin file, or a folder plugins
// are read from) when someone other than this user or root could have put code there.
// A world-writable folder with the sticky bit (/tmp) still lets others add files, so a
// plugin folder must not be one; a plugin file's own folder may (others cannot replace
// the file in it).
void require_trusted(const fs::path& path, const std::string& what, bool folder_of_file) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // a missing path is reported by the loader
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    const std::string owner = user_name(st.st_uid);
    throw PluginLoadError(fmt::format(
        "refusing to load {}: '{}' is owned by uid {}{}, not by you (uid {}) or root, and "
        "loading a plugin runs its code; copy it to a folder you own or have it chowned",
        what, path.string(), st.st_uid, owner.empty() ? "" : " (" + owner + ")", me));
  }
  const bool world_writable = (st.st_mode & S_IWOTH) != 0;
  const bool sticky_folder = S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) != 0;
  if (world_writable && !(folder_of_file && sticky_folder)) {
    throw PluginLoadError(fmt::format(
        "refusing to load {}: '{}' is world-writable (mode {:04o}), so anyone could put code "
        "there that runs in unitrain; run chmod o-w '{}'",
        what, path.string(), st.st_mode & 07777, path.string()));
  }
}

// The file itself, the folder of its real location and, for a symbolic link, the
// folder of the link.
void require_trusted_file(const fs::path& file) {
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(file, ec);
  if (ec) return;
  const std::string what = "plugin '" + file.string() + "'";
  require_trusted(real, what, false);
  require_trusted(real.parent_path(), what, true);
  const fs::path link_folder = fs::weakly_canonical(fs::absolute(file, ec).parent_path(), ec);
  if (!ec && link_folder != real.parent_path()) require_trusted(link_folder, what, true);
}

}  // namespace

struct Registry::Impl {
  mutable std::mutex mutex;
  std::map<std::pair<std::string, std::string>, Entry> entries;
  std::set<std::string> loaded_files;  // canonical paths
  // kind -> (the default plugin's name, the library that named it)
  std::map<std::string, std::pair<std::string, std::string>> defaults;
  // Every folder loaded, and why, in order: named when a plugin is not found.
  std::vector<std::string> searched;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Registry& Registry::global() {
  // Leaked on purpose: plugin objects may be alive during static destruction.
  static auto* registry = new Registry();
  return *registry;
}

void Registry::load_file(const fs::path& file, const std::string& origin) {
  std::error_code ec;
  auto canonical = fs::weakly_canonical(file, ec).string();
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->loaded_files.count(canonical)) return;
  }
  require_trusted_file(file);
  auto descriptors = registry_detail::load_library(file);

  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<Entry> fresh;
  for (const auto* d : descriptors) {
    Entry entry;
    entry.info.kind = d->kind;
    entry.info.name = d->name;
    entry.info.version = d->version ? d->version : "";
    entry.info.description = d->description ? d->description : "";
    entry.info.readme = d->readme ? d->readme : "";
    entry.info.file = file.string();
    entry.info.origin = origin;
    entry.info.abi_major = static_cast<int>(d->abi_major);
    entry.info.abi_minor = static_cast<int>(d->abi_minor);
    try {
      entry.info.defaults = nlohmann::json::parse(
          d->default_options_json ? d->default_options_json : "{}");
    } catch (const nlohmann::json::exception& e) {
      throw PluginLoadError(fmt::format("plugin {} '{}' in '{}' has invalid default options JSON: {}",
                                        entry.info.kind, entry.info.name, file.string(), e.what()));
    }
    if (!entry.info.defaults.is_object()) {
      throw PluginLoadError(fmt::format(
          "plugin {} '{}' in '{}': default options must be a JSON object", entry.info.kind,
          entry.info.name, file.string()));
    }
    entry.create = d->create;
    auto key = std::make_pair(entry.info.kind, entry.info.name);
    auto it = impl_->entries.find(key);
    if (it != impl_->entries.end()) {
      throw RegistryError(fmt::format("duplicate plugin: {} '{}' is defined in '{}' and in '{}'",
                                      entry.info.kind, entry.info.name, it->second.info.file,
                                      file.string()));
    }
    for (const auto& other : fresh) {
      if (other.info.kind == entry.info.kind && other.info.name == entry.info.name) {
        throw RegistryError(fmt::format("duplicate plugin: {} '{}' is defined twice in '{}'",
                                        entry.info.kind, entry.info.name, file.string()));
      }
    }
    fresh.push_back(std::move(entry));
  }
  // The defaults the library names, each one of its own plugins.
  std::map<std::string, std::string> named;
  if (auto default_of = registry_detail::default_function(file)) {
    for (const auto& entry : fresh) {
      const char* name = default_of(entry.info.kind.c_str());
      if (name == nullptr || named.count(entry.info.kind)) continue;
      const bool own = std::any_of(fresh.begin(), fresh.end(), [&](const Entry& e) {
        return e.info.kind == entry.info.kind && e.info.name == name;
      });
      if (!own) {
        throw PluginLoadError(fmt::format(
            "'{}' names {} '{}' as the default {}, but defines no {} of that name",
            file.string(), entry.info.kind, name, entry.info.kind, entry.info.kind));
      }
      const auto it = impl_->defaults.find(entry.info.kind);
      if (it != impl_->defaults.end() && it->second.first != name) {
        throw RegistryError(fmt::format(
            "two default {}s: '{}' names '{}', '{}' names '{}'; a kind has one default",
            entry.info.kind, it->second.second, it->second.first, file.string(), name));
      }
      named[entry.info.kind] = name;
    }
  }
  for (auto& entry : fresh) {
    auto key = std::make_pair(entry.info.kind, entry.info.name);
    impl_->entries.emplace(key, std::move(entry));
  }
  for (const auto& [kind, name] : named) impl_->defaults[kind] = {name, file.string()};
  impl_->loaded_files.insert(canonical);
}

void Registry::load_directory(const fs::path& dir, const std::string& origin) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw PluginLoadError(fmt::format("plugin directory not found: '{}'", dir.string()));
  }
  require_trusted(fs::weakly_canonical(dir, ec), "plugins from '" + dir.string() + "'", false);
  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(dir)) {
    const auto name = item.path().filename().string();
    if (item.is_regular_file() && name.size() > 3 && name.substr(name.size() - 3) == ".so") {
      files.push_back(item.path());
    }
  }
  std::sort(files.begin(), files.end());
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const std::string entry = origin.empty() ? dir.string() : fmt::format("{} ({})", dir.string(), origin);
    auto& searched = impl_->searched;
    if (std::find(searched.begin(), searched.end(), entry) == searched.end()) searched.push_back(entry);
  }
  for (const auto& file : files) load_file(file, origin);
}

void Registry::load_default_search_path(const std::vector<SearchDir>& extra_dirs) {
  std::error_code ec;
  const fs::path build_dir = UNITRAIN_BUILD_PLUGIN_DIR;
  const fs::path installed_dir = executable_dir() / ".." / UNITRAIN_INSTALL_PLUGIN_DIR;
  // An installed binary uses the plugins installed beside it; a build-tree binary the
  // build's plugin directory.
  if (fs::is_directory(installed_dir, ec)) {
    load_directory(installed_dir, "installed beside the executable");
  } else if (fs::is_directory(build_dir, ec)) {
    load_directory(build_dir, "the build's plugin folder (no installed one beside the executable)");
  }
  for (const auto& extra : extra_dirs) load_directory(extra.dir, extra.origin);
  if (const char* env = std::getenv("UNITRAIN_PLUGIN_PATH")) {
    std::string paths = env;
    size_t start = 0;
    while (start <= paths.size()) {
      auto end = paths.find(':', start);
      if (end == std::string::npos) end = paths.size();
      auto dir = paths.substr(start, end - start);
      if (!dir.empty()) {
        if (fs::path(dir).is_relative()) {
          throw PluginLoadError(fmt::format(
              "UNITRAIN_PLUGIN_PATH entry '{}' is a relative path: it would load plugins from "
              "whatever folder unitrain is started in; give an absolute path",
              dir));
        }
        if (!fs::is_directory(dir, ec)) {
          throw PluginLoadError(fmt::format(
              "plugin directory '{}' from UNITRAIN_PLUGIN_PATH does not exist", dir));
        }
        load_directory(dir, "UNITRAIN_PLUGIN_PATH");
      }
      start = end + 1;
    }
  }
}

std::vector<PluginInfo> Registry::list(const std::string& kind) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<PluginInfo> out;
  for (const auto& [key, entry] : impl_->entries) {
    if (kind.empty() || key.first == kind) out.push_back(entry.info);
  }
  return out;
}

std::vector<std::string> Registry::kinds() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::set<std::string> kinds;
  for (const auto& [key, entry] : impl_->entries) kinds.insert(key.first);
  return {kinds.begin(), kinds.end()};
}

bool Registry::contains(const std::string& kind, const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->entries.count({kind, name}) > 0;
}

const PluginInfo& Registry::find(const std::string& kind, const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto it = impl_->entries.find({kind, name});
  if (it != impl_->entries.end()) return it->second.info;
  std::vector<std::string> names;
  for (const auto& [key, entry] : impl_->entries) {
    if (key.first == kind) names.push_back(key.second);
  }
  const std::string searched =
      impl_->searched.empty()
          ? std::string("no plugin folder was searched")
          : fmt::format("plugin folders searched: {}", join(impl_->searched));
  if (names.empty()) {
    throw RegistryError(
        fmt::format("unknown {} '{}': no {} plugins are registered ({}; add a folder with "
                    "--plugin-dir, \"plugin_dirs\" or UNITRAIN_PLUGIN_PATH)",
                    kind, name, kind, searched));
  }
  throw RegistryError(fmt::format("unknown {} '{}'; registered {}s: {} ({})", kind, name, kind,
                                  join(nearest_first(name, names)), searched));
}

std::vector<const PluginInfo*> Registry::find_any(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<const PluginInfo*> out;
  for (const auto& [key, entry] : impl_->entries) {
    if (key.second == name) out.push_back(&entry.info);
  }
  return out;
}

nlohmann::json Registry::resolve_options(const std::string& kind, const std::string& name,
                                         const nlohmann::json& options,
                                         const std::string& where) const {
  auto colon = where.rfind(":/");
  if (colon == std::string::npos) {
    return resolve_options(kind, name, options,
                           [&](const std::string& p) { return p.empty() ? where : where + p; }, "");
  }
  const std::string file = where.substr(0, colon);
  return resolve_options(kind, name, options,
                         [&](const std::string& p) { return file + ":" + (p.empty() ? "/" : p); },
                         where.substr(colon + 1));
}

nlohmann::json Registry::resolve_options(const std::string& kind, const std::string& name,
                                         const nlohmann::json& options, const JsonLocator& where,
                                         const std::string& pointer) const {
  return merge_checked_located(find(kind, name).defaults, options, where, pointer);
}

std::optional<std::string> Registry::default_plugin(const std::string& kind) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const auto it = impl_->defaults.find(kind);
  if (it == impl_->defaults.end()) return std::nullopt;
  return it->second.first;
}

std::shared_ptr<PluginObject> Registry::create(const std::string& kind, const std::string& name,
                                               const nlohmann::json& options,
                                               const std::string& where) const {
  nlohmann::json resolved = resolve_options(kind, name, options, where);
  unitrain_factory_fn factory = nullptr;
  std::string file;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const auto& entry = impl_->entries.at({kind, name});
    factory = entry.create;
    file = entry.info.file;
  }
  char error[4096] = {};
  void* raw = nullptr;
  const std::string text = resolved.dump();
  if (factory(text.c_str(), &raw, error, sizeof(error)) != 0 || raw == nullptr) {
    throw RegistryError(fmt::format("{}: {} '{}' ({}) failed to build: {}", where, kind, name,
                                    file, error[0] ? error : "no message"));
  }
  auto* holder = static_cast<std::shared_ptr<PluginObject>*>(raw);
  std::shared_ptr<PluginObject> object = std::move(*holder);
  delete holder;
  return object;
}

void Registry::throw_wrong_interface(const std::string& kind, const std::string& name,
                                     const std::string& where) const {
  throw RegistryError(fmt::format(
      "{}: {} '{}' built an object that does not implement the {} interface; the plugin "
      "declares the wrong kind",
      where, kind, name, kind));
}

}  // namespace unitrain

#include "loader.h"

#include <dlfcn.h>

#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/plugin.h"

namespace unitrain::registry_detail {
namespace fs = std::filesystem;
namespace {

// NOTE: libraries are never unloaded. Unmapping a plugin while a module it created is
// alive crashes the next forward(), and dlclose at exit crashes inside libtorch's
// dispatcher. The list is leaked on purpose so no destructor ever runs.
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>();
  return *libraries;
}
std::mutex& load_mutex() {
  static auto* mutex = new std::mutex();
  return *mutex;
}

bool has_elf_magic(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' &&
         magic[3] == 'F';
}

// Boost reports dlopen failures as "... (dlerror system message: TEXT): ..."; TEXT is
// what the user needs (e.g. an undefined symbol).
std::string dlerror_text(const std::string& what) {
  const std::string marker = "dlerror system message: ";
  auto start = what.find(marker);
  if (start == std::string::npos) return what;
  start += marker.size();
  auto end = what.rfind(')');
  if (end == std::string::npos || end < start) end = what.size();
  return what.substr(start, end - start);
}

std::string library_of(const void* address) {
  Dl_info info{};
  if (address != nullptr && dladdr(address, &info) != 0 && info.dli_fname != nullptr) {
    return info.dli_fname;
  }
  return "an unknown library";
}

void check_descriptor(const unitrain_plugin_descriptor* d, const fs::path& file) {
  if (d == nullptr) {
    throw PluginLoadError(fmt::format("plugin library '{}' lists a null descriptor", file.string()));
  }
  if (d->struct_size < sizeof(unitrain_plugin_descriptor)) {
    throw PluginLoadError(fmt::format(
        "plugin library '{}': descriptor size {} is smaller than this host's {}; it was built "
        "against an older, incompatible SDK: rebuild it against this unitrain",
        file.string(), d->struct_size, sizeof(unitrain_plugin_descriptor)));
  }
  const std::string name = d->name ? d->name : "?";
  if (d->abi_major != UNITRAIN_ABI_MAJOR) {
    throw PluginLoadError(fmt::format(
        "plugin '{}' in '{}' uses plugin ABI {}.{}, but this unitrain uses ABI {}.{}: rebuild "
        "the plugin against this unitrain SDK",
        name, file.string(), d->abi_major, d->abi_minor, UNITRAIN_ABI_MAJOR, UNITRAIN_ABI_MINOR));
  }
  if (d->kind == nullptr || d->name == nullptr || *d->kind == '\0' || *d->name == '\0' ||
      d->create == nullptr) {
    throw PluginLoadError(fmt::format(
        "plugin library '{}' has a descriptor without kind, name or factory", file.string()));
  }
  const unitrain_build_info host = detail::this_build();
  const unitrain_build_info& b = d->build;
  if (b.torch_major != host.torch_major || b.torch_minor != host.torch_minor) {
    throw PluginLoadError(fmt::format(
        "plugin '{}' in '{}' was built against LibTorch {}.{}.{}, but this unitrain uses "
        "LibTorch {}.{}.{}: rebuild the plugin against the same LibTorch",
        name, file.string(), b.torch_major, b.torch_minor, b.torch_patch, host.torch_major,
        host.torch_minor, host.torch_patch));
  }
  if (b.cxx11_abi != host.cxx11_abi || b.gxx_abi_version != host.gxx_abi_version) {
    throw PluginLoadError(fmt::format(
        "plugin '{}' in '{}' was built with _GLIBCXX_USE_CXX11_ABI={} and __GXX_ABI_VERSION={}, "
        "this unitrain with {} and {}: rebuild the plugin with the same C++ ABI",
        name, file.string(), b.cxx11_abi, b.gxx_abi_version, host.cxx11_abi,
        host.gxx_abi_version));
  }
  if (b.torch_instance != host.torch_instance) {
    throw PluginLoadError(fmt::format(
        "plugin '{}' in '{}' was built against another libtorch: it uses the one in '{}', this "
        "unitrain uses '{}'; build the plugin against the same LibTorch (CMAKE_PREFIX_PATH / "
        "Torch_DIR)",
        name, file.string(), library_of(b.torch_instance), library_of(host.torch_instance)));
  }
}

}  // namespace

std::vector<const unitrain_plugin_descriptor*> load_library(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    throw PluginLoadError(fmt::format("plugin file not found: '{}'", file.string()));
  }
  if (!fs::is_regular_file(file, ec)) {
    throw PluginLoadError(
        fmt::format("plugin path '{}' is not a regular file", file.string()));
  }
  if (!has_elf_magic(file)) {
    throw PluginLoadError(fmt::format(
        "'{}' is not a shared library (no ELF header); a plugin is a .so built with "
        "unitrain_add_plugin()",
        file.string()));
  }

  std::lock_guard<std::mutex> lock(load_mutex());
  boost::dll::shared_library library;
  try {
    library.load(fs::absolute(file),
                 boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginLoadError(fmt::format("cannot load plugin library '{}': {}", file.string(),
                                      dlerror_text(e.what())));
  }
  if (!library.has(UNITRAIN_PLUGIN_ENTRY_POINT)) {
    loaded_libraries().push_back(std::move(library));
    throw PluginLoadError(fmt::format(
        "'{}' is not a unitrain plugin: it does not export '{}' (did you forget "
        "UNITRAIN_EXPORT_PLUGINS(...)?)",
        file.string(), UNITRAIN_PLUGIN_ENTRY_POINT));
  }
  auto list = library.get<std::remove_pointer_t<unitrain_plugin_list_fn>>(
      UNITRAIN_PLUGIN_ENTRY_POINT);
  loaded_libraries().push_back(library);

  size_t count = 0;
  const unitrain_plugin_descriptor* const* descriptors =
      list(UNITRAIN_ABI_MAJOR, UNITRAIN_ABI_MINOR, &count);
  if (descriptors == nullptr || count == 0) {
    throw PluginLoadError(
        fmt::format("plugin library '{}' lists no plugins for this host", file.string()));
  }
  std::vector<const unitrain_plugin_descriptor*> result(descriptors, descriptors + count);
  for (const auto* d : result) check_descriptor(d, file);
  return result;
}

DefaultPluginFn default_function(const fs::path& file) {
  std::lock_guard<std::mutex> lock(load_mutex());
  std::error_code ec;
  const fs::path wanted = fs::weakly_canonical(fs::absolute(file), ec);
  for (const auto& library : loaded_libraries()) {
    if (fs::weakly_canonical(library.location(), ec) != wanted) continue;
    if (!library.has("unitrain_plugin_default_v1")) return nullptr;
    return library.get<const char*(const char*)>("unitrain_plugin_default_v1");
  }
  return nullptr;
}

}  // namespace unitrain::registry_detail

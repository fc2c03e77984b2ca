// What a plugin author writes against: the common base of every object a plugin
// creates, and the macros that describe and export plugins.
//
//   std::shared_ptr<unitrain::Head> make_my_head(const nlohmann::json& options) {...}
//   UNITRAIN_PLUGIN(kMyHead, unitrain::Head, "head", "my_head", "1.0.0",
//                   "One-line description", R"({"hidden_dim": 256})", kReadme,
//                   make_my_head);
//   UNITRAIN_EXPORT_PLUGINS(&kMyHead);   // once per library, listing all its plugins
//
// The factory receives the user's options already merged over the defaults and
// checked against them (unknown keys and wrong JSON types never reach it). It may
// throw; the thunk below turns every exception into the ABI's error message.
#pragma once

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <ATen/Context.h>
#include <torch/version.h>

#include "unitrain/plugin_abi.h"

namespace unitrain {

// Base of every object a factory returns. The host casts it to the interface of the
// plugin's kind (Encoder, Decoder, Head, Dataset, ...).
class PluginObject {
 public:
  virtual ~PluginObject() = default;
};

namespace detail {

// Identifies the libtorch this translation unit is linked against (see plugin_abi.h):
// the address of an exported libtorch function, as the dynamic linker resolved it.
inline const void* torch_instance() noexcept {
  return reinterpret_cast<const void*>(&at::globalContext);
}

inline void copy_message(const char* what, char* error, size_t error_size) noexcept {
  if (error == nullptr || error_size == 0) return;
  std::snprintf(error, error_size, "%s", what);
}

template <typename Interface, std::shared_ptr<Interface> (*Make)(const nlohmann::json&)>
int create_thunk(const char* options_json, void** out_object, char* error,
                 size_t error_size) noexcept {
  try {
    auto options = nlohmann::json::parse(options_json ? options_json : "{}");
    std::shared_ptr<Interface> object = Make(options);
    if (!object) {
      copy_message("factory returned no object", error, error_size);
      return 1;
    }
    *out_object = new std::shared_ptr<PluginObject>(std::move(object));
    return 0;
  } catch (const std::exception& e) {
    copy_message(e.what(), error, error_size);
  } catch (...) {
    copy_message("unknown exception in plugin factory", error, error_size);
  }
  return 1;
}

inline unitrain_build_info this_build() noexcept {
  unitrain_build_info info{};
  info.struct_size = sizeof(unitrain_build_info);
  info.torch_major = TORCH_VERSION_MAJOR;
  info.torch_minor = TORCH_VERSION_MINOR;
  info.torch_patch = TORCH_VERSION_PATCH;
  info.cxx11_abi = _GLIBCXX_USE_CXX11_ABI;
  info.gxx_abi_version = __GXX_ABI_VERSION;
  info.torch_instance = torch_instance();
  info.compiler = __VERSION__;
  return info;
}

}  // namespace detail
}  // namespace unitrain

// Defines a descriptor variable VAR for one plugin. INTERFACE is the core interface
// the object implements; MAKE is `std::shared_ptr<INTERFACE>(const nlohmann::json&)`.
#define UNITRAIN_PLUGIN(VAR, INTERFACE, KIND, NAME, VERSION, DESCRIPTION, DEFAULTS_JSON, \
                        README, MAKE)                                                   \
  static const unitrain_plugin_descriptor VAR = {                                      \
      sizeof(unitrain_plugin_descriptor),                                              \
      UNITRAIN_ABI_MAJOR,                                                              \
      UNITRAIN_ABI_MINOR,                                                              \
      KIND,                                                                            \
      NAME,                                                                            \
      VERSION,                                                                         \
      DESCRIPTION,                                                                     \
      DEFAULTS_JSON,                                                                   \
      README,                                                                          \
      ::unitrain::detail::this_build(),                                                \
      &::unitrain::detail::create_thunk<INTERFACE, MAKE>}

// Exports the library's entry point listing the given descriptor addresses.
#define UNITRAIN_EXPORT_PLUGINS(...)                                                   \
  extern "C" __attribute__((visibility("default")))                                   \
  const unitrain_plugin_descriptor* const* unitrain_plugin_list_v1(                    \
      uint32_t /*host_abi_major*/, uint32_t /*host_abi_minor*/, size_t* count) {       \
    /* Always answers: the host compares each descriptor's ABI and explains. */         \
    static const unitrain_plugin_descriptor* const kList[] = {__VA_ARGS__};            \
    *count = sizeof(kList) / sizeof(kList[0]);                                         \
    return kList;                                                                      \
  }

// Exports `unitrain_plugin_default_v1(kind)`: the name of this library's plugin that an
// experiment gets when it leaves that kind's block out, or NULL. Optional, once per
// library; each argument is a {KIND, NAME} pair naming a plugin the library exports:
//   UNITRAIN_EXPORT_DEFAULTS({"scheduler", "ratios"});
// The host refuses two libraries that name different defaults for one kind.
#define UNITRAIN_EXPORT_DEFAULTS(...)                                                   \
  extern "C" __attribute__((visibility("default"))) const char*                        \
  unitrain_plugin_default_v1(const char* kind) {                                       \
    static const char* const kDefaults[][2] = {__VA_ARGS__};                           \
    for (const auto& d : kDefaults) {                                                  \
      if (std::strcmp(d[0], kind) == 0) return d[1];                                   \
    }                                                                                  \
    return nullptr;                                                                    \
  }

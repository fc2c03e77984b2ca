// The binary interface between the unitrain host and a plugin library (.so).
//
// A plugin library exports exactly one C symbol, `unitrain_plugin_list_v1`, which
// returns an array of descriptors in static storage. A library may hold several
// plugins. Everything that crosses the boundary is plain C: strings are UTF-8,
// options travel as JSON text, and factories are noexcept and report failure through
// a status code plus a message buffer, so that no exception and no nlohmann type (whose
// layout depends on build settings) crosses it.
//
// Compatibility rules:
//  - `struct_size` comes first in every struct; new fields are only appended, so a
//    host reads what it knows and ignores the rest.
//  - A different ABI major is refused; a newer API minor on either side is fine.
//  - The objects a factory returns are C++ objects (torch modules), so host and plugin
//    must share one libtorch and one C++ ABI: the build info below is checked.
//
// Plugin authors do not fill these structs by hand: see <unitrain/plugin.h>.
#pragma once

#include <stddef.h>
#include <stdint.h>

// 2: Evaluator::table_rows, the "preparer" kind (unitrain/prepare.h) and
//    ImageTransformOptions::augment as std::optional (interfaces whose vtables or layouts
//    changed since 1; 1 also gained Evaluator::headline / chance_level).
#define UNITRAIN_ABI_MAJOR 2
#define UNITRAIN_ABI_MINOR 0
#define UNITRAIN_PLUGIN_ENTRY_POINT "unitrain_plugin_list_v1"

#ifdef __cplusplus
extern "C" {
#endif

// How the plugin was built; the host refuses a plugin whose build differs from its own.
typedef struct unitrain_build_info {
  uint32_t struct_size;
  int32_t torch_major;
  int32_t torch_minor;
  int32_t torch_patch;
  int32_t cxx11_abi;        // _GLIBCXX_USE_CXX11_ABI
  int32_t gxx_abi_version;  // __GXX_ABI_VERSION
  // Address of a libtorch singleton as seen from the plugin. Equal to the host's when
  // both resolve to the same loaded libtorch; different when the plugin pulled in a
  // second copy (another LibTorch install).
  const void* torch_instance;
  const char* compiler;  // __VERSION__, informative only
} unitrain_build_info;

// Factory: builds one object from options given as JSON text (already merged over the
// plugin's defaults and checked by the host). On success returns 0 and stores in
// *out_object a heap-allocated `std::shared_ptr<unitrain::PluginObject>` that the host
// takes over. On failure returns non-zero and writes a NUL-terminated message into
// `error` (at most error_size bytes). Never throws.
typedef int (*unitrain_factory_fn)(const char* options_json, void** out_object,
                                   char* error, size_t error_size);

typedef struct unitrain_plugin_descriptor {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  const char* kind;         // "encoder", "decoder", "head", "dataset", "scheduler", ...
  const char* name;         // unique within its kind
  const char* version;      // the plugin's own version, e.g. "1.2.0"
  const char* description;  // one line
  const char* default_options_json;  // JSON object: every option key with its default
  const char* readme;       // longer help text (markdown), may be empty
  unitrain_build_info build;
  unitrain_factory_fn create;
} unitrain_plugin_descriptor;

// The one symbol a plugin library exports. The host passes its own ABI version; the
// plugin returns its descriptors (and their count in *count), or NULL with *count = 0
// if it cannot serve that host.
typedef const unitrain_plugin_descriptor* const* (*unitrain_plugin_list_fn)(
    uint32_t host_abi_major, uint32_t host_abi_minor, size_t* count);

#ifdef __cplusplus
}  // extern "C"
#endif

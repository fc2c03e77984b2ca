#include "text/sentencepiece_library.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>
#include <string>

#include "unitrain/errors.h"
#include "unitrain/sanitizer.h"

namespace unitrain::text {
namespace {

constexpr const char* kLibraryName = "libunitrain_sentencepiece.so";

void* open_library() {
#if UNITRAIN_ADDRESS_SANITIZER
  // NOTE: the sanitizer runtimes abort on RTLD_DEEPBIND (google/sanitizers#611), and
  // without it sentencepiece's protobuf-lite and LibTorch's libprotobuf collide.
  throw Error(std::string("SentencePiece support library ") + kLibraryName +
              " is not available in a sanitizer build (it needs dlopen with RTLD_DEEPBIND); "
              "use a WordPiece tokenizer here, or the Release build");
#endif
  std::string errors;
  // RTLD_DEEPBIND: sentencepiece keeps its bundled protobuf-lite (see the shim).
  const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&SentencePieceLibrary::get), &info) != 0 &&
      info.dli_fname != nullptr) {
    const auto beside_core = std::filesystem::path(info.dli_fname).parent_path() / kLibraryName;
    if (void* handle = dlopen(beside_core.c_str(), flags)) return handle;
    errors += std::string(dlerror()) + "; ";
  }
  if (void* handle = dlopen(kLibraryName, flags)) return handle;
  errors += dlerror();
  throw Error(std::string("SentencePiece support library ") + kLibraryName +
              " cannot be loaded: " + errors);
}

template <typename F>
void bind(void* handle, const char* name, F& field) {
  field = reinterpret_cast<F>(dlsym(handle, name));
  if (field == nullptr) {
    throw Error(std::string("SentencePiece support library lacks ") + name);
  }
}

}  // namespace

const SentencePieceLibrary& SentencePieceLibrary::get() {
  static std::once_flag once;
  static SentencePieceLibrary library{};
  static std::string failure;
  std::call_once(once, [] {
    try {
      void* handle = open_library();  // never closed: see docs on plugin lifetime
      bind(handle, "unitrain_spm_load", library.load);
      bind(handle, "unitrain_spm_free", library.free);
      bind(handle, "unitrain_spm_encode", library.encode);
      bind(handle, "unitrain_spm_piece_to_id", library.piece_to_id);
      bind(handle, "unitrain_spm_is_unknown", library.is_unknown);
      bind(handle, "unitrain_spm_info", library.info);
      bind(handle, "unitrain_spm_train", library.train);
    } catch (const Error& e) {
      failure = e.what();
    }
  });
  if (!failure.empty()) throw Error(failure);
  return library;
}

}  // namespace unitrain::text

// Access to libunitrain_sentencepiece (see sentencepiece_shim.cpp for why it is
// loaded at run time rather than linked).
#pragma once

#include <cstddef>

namespace unitrain::text {

struct SentencePieceLibrary {
  void* (*load)(const char* path, char* error, size_t error_size);
  void (*free)(void* handle);
  int (*encode)(void* handle, const char* text, size_t size,
                void (*emit)(void*, const char*, size_t), void* context);
  int (*piece_to_id)(void* handle, const char* piece, size_t size);
  int (*is_unknown)(void* handle, int id);
  int (*info)(void* handle, int which);
  int (*train)(const char* const* keys, const char* const* values, size_t count, char* error,
               size_t error_size);

  // Loads the library once (next to libunitrain_core, else by the loader's search
  // path) and never unloads it. Throws unitrain::Error when it cannot be loaded.
  static const SentencePieceLibrary& get();
};

}  // namespace unitrain::text

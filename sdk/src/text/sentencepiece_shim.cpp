// libunitrain_sentencepiece: a C wrapper around libsentencepiece, loaded by the core
// with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) instead of being linked.
//
// NOTE: Debian's libsentencepiece bundles (and exports) its own protobuf-lite, while
// LibTorch pulls in the system libprotobuf. With both in the global symbol scope,
// libprotobuf's static initializers bind to sentencepiece's copies and the process
// crashes before main(). Loaded locally with deep binding, each library keeps its own
// protobuf. Only plain C crosses this boundary.
#include <cstdio>
#include <string>
#include <unordered_map>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#define UNITRAIN_SPM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
void copy_error(const std::string& message, char* error, size_t error_size) {
  if (error != nullptr && error_size > 0) std::snprintf(error, error_size, "%s", message.c_str());
}
}  // namespace

UNITRAIN_SPM_EXPORT void* unitrain_spm_load(const char* path, char* error, size_t error_size) {
  try {
    auto* processor = new sentencepiece::SentencePieceProcessor();
    const auto status = processor->Load(path);
    if (!status.ok()) {
      copy_error(status.ToString(), error, error_size);
      delete processor;
      return nullptr;
    }
    return processor;
  } catch (const std::exception& e) {
    copy_error(e.what(), error, error_size);
    return nullptr;
  }
}

UNITRAIN_SPM_EXPORT void unitrain_spm_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

// Calls emit(context, piece, size) for each piece of `text`.
UNITRAIN_SPM_EXPORT int unitrain_spm_encode(void* handle, const char* text, size_t size,
                                            void (*emit)(void*, const char*, size_t),
                                            void* context) {
  try {
    auto* processor = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
    for (const auto& piece : processor->EncodeAsPieces(std::string(text, size))) {
      emit(context, piece.data(), piece.size());
    }
    return 0;
  } catch (...) {
    return 1;
  }
}

UNITRAIN_SPM_EXPORT int unitrain_spm_piece_to_id(void* handle, const char* piece, size_t size) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->PieceToId(
      std::string(piece, size));
}

UNITRAIN_SPM_EXPORT int unitrain_spm_is_unknown(void* handle, int id) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->IsUnknown(id) ? 1 : 0;
}

// Which: 0 = piece count, 1 = unk, 2 = bos, 3 = eos, 4 = pad id.
UNITRAIN_SPM_EXPORT int unitrain_spm_info(void* handle, int which) {
  auto* processor = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  switch (which) {
    case 0: return processor->GetPieceSize();
    case 1: return processor->unk_id();
    case 2: return processor->bos_id();
    case 3: return processor->eos_id();
    case 4: return processor->pad_id();
    default: return -1;
  }
}

// Trains with `count` key=value arguments (SentencePieceTrainer flags).
UNITRAIN_SPM_EXPORT int unitrain_spm_train(const char* const* keys, const char* const* values,
                                           size_t count, char* error, size_t error_size) {
  try {
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < count; ++i) kwargs[keys[i]] = values[i];
    const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
    if (!status.ok()) {
      copy_error(status.ToString(), error, error_size);
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    copy_error(e.what(), error, error_size);
    return 1;
  }
}

#include <filesystem>

#include "text/sentencepiece_library.h"
#include "text/tokenizers.h"
#include "unitrain/errors.h"

namespace unitrain::text {
namespace {
enum Info { kPieceCount = 0, kUnk = 1, kBos = 2, kEos = 3, kPad = 4 };
}

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file, int64_t max_length) {
  max_length_ = max_length;
  if (!std::filesystem::is_regular_file(model_file)) {
    throw ConfigError("SentencePiece model file '" + model_file +
                      "' not found (expected a .model file, e.g. from `unitrain tokenizer train`)");
  }
  const auto& spm = SentencePieceLibrary::get();
  char error[1024] = {0};
  handle_ = spm.load(model_file.c_str(), error, sizeof(error));
  if (handle_ == nullptr) {
    throw ConfigError("SentencePiece model file '" + model_file + "' cannot be loaded: " + error);
  }
  auto lookup = [&](const std::string& piece, int fallback) -> int64_t {
    const int id = spm.piece_to_id(handle_, piece.data(), piece.size());
    return spm.is_unknown(handle_, id) ? fallback : id;
  };
  cls_id_ = lookup("[CLS]", spm.info(handle_, kBos));
  sep_id_ = lookup("[SEP]", spm.info(handle_, kEos));
  const int pad = spm.info(handle_, kPad);
  pad_id_ = lookup("[PAD]", pad >= 0 ? pad : 0);
  if (cls_id_ < 0 || sep_id_ < 0) {
    spm.free(handle_);
    throw ConfigError("SentencePiece model '" + model_file +
                      "' has neither [CLS]/[SEP] pieces nor <s>/</s> (train it with "
                      "`unitrain tokenizer train`, which adds them)");
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (handle_ != nullptr) SentencePieceLibrary::get().free(handle_);
}

std::vector<std::string> SentencePieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> pieces;
  auto emit = [](void* context, const char* piece, size_t size) {
    static_cast<std::vector<std::string>*>(context)->emplace_back(piece, size);
  };
  if (SentencePieceLibrary::get().encode(handle_, text.data(), text.size(), emit, &pieces) != 0) {
    throw Error("SentencePiece failed to encode a text of " + std::to_string(text.size()) +
                " bytes");
  }
  return pieces;
}

int64_t SentencePieceTokenizer::token_to_id(const std::string& token) const {
  return SentencePieceLibrary::get().piece_to_id(handle_, token.data(), token.size());
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return SentencePieceLibrary::get().info(handle_, kPieceCount);
}

}  // namespace unitrain::text

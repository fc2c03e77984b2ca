#include <filesystem>

#include <sentencepiece_processor.h>

#include "text/tokenizers.h"
#include "unitrain/errors.h"

namespace unitrain::text {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file, int64_t max_length)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  max_length_ = max_length;
  if (!std::filesystem::is_regular_file(model_file)) {
    throw ConfigError("SentencePiece model file '" + model_file +
                      "' not found (expected a .model file, e.g. from `unitrain tokenizer train`)");
  }
  const auto status = processor_->Load(model_file);
  if (!status.ok()) {
    throw ConfigError("SentencePiece model file '" + model_file +
                      "' cannot be loaded: " + status.ToString());
  }
  auto lookup = [&](const char* piece, int fallback) -> int64_t {
    const int id = processor_->PieceToId(piece);
    return processor_->IsUnknown(id) ? fallback : id;
  };
  const int bos = processor_->bos_id(), eos = processor_->eos_id();
  cls_id_ = lookup("[CLS]", bos);
  sep_id_ = lookup("[SEP]", eos);
  pad_id_ = lookup("[PAD]", processor_->pad_id() >= 0 ? processor_->pad_id() : 0);
  if (cls_id_ < 0 || sep_id_ < 0) {
    throw ConfigError("SentencePiece model '" + model_file +
                      "' has neither [CLS]/[SEP] pieces nor <s>/</s> (train it with "
                      "`unitrain tokenizer train`, which adds them)");
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<std::string> SentencePieceTokenizer::tokenize(const std::string& text) const {
  return processor_->EncodeAsPieces(text);
}

int64_t SentencePieceTokenizer::token_to_id(const std::string& token) const {
  return processor_->PieceToId(token);
}

int64_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }

}  // namespace unitrain::text

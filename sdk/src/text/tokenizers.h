// The concrete tokenizers behind make_tokenizer() (core-internal).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "unitrain/tokenizer.h"

namespace unitrain::text {

// BERT's tokenizer: basic tokenization (clean-up, CJK split, whitespace split,
// optional lower-casing with accent stripping, punctuation split), then WordPiece:
// greedy longest-match-first with "##" marking word continuations. A word longer than
// kMaxWordChars code points, or with a part no vocabulary entry matches, becomes [UNK].
// NOTE: special tokens written in the text ("[SEP]") are split like any other word
// (BERT's never_split list is not implemented); pair encoding adds them instead.
class WordPieceTokenizer : public Tokenizer {
 public:
  static constexpr size_t kMaxWordChars = 100;

  // Reads `vocab.txt` (one token a line, id = line index). Throws ConfigError when the
  // file is missing or lacks [PAD], [UNK], [CLS] or [SEP].
  WordPieceTokenizer(const std::string& vocab_file, bool lower_case, int64_t max_length);

  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t token_to_id(const std::string& token) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t cls_id() const override { return cls_id_; }
  int64_t sep_id() const override { return sep_id_; }
  int64_t pad_id() const override { return pad_id_; }

  // Basic tokenization only (no WordPiece), exposed for tests and tools.
  std::vector<std::string> basic_tokenize(const std::string& text) const;
  // WordPiece of one basic token.
  void wordpiece(const std::string& word, std::vector<std::string>& out) const;

 private:
  std::unordered_map<std::string, int64_t> vocab_;
  int64_t vocab_size_ = 0;
  bool lower_case_ = true;
  int64_t pad_id_ = 0, unk_id_ = 0, cls_id_ = 0, sep_id_ = 0;
};

// A SentencePiece model. [CLS]/[SEP]/[PAD] are looked up as pieces (the models
// `unitrain tokenizer train` writes have them); without them <s>, </s> and the
// model's pad id (or 0) stand in.
class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model_file, int64_t max_length);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t token_to_id(const std::string& token) const override;
  int64_t vocab_size() const override;
  int64_t cls_id() const override { return cls_id_; }
  int64_t sep_id() const override { return sep_id_; }
  int64_t pad_id() const override { return pad_id_; }

 private:
  void* handle_ = nullptr;  // owned; freed through libunitrain_sentencepiece
  int64_t pad_id_ = 0, cls_id_ = 0, sep_id_ = 0;
};

}  // namespace unitrain::text

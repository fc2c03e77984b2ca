// Text tokenizers shared by text datasets (which tokenize) and the text encoder (whose
// vocabulary size must match). WordPiece reads a BERT `vocab.txt`; SentencePiece reads
// a `.model` file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/options.h"

namespace unitrain {

struct TokenizerOptions {
  // "wordpiece" (BERT vocab.txt) or "sentencepiece" (.model). Default: "wordpiece".
  std::string type = "wordpiece";
  // Path of the vocabulary / model file. Required.
  std::string vocab;
  // Lower-case and strip accents before WordPiece (uncased BERT). Default: true.
  bool lower_case = true;
  // Longest encoded sequence, [CLS] and [SEP] included. Default: 128.
  int64_t max_length = 128;
};

// The "tokenizer" block's keys, declared once (a dataset's `add_group("tokenizer", ...)`).
// Parsing a block checks it with check_tokenizer_options.
const options::OptionSet<TokenizerOptions>& tokenizer_option_set();
// ConfigError "<where>/vocab: required ..." when no vocabulary is given (for a dataset
// whose experiment leaves its "tokenizer" block out).
void check_tokenizer_options(const TokenizerOptions& options, const std::string& where);
// A dataset's tokenizer: its "tokenizer" block (checked: ConfigError "<where>/tokenizer/
// vocab: required ..." when none is given) with the dataset's own "max_length".
TokenizerOptions dataset_tokenizer(TokenizerOptions block, int64_t max_length,
                                   const std::string& where);
// Reads TokenizerOptions from a JSON object; `where` prefixes error messages
// ("file.json:/tasks/vqa2/dataset/tokenizer").
TokenizerOptions tokenizer_options_from_json(const nlohmann::json& j, const std::string& where);

struct Encoding {
  std::vector<int64_t> input_ids;    // [CLS] a [SEP] (b [SEP])
  std::vector<int64_t> segment_ids;  // 0 for a (and its [CLS]/[SEP]), 1 for b
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Splits text into vocabulary pieces (no special tokens).
  virtual std::vector<std::string> tokenize(const std::string& text) const = 0;
  virtual int64_t token_to_id(const std::string& token) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t cls_id() const = 0;
  virtual int64_t sep_id() const = 0;
  virtual int64_t pad_id() const = 0;

  // `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, truncated to max_length by trimming
  // the longer of a and b first (as BERT does).
  Encoding encode(const std::string& a, const std::string* b = nullptr) const;
  int64_t max_length() const { return max_length_; }

 protected:
  int64_t max_length_ = 128;
};

// Builds the tokenizer the options describe (throws ConfigError on a missing file).
std::shared_ptr<const Tokenizer> make_tokenizer(const TokenizerOptions& options);

}  // namespace unitrain

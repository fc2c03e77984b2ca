#include "unitrain/tokenizer.h"

#include <algorithm>

#include "text/tokenizers.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/options.h"

namespace unitrain {

const options::OptionSet<TokenizerOptions>& tokenizer_option_set() {
  static const auto set =
      options::OptionSet<TokenizerOptions>()
          .add(UNITRAIN_FIELD(type),
               "\"wordpiece\" (a BERT vocab.txt) or \"sentencepiece\" (a .model file)",
               options::one_of({"wordpiece", "sentencepiece"}))
          .add(UNITRAIN_FIELD(vocab), "path of the vocabulary or model file (required)")
          .add(UNITRAIN_FIELD(lower_case),
               "lower-case and strip accents before WordPiece (uncased BERT)")
          .add(UNITRAIN_FIELD(max_length), "longest encoded sequence, [CLS] and [SEP] included",
               options::at_least(3))
          .validate([](const TokenizerOptions& o, const nlohmann::json&, const std::string& where) {
            check_tokenizer_options(o, where);
          });
  return set;
}

void check_tokenizer_options(const TokenizerOptions& o, const std::string& where) {
  if (o.vocab.empty()) {
    throw ConfigError(options::key_path(where, "vocab") +
                      ": required (path of a vocab.txt or .model file)");
  }
}

TokenizerOptions dataset_tokenizer(TokenizerOptions block, int64_t max_length,
                                   const std::string& where) {
  check_tokenizer_options(block, options::key_path(where, "tokenizer"));
  block.max_length = max_length;
  return block;
}

TokenizerOptions tokenizer_options_from_json(const nlohmann::json& j, const std::string& where) {
  return tokenizer_option_set().parse(j, where);
}

Encoding Tokenizer::encode(const std::string& a, const std::string* b) const {
  auto ids_of = [&](const std::string& text) {
    std::vector<int64_t> ids;
    for (const auto& token : tokenize(text)) ids.push_back(token_to_id(token));
    return ids;
  };
  std::vector<int64_t> ids_a = ids_of(a);
  std::vector<int64_t> ids_b = b ? ids_of(*b) : std::vector<int64_t>{};
  // BERT's pair truncation: drop the last token of the longer side (b on ties) until
  // everything fits with its special tokens.
  const int64_t specials = b ? 3 : 2;
  const int64_t budget = std::max<int64_t>(max_length_ - specials, 0);
  while (static_cast<int64_t>(ids_a.size() + ids_b.size()) > budget) {
    if (ids_a.size() > ids_b.size()) {
      ids_a.pop_back();
    } else {
      ids_b.pop_back();
    }
  }
  Encoding e;
  e.input_ids.reserve(ids_a.size() + ids_b.size() + specials);
  e.input_ids.push_back(cls_id());
  e.input_ids.insert(e.input_ids.end(), ids_a.begin(), ids_a.end());
  e.input_ids.push_back(sep_id());
  e.segment_ids.assign(e.input_ids.size(), 0);
  if (b) {
    e.input_ids.insert(e.input_ids.end(), ids_b.begin(), ids_b.end());
    e.input_ids.push_back(sep_id());
    e.segment_ids.resize(e.input_ids.size(), 1);
  }
  return e;
}

std::shared_ptr<const Tokenizer> make_tokenizer(const TokenizerOptions& options) {
  if (options.type == "wordpiece") {
    return std::make_shared<text::WordPieceTokenizer>(options.vocab, options.lower_case,
                                                      options.max_length);
  }
  if (options.type == "sentencepiece") {
    return std::make_shared<text::SentencePieceTokenizer>(options.vocab, options.max_length);
  }
  throw ConfigError("unknown tokenizer type \"" + options.type +
                    "\" (valid: \"wordpiece\", \"sentencepiece\")");
}

}  // namespace unitrain

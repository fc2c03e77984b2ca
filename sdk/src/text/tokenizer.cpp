#include "unitrain/tokenizer.h"

#include <algorithm>

#include "text/tokenizers.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"

namespace unitrain {

TokenizerOptions tokenizer_options_from_json(const nlohmann::json& j, const std::string& where) {
  static const std::vector<std::string> kKeys = {"type", "vocab", "lower_case", "max_length"};
  if (!j.is_object()) {
    throw ConfigError(where + ": tokenizer options must be an object with keys type, vocab, "
                      "lower_case, max_length; got " + std::string(j.type_name()));
  }
  for (const auto& item : j.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), item.key()) == kKeys.end()) {
      throw ConfigError(where + "/" + item.key() +
                        ": unknown tokenizer key (valid: type, vocab, lower_case, max_length)");
    }
  }
  TokenizerOptions o;
  auto get = [&](const char* key, auto& field, bool (nlohmann::json::*is_type)() const,
                 const char* expected) {
    if (!j.contains(key)) return;
    const auto& v = j.at(key);
    if (!(v.*is_type)()) {
      throw ConfigError(where + "/" + key + ": expected " + expected + ", got " + json_text(v));
    }
    field = v.get<std::decay_t<decltype(field)>>();
  };
  get("type", o.type, &nlohmann::json::is_string, "a string");
  get("vocab", o.vocab, &nlohmann::json::is_string, "a string");
  get("lower_case", o.lower_case, &nlohmann::json::is_boolean, "true or false");
  get("max_length", o.max_length, &nlohmann::json::is_number_integer, "an integer");
  if (o.type != "wordpiece" && o.type != "sentencepiece") {
    throw ConfigError(where + "/type: unknown tokenizer type \"" + o.type +
                      "\" (valid: \"wordpiece\", \"sentencepiece\")");
  }
  if (o.vocab.empty()) {
    throw ConfigError(where + "/vocab: required (path of a vocab.txt or .model file)");
  }
  if (o.max_length < 3) {
    throw ConfigError(where + "/max_length: must be at least 3 ([CLS] x [SEP]), got " +
                      std::to_string(o.max_length));
  }
  return o;
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

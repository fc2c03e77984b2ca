#include "unitrain/text/train_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <vector>

#include "text/sentencepiece_library.h"
#include "unitrain/errors.h"

namespace unitrain {

std::string train_sentencepiece(const SentencePieceTrainOptions& options) {
  if (options.inputs.empty()) throw ConfigError("tokenizer train: no --input file given");
  for (const auto& input : options.inputs) {
    if (!std::filesystem::is_regular_file(input)) {
      throw ConfigError("tokenizer train: input file '" + input + "' not found");
    }
  }
  if (options.out.empty()) throw ConfigError("tokenizer train: --out is required");
  if (options.vocab_size < 5) {
    throw ConfigError("tokenizer train: --vocab-size must be at least 5 (4 special pieces), got " +
                      std::to_string(options.vocab_size));
  }
  static const char* kTypes[] = {"unigram", "bpe", "char", "word"};
  if (std::find(std::begin(kTypes), std::end(kTypes), options.model_type) == std::end(kTypes)) {
    throw ConfigError("tokenizer train: unknown --model-type \"" + options.model_type +
                      "\" (valid: unigram, bpe, char, word)");
  }
  std::string prefix = options.out;
  const std::string suffix = ".model";
  if (prefix.size() > suffix.size() &&
      prefix.compare(prefix.size() - suffix.size(), suffix.size(), suffix) == 0) {
    prefix.resize(prefix.size() - suffix.size());
  }
  std::string inputs;
  for (const auto& input : options.inputs) inputs += (inputs.empty() ? "" : ",") + input;

  std::unordered_map<std::string, std::string> kwargs = {
      {"input", inputs},
      {"model_prefix", prefix},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"model_type", options.model_type},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"input_sentence_size", std::to_string(options.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"normalization_rule_name", options.lower_case ? "nmt_nfkc_cf" : "nmt_nfkc"},
      {"pad_id", "0"},
      {"unk_id", "1"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"pad_piece", "[PAD]"},
      {"unk_piece", "[UNK]"},
      {"control_symbols", "[CLS],[SEP]"},
      // A small corpus cannot always reach vocab_size; shrink instead of failing.
      {"hard_vocab_limit", "false"},
      {"minloglevel", "2"},
  };
  std::vector<const char*> keys, values;
  for (const auto& [key, value] : kwargs) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  char error[1024] = {0};
  if (text::SentencePieceLibrary::get().train(keys.data(), values.data(), keys.size(), error,
                                              sizeof(error)) != 0) {
    throw Error(std::string("tokenizer train: SentencePiece training failed: ") + error);
  }
  return prefix + suffix;
}

}  // namespace unitrain

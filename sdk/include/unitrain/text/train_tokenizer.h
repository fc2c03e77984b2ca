// Training a SentencePiece model from text files (`unitrain tokenizer train`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unitrain {

struct SentencePieceTrainOptions {
  // Text files, one sentence (or paragraph) a line. Required.
  std::vector<std::string> inputs;
  // Output model path; the ".model" suffix is added when missing and a ".vocab" file
  // is written next to it. Required.
  std::string out;
  // Number of pieces, special tokens included. Default: 8000.
  int64_t vocab_size = 8000;
  // "unigram", "bpe", "char" or "word". Default: "unigram".
  std::string model_type = "unigram";
  // Case-fold during normalization (NFKC + case folding). Default: false.
  bool lower_case = false;
  // Fraction of characters the model must cover; the rest map to [UNK]. Default: 1.0.
  double character_coverage = 1.0;
  // Sentences sampled for training; 0 = all. Default: 1000000.
  int64_t input_sentence_size = 1000000;
};

// Trains a model whose special pieces match the WordPiece convention: [PAD] = 0,
// [UNK] = 1, [CLS] = 2, [SEP] = 3 (no <s>/</s>). Returns the .model path written.
// Throws ConfigError for bad options or missing inputs, Error when training fails.
std::string train_sentencepiece(const SentencePieceTrainOptions& options);

}  // namespace unitrain

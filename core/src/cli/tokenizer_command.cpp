// `unitrain tokenizer train --input FILE... --vocab-size N --out MODEL`: trains a
// SentencePiece model whose special pieces ([PAD] [UNK] [CLS] [SEP]) the text datasets
// and encoder expect.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "unitrain/text/train_tokenizer.h"

namespace unitrain::cli {

void add_tokenizer_command(CLI::App& app, CliContext& /*context*/) {
  auto* tokenizer = app.add_subcommand("tokenizer", "Tokenizer tools");
  tokenizer->require_subcommand(1);

  auto options = std::make_shared<SentencePieceTrainOptions>();
  auto* train = tokenizer->add_subcommand("train", "Train a SentencePiece model on text files");
  train->add_option("--input", options->inputs, "Text file(s), one sentence a line")
      ->required()
      ->check(CLI::ExistingFile);
  train->add_option("--vocab-size", options->vocab_size, "Number of pieces, specials included")
      ->capture_default_str();
  train->add_option("--out", options->out, "Output model path (.model added when missing)")
      ->required();
  train->add_option("--model-type", options->model_type, "unigram, bpe, char or word")
      ->capture_default_str();
  train->add_flag("--lower-case", options->lower_case, "Case-fold text during normalization");
  train->add_option("--character-coverage", options->character_coverage,
                    "Fraction of characters covered")
      ->capture_default_str();
  train->callback([options] {
    const std::string model = train_sentencepiece(*options);
    std::cout << "wrote " << model << "\n";
  });
}

}  // namespace unitrain::cli

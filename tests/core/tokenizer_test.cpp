// WordPiece and SentencePiece tokenizers: known splits, normalization, pair encoding,
// truncation and error messages.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unitrain/errors.h"
#include "unitrain/sanitizer.h"
#include "unitrain/text/train_tokenizer.h"
#include "unitrain/tokenizer.h"

namespace fs = std::filesystem;
using unitrain::ConfigError;
using unitrain::TokenizerOptions;

namespace {

// One token a line; id = line index.
const std::vector<std::string> kVocab = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "the", "cat", "sat",
    ",", "!", "?", "hello", "world", "naive", "cafe", "runn", "##ing", "a", "##b",
    "##c", "is", "it", "##s", "dog"};

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("unitrain_tokenizer_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    vocab_ = (dir_ / "vocab.txt").string();
    std::ofstream out(vocab_);
    for (const auto& t : kVocab) out << t << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<const unitrain::Tokenizer> wordpiece(bool lower_case = true,
                                                       int64_t max_length = 128) {
    TokenizerOptions o;
    o.vocab = vocab_;
    o.lower_case = lower_case;
    o.max_length = max_length;
    return unitrain::make_tokenizer(o);
  }
  static int64_t id(const std::string& token) {
    return std::find(kVocab.begin(), kVocab.end(), token) - kVocab.begin();
  }

  fs::path dir_;
  std::string vocab_;
};

using Tokens = std::vector<std::string>;

TEST_F(TokenizerTest, WordPieceSplitsLongestMatchFirst) {
  auto t = wordpiece();
  EXPECT_EQ(t->tokenize("unaffable"), (Tokens{"un", "##aff", "##able"}));
  EXPECT_EQ(t->tokenize("running"), (Tokens{"runn", "##ing"}));
  EXPECT_EQ(t->tokenize("abc"), (Tokens{"a", "##b", "##c"}));
  EXPECT_EQ(t->tokenize("its"), (Tokens{"it", "##s"}));
}

TEST_F(TokenizerTest, UnmatchableWordBecomesOneUnk) {
  auto t = wordpiece();
  // "unaffx": "un ##aff" then "x" matches nothing: the whole word is [UNK].
  EXPECT_EQ(t->tokenize("unaffx the"), (Tokens{"[UNK]", "the"}));
  EXPECT_EQ(t->tokenize(std::string(101, 'a')), (Tokens{"[UNK]"}));
  EXPECT_EQ(t->token_to_id("[UNK]"), 1);
  EXPECT_EQ(t->token_to_id("zebra"), 1);
}

TEST_F(TokenizerTest, LowerCasesStripsAccentsAndSplitsPunctuation) {
  auto t = wordpiece();
  EXPECT_EQ(t->tokenize("Hello, World!"), (Tokens{"hello", ",", "world", "!"}));
  EXPECT_EQ(t->tokenize("  The\tCAT\n sat?"), (Tokens{"the", "cat", "sat", "?"}));
  // Precomposed and combining accents both go: "naïve" "Café" "cafe\u0301".
  EXPECT_EQ(t->tokenize("na\xC3\xAFve Caf\xC3\xA9 cafe\xCC\x81"),
            (Tokens{"naive", "cafe", "cafe"}));
}

TEST_F(TokenizerTest, CasedKeepsCaseAndAccents) {
  auto t = wordpiece(/*lower_case=*/false);
  EXPECT_EQ(t->tokenize("Hello hello"), (Tokens{"[UNK]", "hello"}));
  EXPECT_EQ(t->tokenize("caf\xC3\xA9"), (Tokens{"[UNK]"}));
}

TEST_F(TokenizerTest, SpecialTokensAreLookedUpByString) {
  auto t = wordpiece();
  EXPECT_EQ(t->pad_id(), 0);
  EXPECT_EQ(t->cls_id(), 2);
  EXPECT_EQ(t->sep_id(), 3);
  EXPECT_EQ(t->vocab_size(), static_cast<int64_t>(kVocab.size()));
}

TEST_F(TokenizerTest, VocabWithUtf8BomKeepsPadAsItsFirstToken) {
  {
    std::ofstream out(vocab_, std::ios::binary);
    out << "\xEF\xBB\xBF";
    for (const auto& t : kVocab) out << t << "\n";
  }
  auto t = wordpiece();
  EXPECT_EQ(t->pad_id(), 0);
  EXPECT_EQ(t->vocab_size(), static_cast<int64_t>(kVocab.size()));
  EXPECT_EQ(t->tokenize("the cat"), (Tokens{"the", "cat"}));
}

TEST_F(TokenizerTest, EncodesSingleAndPair) {
  auto t = wordpiece();
  auto single = t->encode("the cat");
  EXPECT_EQ(single.input_ids, (std::vector<int64_t>{2, id("the"), id("cat"), 3}));
  EXPECT_EQ(single.segment_ids, (std::vector<int64_t>{0, 0, 0, 0}));

  const std::string b = "a dog sat";
  auto pair = t->encode("the cat", &b);
  EXPECT_EQ(pair.input_ids, (std::vector<int64_t>{2, id("the"), id("cat"), 3, id("a"), id("dog"),
                                                  id("sat"), 3}));
  EXPECT_EQ(pair.segment_ids, (std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1}));
}

TEST_F(TokenizerTest, TruncatesLongerSideFirst) {
  auto t = wordpiece(true, /*max_length=*/7);
  // a has 4 tokens, b has 2; budget 7 - 3 = 4: drop a's last two.
  const std::string b = "dog sat";
  auto e = t->encode("the cat sat hello", &b);
  EXPECT_EQ(e.input_ids,
            (std::vector<int64_t>{2, id("the"), id("cat"), 3, id("dog"), id("sat"), 3}));
  EXPECT_EQ(e.segment_ids, (std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1}));
  // Ties drop from b.
  auto t6 = wordpiece(true, 6);
  const std::string b2 = "dog sat";
  auto e2 = t6->encode("the cat", &b2);
  EXPECT_EQ(e2.input_ids, (std::vector<int64_t>{2, id("the"), id("cat"), 3, id("dog"), 3}));
  // Single sentences keep their first max_length - 2 tokens.
  auto t4 = wordpiece(true, 4);
  EXPECT_EQ(t4->encode("the cat sat").input_ids,
            (std::vector<int64_t>{2, id("the"), id("cat"), 3}));
}

TEST_F(TokenizerTest, MissingVocabFileIsConfigErrorNamingTheFile) {
  TokenizerOptions o;
  o.vocab = (dir_ / "nope.txt").string();
  try {
    unitrain::make_tokenizer(o);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.txt"), std::string::npos) << e.what();
  }
}

TEST_F(TokenizerTest, VocabWithoutSpecialTokensIsConfigError) {
  const auto file = (dir_ / "bad.txt").string();
  std::ofstream(file) << "[PAD]\n[UNK]\n[CLS]\nthe\n";
  TokenizerOptions o;
  o.vocab = file;
  try {
    unitrain::make_tokenizer(o);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("[SEP]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.txt"), std::string::npos) << e.what();
  }
}

TEST_F(TokenizerTest, OptionsFromJson) {
  auto o = unitrain::tokenizer_options_from_json(
      {{"vocab", "v.txt"}, {"lower_case", false}, {"max_length", 25}}, "x.json:/tok");
  EXPECT_EQ(o.type, "wordpiece");
  EXPECT_EQ(o.vocab, "v.txt");
  EXPECT_FALSE(o.lower_case);
  EXPECT_EQ(o.max_length, 25);
  try {
    unitrain::tokenizer_options_from_json({{"vocab", "v"}, {"type", "bpe"}}, "x.json:/tok");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x.json:/tok/type"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sentencepiece"), std::string::npos) << e.what();
  }
  EXPECT_THROW(unitrain::tokenizer_options_from_json({{"vocab", "v"}, {"lowercase", true}}, "x"),
               ConfigError);
  EXPECT_THROW(unitrain::tokenizer_options_from_json(nlohmann::json::object(), "x"), ConfigError);
}

TEST_F(TokenizerTest, SentencePieceTrainAndEncodeRoundTrip) {
#if UNITRAIN_ADDRESS_SANITIZER
  GTEST_SKIP() << "SentencePiece needs RTLD_DEEPBIND, which the sanitizer runtimes refuse";
#endif
  const auto corpus = (dir_ / "corpus.txt").string();
  {
    std::ofstream out(corpus);
    const char* lines[] = {"the cat sat on the mat", "a dog sat on a log",
                           "the quick brown fox jumps over the lazy dog",
                           "what color is the cat", "is the dog on the mat"};
    for (int i = 0; i < 40; ++i) out << lines[i % 5] << "\n";
  }
  unitrain::SentencePieceTrainOptions train;
  train.inputs = {corpus};
  train.out = (dir_ / "spm").string();
  train.vocab_size = 40;
  const std::string model = unitrain::train_sentencepiece(train);
  EXPECT_EQ(model, train.out + ".model");
  ASSERT_TRUE(fs::exists(model));

  TokenizerOptions o;
  o.type = "sentencepiece";
  o.vocab = model;
  o.max_length = 16;
  auto t = unitrain::make_tokenizer(o);
  EXPECT_EQ(t->pad_id(), 0);
  EXPECT_EQ(t->cls_id(), 2);
  EXPECT_EQ(t->sep_id(), 3);
  EXPECT_LE(t->vocab_size(), 40);

  auto pieces = t->tokenize("the cat sat");
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, "\xE2\x96\x81the\xE2\x96\x81" "cat\xE2\x96\x81sat");  // "▁the▁cat▁sat"
  for (const auto& p : pieces) EXPECT_NE(t->token_to_id(p), 1) << p;  // no [UNK]

  const std::string b = "the dog";
  auto e = t->encode("the cat", &b);
  EXPECT_EQ(e.input_ids.front(), 2);
  EXPECT_EQ(e.input_ids.back(), 3);
  EXPECT_EQ(e.segment_ids.back(), 1);
}

TEST_F(TokenizerTest, SentencePieceMissingModelIsConfigError) {
  TokenizerOptions o;
  o.type = "sentencepiece";
  o.vocab = (dir_ / "missing.model").string();
  try {
    unitrain::make_tokenizer(o);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.model"), std::string::npos) << e.what();
  }
}

}  // namespace

// Command-line paths not covered by the feature suites: the help of every command and
// subcommand (found by walking the help itself, so a new command is covered), the toy
// suite's --reuse cache, and `tokenizer train`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "test_util.h"
#include "unitrain/sanitizer.h"
#include "unitrain/tokenizer.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The names listed under "Subcommands:" in a help text.
std::vector<std::string> subcommands_of(const std::string& help) {
  std::vector<std::string> names;
  std::istringstream in(help);
  bool listing = false;
  static const std::regex kEntry(R"(^  ([a-z][a-z0-9-]*)(\s|$).*)");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Subcommands:", 0) == 0) {
      listing = true;
      continue;
    }
    if (!listing) continue;
    std::smatch m;
    if (std::regex_match(line, m, kEntry)) {
      names.push_back(m[1]);
    } else if (line.empty() || line[0] != ' ') {
      listing = false;
    }
  }
  return names;
}

TEST(Cli, EveryCommandAndSubcommandHasHelp) {
  std::vector<std::string> pending = {""};
  std::set<std::string> seen;
  while (!pending.empty()) {
    const std::string command = pending.back();
    pending.pop_back();
    const auto help = test::run_unitrain(command + " --help");
    EXPECT_EQ(help.status, 0) << "'" << command << " --help': " << help.output;
    EXPECT_THAT(help.output, HasSubstr("Usage:")) << command;
    seen.insert(command);
    for (const auto& name : subcommands_of(help.output)) {
      pending.push_back(command.empty() ? name : command + " " + name);
    }
  }
  // The walk reached the nested commands (a help format change would stop it at the top).
  for (const std::string expected :
       {"train", "eval", "predict", "validate", "export", "make-toy-suite", "model summary",
        "data stats", "data check", "plugins show", "weights inspect", "weights map",
        "weights convert", "tokenizer train"}) {
    EXPECT_TRUE(seen.count(expected)) << "'" << expected << "' was not reached; seen: "
                                      << ::testing::PrintToString(seen);
  }
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

TEST(Cli, MakeToySuiteReusesOnlyASuiteOfTheSameOptions) {
  test::TempDir dir;
  const fs::path suite = dir / "toy";
  const std::string options = " --images 4 --text 12 --image-size 32 --seed 7";
  auto first = test::run_unitrain("make-toy-suite " + quoted(suite) + options + " --reuse");
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("wrote the toy suite to " + suite.string()));
  const fs::path sst2 = suite / "glue/SST-2/train.tsv";
  ASSERT_TRUE(fs::exists(sst2));
  const std::string original = test::read_file(sst2);

  // Same options: the folder is left as it is (a marker written into it survives).
  test::write_file(sst2, "marker");
  auto reused = test::run_unitrain("make-toy-suite " + quoted(suite) + options + " --reuse");
  ASSERT_EQ(reused.status, 0) << reused.output;
  EXPECT_THAT(reused.output, HasSubstr("reusing the toy suite in " + suite.string()));
  EXPECT_EQ(test::read_file(sst2), "marker");

  // Other options: written anew, and the seed shows in the bytes.
  auto other = test::run_unitrain("make-toy-suite " + quoted(suite) +
                                  " --images 4 --text 12 --image-size 32 --seed 8 --reuse");
  ASSERT_EQ(other.status, 0) << other.output;
  EXPECT_THAT(other.output, HasSubstr("wrote the toy suite"));
  EXPECT_NE(test::read_file(sst2), "marker");
  EXPECT_NE(test::read_file(sst2), original);

  // Without --reuse the suite is always written; the same seed gives the same bytes.
  auto again = test::run_unitrain("make-toy-suite " + quoted(suite) + options);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("wrote the toy suite"));
  EXPECT_EQ(test::read_file(sst2), original);
}

TEST(Cli, TokenizerTrainWritesAModelTheTextTasksCanUse) {
#if UNITRAIN_ADDRESS_SANITIZER
  GTEST_SKIP() << "SentencePiece needs RTLD_DEEPBIND, which the sanitizer runtimes refuse";
#endif
  test::TempDir dir;
  {
    std::ofstream out(dir / "corpus.txt");
    const char* lines[] = {"the red circle is left of the blue square",
                           "what color is the triangle", "a green square sits above a circle",
                           "is there a blue triangle", "how many circles are there"};
    for (int i = 0; i < 60; ++i) out << lines[i % 5] << "\n";
  }
  auto result = test::run_unitrain("tokenizer train --input " + quoted(dir / "corpus.txt") +
                                   " --vocab-size 48 --lower-case --out " + quoted(dir / "spm"));
  ASSERT_EQ(result.status, 0) << result.output;
  const fs::path model = dir / "spm.model";
  EXPECT_THAT(result.output, HasSubstr("wrote " + model.string()));
  ASSERT_TRUE(fs::exists(model));

  TokenizerOptions o;
  o.type = "sentencepiece";
  o.vocab = model.string();
  o.max_length = 16;
  auto tokenizer = make_tokenizer(o);
  EXPECT_EQ(tokenizer->pad_id(), 0);
  EXPECT_EQ(tokenizer->cls_id(), 2);
  EXPECT_EQ(tokenizer->sep_id(), 3);
  EXPECT_LE(tokenizer->vocab_size(), 48);
  // --lower-case: upper-case input encodes as its lower-case form, without [UNK].
  const Encoding upper = tokenizer->encode("What COLOR is the Triangle");
  const Encoding lower = tokenizer->encode("what color is the triangle");
  EXPECT_EQ(upper.input_ids, lower.input_ids);
  for (const auto id : lower.input_ids) EXPECT_NE(id, 1) << "no [UNK] for words of the corpus";

  auto missing = test::run_unitrain("tokenizer train --input " + quoted(dir / "nope.txt") +
                                    " --out " + quoted(dir / "x"));
  EXPECT_NE(missing.status, 0);
  EXPECT_THAT(missing.output, HasSubstr("nope.txt"));
  auto no_command = test::run_unitrain("tokenizer");
  EXPECT_NE(no_command.status, 0);
  EXPECT_THAT(no_command.output, HasSubstr("A subcommand is required"));
}

// Every built-in plugin's help is its folder's README.md (unitrain_add_plugin README).
TEST(Cli, PluginsShowPrintsTheBuiltInPluginsReadme) {
  const std::vector<std::pair<std::string, std::string>> plugins = {
      {"image", "encoders/image"},         {"text", "encoders/text"},
      {"unit_decoder", "decoders/unit_decoder"}, {"mlp_classifier", "heads/mlp_classifier"},
      {"detr", "heads/detr"},             {"coco_detection", "datasets/coco_detection"},
      {"vg_detection", "datasets/vg_detection"}, {"vqa2", "datasets/vqa2"},
      {"snli_ve", "datasets/snli_ve"},     {"glue", "datasets/glue"},
      {"ratios", "schedulers/task_schedulers"}, {"annealed", "schedulers/task_schedulers"}};
  for (const auto& [name, folder] : plugins) {
    const std::string readme = test::read_file(fs::path(UNITRAIN_SOURCE_DIR) / "plugins" / folder / "README.md");
    ASSERT_FALSE(readme.empty()) << folder;
    auto show = test::run_unitrain("plugins show " + name);
    ASSERT_EQ(show.status, 0) << show.output;
    // The whole README, the key table included.
    EXPECT_THAT(show.output, HasSubstr(readme.substr(0, readme.find_last_not_of('\n') + 1))) << name;
  }
}

// --options-markdown prints the key table a plugin's option declaration generates (with a
// row per key of a nested group), and refuses a plugin that declares no options table.
TEST(Cli, PluginsShowOptionsMarkdownPrintsTheDeclaredTable) {
  auto table = test::run_unitrain("plugins show detr --options-markdown");
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_EQ(table.output.rfind("| key | type | default | meaning |\n", 0), 0u) << table.output;
  EXPECT_THAT(table.output, HasSubstr("| `num_classes` | int | 91 |"));
  // The table alone, not the README.
  EXPECT_THAT(table.output, ::testing::Not(HasSubstr("# detr")));
  // A dataset: the name means the dataset, not its preparer of the same name.
  auto glue = test::run_unitrain("plugins show glue --options-markdown");
  ASSERT_EQ(glue.status, 0) << glue.output;
  EXPECT_THAT(glue.output, HasSubstr("| `tokenizer/vocab` | string | `\"\"` |"));
  EXPECT_THAT(glue.output, HasSubstr("| `max_length` | int | 128 |"));
  auto preparer = test::run_unitrain("plugins show glue --kind preparer");
  ASSERT_EQ(preparer.status, 0) << preparer.output;
  EXPECT_THAT(preparer.output, HasSubstr("preparer"));
  auto no_table = test::run_unitrain("plugins show ratios --options-markdown");
  EXPECT_NE(no_table.status, 0);
  EXPECT_THAT(no_table.output, HasSubstr("scheduler 'ratios'"));
  EXPECT_THAT(no_table.output, HasSubstr("does not declare its options"));
}

}  // namespace
}  // namespace unitrain

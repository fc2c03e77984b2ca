// Mistakes that used to surface late now stop a run when it is built: a missing
// evaluation split, a head whose label count is not its dataset's, a tokenizer whose ids
// the text encoder cannot embed. Evaluation needs neither the training files nor the
// init_from weights, and checkpoints carry the label names that predict prints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_util.h"
#include "unitrain/checkpoint.h"
#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/trainer.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using test::error_of;

Registry& registry() {
  static Registry* registry = [] {
    auto* r = new Registry();  // leaked: plugin libraries are never unloaded
    r->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

// A word-piece vocabulary of 20 entries (ids 0-19) and an SST-2 folder in GLUE's format.
class FailEarly : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_file(dir_ / "vocab.txt",
                     "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nthe\ndog\ncat\nis\ngood\nbad\n"
                     "very\nnot\nfilm\nplot\nfun\ndull\nsad\nhappy\n");
    std::string train = "sentence\tlabel\n";
    for (int i = 0; i < 8; ++i) train += i % 2 ? "a good film\t1\n" : "a very dull plot\t0\n";
    test::write_file(dir_ / "sst2/train.tsv", train);
    test::write_file(dir_ / "sst2/dev.tsv", "sentence\tlabel\nfun film\t1\nsad plot\t0\n");
  }

  json tokenizer() const { return {{"vocab", (dir_ / "vocab.txt").string()}}; }

  json experiment_json() const {
    return {
        {"name", "fail_early"},
        {"seed", 1},
        {"threads", 1},
        {"model",
         {{"encoders",
           {{"text",
             {{"type", "text"}, {"tokenizer", tokenizer()}, {"hidden_dim", 16}, {"num_layers", 1},
              {"num_heads", 2}, {"intermediate_dim", 32}, {"max_position", 16},
              {"output_dim", 16}}}}},
          {"decoder",
           {{"type", "unit_decoder"}, {"d_model", 16}, {"num_layers", 1}, {"num_heads", 2},
            {"dim_feedforward", 32}}},
          {"heads", {{"sst2", {{"type", "mlp_classifier"}, {"in_dim", 16}, {"num_labels", 2}}}}}}},
        {"tasks",
         {{"sst2",
           {{"dataset",
             {{"type", "glue"}, {"task", "sst2"}, {"root", (dir_ / "sst2").string()},
              {"tokenizer", tokenizer()}, {"max_length", 12}}},
            {"encoders", {"text"}}, {"num_queries", 1}, {"batch_size", 4}, {"val_split", "dev"}}}}},
        {"training", {{"max_steps", 2}, {"log_every", 1}}},
        {"data", {{"workers", 1}, {"prefetch", 1}}}};
  }

  Experiment experiment(const json& j) const {
    test::write_file(dir_ / "exp.json", j.dump(2));
    Experiment e = load_experiment(dir_ / "exp.json");
    validate_experiment(e, &registry());
    return e;
  }

  TrainerConfig config(const std::string& run = "run") const {
    TrainerConfig c;
    c.run_dir = dir_ / run;
    c.console = false;
    return c;
  }

  std::string exp_file() const { return (dir_ / "exp.json").string(); }

  test::TempDir dir_;
};

TEST_F(FailEarly, MissingValidationSplitStopsTheRunBeforeItsFirstStep) {
  fs::remove(dir_ / "sst2/dev.tsv");
  const std::string message =
      error_of<Error>([&] { Trainer(experiment(experiment_json()), registry(), config()); });
  EXPECT_THAT(message, HasSubstr(exp_file() + ":/tasks/sst2/dataset: dataset 'glue'"));
  EXPECT_THAT(message, HasSubstr("dev.tsv' does not exist"));
  EXPECT_FALSE(fs::exists(dir_ / "run/metrics.jsonl"));

  // The command says so with exit status 1, before training anything.
  auto train = test::run_unitrain("train '" + exp_file() + "' --out '" + (dir_ / "cli").string() + "'");
  EXPECT_EQ(train.status, 1) << train.output;
  EXPECT_THAT(train.output, HasSubstr("dev.tsv"));
  EXPECT_FALSE(fs::exists(dir_ / "cli/checkpoints"));
}

TEST_F(FailEarly, DataCheckOpensTheValidationSplitToo) {
  fs::remove(dir_ / "sst2/dev.tsv");
  experiment(experiment_json());
  auto check = test::run_unitrain("data stats '" + exp_file() + "'");
  EXPECT_EQ(check.status, 1) << check.output;
  EXPECT_THAT(check.output, HasSubstr("dev.tsv"));
}

TEST_F(FailEarly, HeadLabelCountMustBeTheDatasets) {
  for (int labels : {3, 1}) {
    json j = experiment_json();
    j["model"]["heads"]["sst2"]["num_labels"] = labels;
    const std::string message =
        error_of<ConfigError>([&] { Trainer(experiment(j), registry(), config()); });
    EXPECT_THAT(message, HasSubstr(exp_file() + ":/model/heads/sst2: "));
    EXPECT_THAT(message, HasSubstr("the head of task 'sst2' scores " + std::to_string(labels) +
                                   " labels, but the 'train' split of its dataset"));
    EXPECT_THAT(message, HasSubstr("has 2 (classification): set the head's label count to 2"));
  }
}

TEST_F(FailEarly, TokenizerIdsMustFitTheTextEncoder) {
  json j = experiment_json();
  j["model"]["encoders"]["text"].erase("tokenizer");
  j["model"]["encoders"]["text"]["vocab_size"] = 12;  // the vocabulary has 20 entries
  const std::string message =
      error_of<ConfigError>([&] { Trainer(experiment(j), registry(), config()); });
  EXPECT_THAT(message, HasSubstr(exp_file() + ":/tasks/sst2/dataset: the tokenizer of task 'sst2' "
                                              "makes token ids up to 19, but text encoder 'text'"));
  EXPECT_THAT(message, HasSubstr("/model/encoders/text) embeds only ids below 12"));
  EXPECT_THAT(message, HasSubstr("a vocab_size of at least 20"));

  // A larger embedding than the tokenizer needs is fine.
  j["model"]["encoders"]["text"]["vocab_size"] = 32;
  EXPECT_NO_THROW(Trainer(experiment(j), registry(), config()));
}

TEST_F(FailEarly, EvaluationNeedsNeitherTrainingFilesNorInitFrom) {
  Trainer(experiment(experiment_json()), registry(), config()).train();
  const json trained = json::parse(test::read_file(dir_ / "run/eval.json"));

  fs::remove(dir_ / "sst2/train.tsv");
  json j = experiment_json();
  j["model"]["encoders"]["text"]["init_from"] = (dir_ / "no-such-weights.pt").string();
  TrainerConfig only = config("eval");
  only.evaluate_only = true;
  Trainer evaluator(experiment(j), registry(), only);
  evaluator.load_weights(dir_ / "run");
  EXPECT_EQ(evaluator.evaluate(), trained);
  EXPECT_THAT(error_of<TrainingError>([&] { evaluator.train(); }), HasSubstr("evaluate only"));

  // `unitrain eval` is built that way.
  auto eval = test::run_unitrain("eval '" + exp_file() + "' --checkpoint '" +
                                 (dir_ / "run").string() + "'");
  ASSERT_EQ(eval.status, 0) << eval.output;
  EXPECT_EQ(json::parse(eval.output.substr(eval.output.find('{'))), trained);
}

TEST_F(FailEarly, CheckpointsCarryTheLabelNamesPredictPrints) {
  Trainer(experiment(experiment_json()), registry(), config()).train();
  auto archive = open_checkpoint(find_checkpoint(dir_ / "run"));
  const auto labels = read_label_spaces(archive, "last.pt");
  ASSERT_EQ(labels.count("sst2"), 1u);
  EXPECT_EQ(labels.at("sst2").names, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(labels.at("sst2").kind, "classification");

  // predict reads them from the checkpoint: the dataset's files may be gone.
  fs::remove_all(dir_ / "sst2");
  auto predict = test::run_unitrain("predict '" + exp_file() + "' --checkpoint '" +
                                    (dir_ / "run").string() + "' --task sst2 --text 'a good film'");
  ASSERT_EQ(predict.status, 0) << predict.output;
  const json out = json::parse(predict.output.substr(predict.output.find('{')));
  ASSERT_FALSE(out["predictions"].empty()) << out.dump();
  const std::string label = out["predictions"][0]["label"];
  EXPECT_TRUE(label == "0" || label == "1") << out.dump();

  // Text that is not UTF-8 is answered, and echoed with U+FFFD in place of the bad byte.
  auto latin1 = test::run_unitrain("predict '" + exp_file() + "' --checkpoint '" +
                                   (dir_ / "run").string() + "' --task sst2 --text \"$(printf 'caf\\351 film')\"");
  ASSERT_EQ(latin1.status, 0) << latin1.output;
  EXPECT_EQ(json::parse(latin1.output.substr(latin1.output.find('{')))["text"], "caf\xef\xbf\xbd film");
}

TEST(LabelSpaces, RoundTripThroughAnArchiveAndSurviveInvalidUtf8) {
  LabelSpace answers;
  answers.kind = "vqa";
  answers.names = {"yes", "no", "caf\xc3\xa9", "bad \xff byte"};
  torch::serialize::OutputArchive out;
  write_label_spaces(out, {{"vqa2", answers}});
  std::ostringstream bytes;
  out.save_to(bytes);

  std::istringstream in_bytes(bytes.str());
  torch::serialize::InputArchive in;
  in.load_from(in_bytes);
  const auto read = read_label_spaces(in, "mem.pt");
  ASSERT_EQ(read.count("vqa2"), 1u);
  EXPECT_EQ(read.at("vqa2").kind, "vqa");
  ASSERT_EQ(read.at("vqa2").names.size(), 4u);
  EXPECT_EQ(read.at("vqa2").names[2], "caf\xc3\xa9");
  EXPECT_EQ(read.at("vqa2").names[3], "bad \xef\xbf\xbd byte");  // U+FFFD

  // A checkpoint written before label spaces were stored reads as none.
  torch::serialize::OutputArchive old;
  old.write("step", torch::tensor(3));
  std::ostringstream old_bytes;
  old.save_to(old_bytes);
  std::istringstream old_in(old_bytes.str());
  torch::serialize::InputArchive old_archive;
  old_archive.load_from(old_in);
  EXPECT_TRUE(read_label_spaces(old_archive, "old.pt").empty());
}

}  // namespace
}  // namespace unitrain

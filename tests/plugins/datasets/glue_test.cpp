#include "glue_dataset.h"

#include <gtest/gtest.h>

#include "plugins/datasets/dataset_test_util.h"
#include "unitrain/metrics.h"

namespace unitrain::glue {
namespace {

using testing::data_error_of;
using testing::TempDir;
using testing::write_file;

GlueOptions options_for(const TempDir& dir, const std::string& task, const std::string& text,
                        data::OnBadRecord policy = data::OnBadRecord::kError) {
  GlueOptions o;
  o.task = task;
  o.file = dir / (task + "_train.tsv");
  write_file(o.file, text);
  o.tokenizer = testing::make_test_tokenizer(dir, 16);
  o.on_bad_record = policy;
  return o;
}

TEST(GlueDataset, QnliPairsAreTokenizedWithSegments) {
  TempDir dir;
  GlueDataset ds(options_for(dir, "qnli",
                             "index\tquestion\tsentence\tlabel\n"
                             "0\twhat is the color\ta dog\tentailment\n"
                             "1\thow many\tthere are\tnot_entailment\n"));
  ASSERT_EQ(ds.size(), 2);
  const Sample s = ds.get(0, 0);
  // [CLS] what is the color [SEP] a dog [SEP]
  EXPECT_EQ(s.input_ids, (std::vector<int64_t>{2, 5, 6, 7, 8, 3, 12, 10, 3}));
  EXPECT_EQ(s.segment_ids, (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(s.label, 0);
  EXPECT_EQ(ds.get(1, 0).label, 1);
  EXPECT_NE(s.source.find("qnli_train.tsv:2"), std::string::npos) << s.source;
  EXPECT_EQ(ds.labels().names, (std::vector<std::string>{"entailment", "not_entailment"}));
}

TEST(GlueDataset, QuotesAreOrdinaryCharacters) {
  // An unbalanced quote must not swallow the tab or the next line (QUOTE_NONE).
  TempDir dir2;
  GlueDataset sst(options_for(dir2, "sst2",
                              "sentence\tlabel\n"
                              "the \"dog\t1\n"
                              "\"cat\" is \"\t0\n"));
  ASSERT_EQ(sst.size(), 2);
  const Sample s = sst.get(0, 0);
  // [CLS] the " dog [SEP]
  EXPECT_EQ(s.input_ids, (std::vector<int64_t>{2, 7, 22, 10, 3}));
  EXPECT_EQ(s.label, 1);
  EXPECT_EQ(sst.get(1, 0).label, 0);
}

TEST(GlueDataset, MnliSkipsGoldLabelDashAndReadsDevFiles) {
  TempDir dir;
  const std::string header =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
      "label4\tlabel5\tgold_label\n";
  auto row = [](const std::string& gold) {
    return "0\t1\t1n\tfiction\t(a)\t(b)\t(A)\t(B)\ta man\ta horse\tneutral\tneutral\t"
           "neutral\tneutral\tneutral\t" + gold + "\n";
  };
  GlueDataset ds(options_for(dir, "mnli", header + row("neutral") + row("-") + row("contradiction")));
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.get(0, 0).label, 1);
  EXPECT_EQ(ds.get(1, 0).label, 2);
  EXPECT_EQ(ds.skipped(), (nlohmann::json{{"no_gold_label", 1}}));
}

TEST(GlueDataset, TestFilesWithoutLabelsGiveMinusOne) {
  TempDir dir;
  auto o = options_for(dir, "qqp", "id\tquestion1\tquestion2\n0\twhat is\thow many\n");
  o.split = "test";
  GlueDataset ds(o);
  ASSERT_EQ(ds.size(), 1);
  EXPECT_FALSE(ds.has_labels());
  EXPECT_EQ(ds.get(0, 0).label, -1);
}

TEST(GlueDataset, TrainingSplitWithoutTheLabelColumnIsAnErrorNamingFileAndLine) {
  TempDir dir;
  const std::string message = data_error_of([&] {
    GlueDataset ds(options_for(dir, "qqp", "id\tquestion1\tquestion2\n0\twhat is\thow many\n"));
  });
  EXPECT_NE(message.find("qqp_train.tsv:1: header has no label column 'is_duplicate' for task "
                         "qqp (columns: id, question1, question2)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("this is split 'train'"), std::string::npos) << message;
}

TEST(GlueDataset, TrailingBlankLinesAreNotRows) {
  TempDir dir;
  GlueDataset ds(options_for(dir, "sst2", "sentence\tlabel\na dog\t1\na cat\t0\n\n  \r\n\n"));
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.get(1, 0).label, 0);
  EXPECT_EQ(ds.skipped(), nlohmann::json::object());
  // A blank line between rows is still a bad row.
  TempDir dir2;
  const std::string message = data_error_of(
      [&] { GlueDataset ds(options_for(dir2, "sst2", "sentence\tlabel\na dog\t1\n\na cat\t0\n")); });
  EXPECT_NE(message.find("sst2_train.tsv:3"), std::string::npos) << message;
}

TEST(GlueDataset, QqpRowWithMissingFieldsIsAnErrorNamingTheLine) {
  TempDir dir;
  const std::string text =
      "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
      "0\t1\t2\twhat is\thow many\t0\n"
      "1\t3\t4\twhat is the\n"
      "2\t5\t6\ta dog\ta cat\t1\n";
  const std::string message =
      data_error_of([&] { GlueDataset ds(options_for(dir, "qqp", text)); });
  EXPECT_NE(message.find("qqp_train.tsv:3"), std::string::npos) << message;
  EXPECT_NE(message.find("4 tab-separated fields, the header has 6"), std::string::npos) << message;

  TempDir dir2;
  GlueDataset ds(options_for(dir2, "qqp", text, data::OnBadRecord::kSkip));
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.get(1, 0).label, 1);
  EXPECT_EQ(ds.skipped(), (nlohmann::json{{"missing_fields", 1}}));
}

TEST(GlueDataset, UnknownLabelNamesLineFieldAndValue) {
  TempDir dir;
  const std::string message = data_error_of([&] {
    GlueDataset ds(options_for(dir, "sst2", "sentence\tlabel\na dog\t1\na cat\tpositive\n"));
  });
  EXPECT_NE(message.find("sst2_train.tsv:3: field 'label': 'positive' is not a sst2 label (0, 1)"),
            std::string::npos)
      << message;
}

TEST(GlueDataset, HeaderWithoutTheTaskColumnsIsAnError) {
  TempDir dir;
  const std::string message =
      data_error_of([&] { GlueDataset ds(options_for(dir, "qnli", "a\tb\tlabel\nx\ty\tz\n")); });
  EXPECT_NE(message.find("header has no column 'question' for task qnli (columns: a, b, label)"),
            std::string::npos)
      << message;
}

TEST(GlueDataset, EvaluatorReportsF1ForQqp) {
  TempDir dir;
  GlueDataset ds(options_for(dir, "qqp",
                             "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                             "0\t1\t2\twhat is\thow many\t1\n"));
  auto evaluator = ds.evaluator();
  Batch batch = collate({ds.get(0, 0)}, "qqp");
  Predictions predictions;
  predictions.labels = torch::tensor({1}, torch::kInt64);
  evaluator->add(predictions, batch);
  const auto metrics = evaluator->compute();
  EXPECT_DOUBLE_EQ(metrics.at("accuracy").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(metrics.at("f1").get<double>(), 1.0);
}

TEST(GlueOptions, UnknownTaskListsKnownOnes) {
  nlohmann::json j = nlohmann::json::parse(R"({"split": "train", "task": "cola", "root": "",
      "files": {}, "tokenizer": {}, "max_length": 128, "on_bad_record": "error"})");
  try {
    glue_options_from_json(j, "x.json:/tasks/cola/dataset");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x.json:/tasks/cola/dataset/task: unknown GLUE task "
                                         "'cola' (known: mnli, mrpc, qnli, qqp, rte, sst2, wnli)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace unitrain::glue

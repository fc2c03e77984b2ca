// `unitrain data stats`: runs the built executable on a small GLUE experiment.
#include <array>
#include <cstdio>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "plugins/datasets/dataset_test_util.h"

namespace unitrain {
namespace {

// Runs a shell command; returns (exit status, stdout).
std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {-1, ""};
  std::array<char, 4096> buffer{};
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WEXITSTATUS(status), out};
}

TEST(DataStatsCommand, ReportsRecordsLabelsAndSkippedBySplit) {
  testing::TempDir dir;
  testing::write_vocab(dir);
  testing::write_file(dir / "sst2/train.tsv", "sentence\tlabel\na dog\t1\nthe cat\t0\nbroken\n");
  testing::write_file(dir / "sst2/dev.tsv", "sentence\tlabel\na dog\t1\n");
  const nlohmann::json experiment = {
      {"name", "stats"},
      {"model", {{"encoders", {{"text", {{"type", "text"}}}}},
                 {"decoder", {{"type", "unit_decoder"}}},
                 {"heads", {{"sst2", {{"type", "mlp_classifier"}}}}}}},
      {"tasks", {{"sst2", {{"dataset", {{"type", "glue"}, {"task", "sst2"},
                                        {"root", (dir / "sst2").string()},
                                        {"on_bad_record", "skip"},
                                        {"tokenizer", {{"vocab", (dir / "vocab.txt").string()}}}}},
                           {"encoders", {"text"}},
                           {"val_split", "dev"}}}}}};
  testing::write_file(dir / "exp.json", experiment.dump(2));
  const auto [status, out] = run(std::string(UNITRAIN_TEST_BINARY) + " --plugin-dir " +
                                 UNITRAIN_TEST_PLUGIN_DIR + " data stats --json " +
                                 (dir / "exp.json").string());
  ASSERT_EQ(status, 0) << out;
  const auto report = nlohmann::json::parse(out);
  EXPECT_EQ(report["sst2"]["train"]["records"], 2);
  EXPECT_EQ(report["sst2"]["train"]["num_labels"], 2);
  EXPECT_EQ(report["sst2"]["train"]["skipped"], (nlohmann::json{{"missing_fields", 1}}));
  EXPECT_EQ(report["sst2"]["dev"]["records"], 1);

  // A split that cannot be read is reported with its message and exit status 1.
  std::filesystem::remove(dir / "sst2/dev.tsv");
  const auto [status2, out2] = run(std::string(UNITRAIN_TEST_BINARY) + " data stats " +
                                   (dir / "exp.json").string());
  EXPECT_EQ(status2, 1);
  EXPECT_NE(out2.find("dev.tsv' does not exist"), std::string::npos) << out2;
}

// `validate --data` builds every split's dataset: a value the schema cannot judge (a
// GLUE task name, a missing file) fails it with the block's pointer; plain `validate`
// reads no data file.
TEST(ValidateData, BuildsEveryTasksDatasets) {
  testing::TempDir dir;
  testing::write_vocab(dir);
  testing::write_file(dir / "sst2/train.tsv", "sentence\tlabel\na dog\t1\nthe cat\t0\n");
  nlohmann::json experiment = {
      {"name", "validate_data"},
      {"model", {{"encoders", {{"text", {{"type", "text"}}}}},
                 {"decoder", {{"type", "unit_decoder"}}},
                 {"heads", {{"sst2", {{"type", "mlp_classifier"}}}}}}},
      {"tasks", {{"sst2", {{"dataset", {{"type", "glue"}, {"task", "sst3"},
                                        {"root", (dir / "sst2").string()},
                                        {"tokenizer", {{"vocab", (dir / "vocab.txt").string()}}}}},
                           {"encoders", {"text"}},
                           {"val_split", "dev"}}}}}};
  testing::write_file(dir / "exp.json", experiment.dump(2));
  const std::string validate = std::string(UNITRAIN_TEST_BINARY) + " validate " + (dir / "exp.json").string();
  const auto [plain, plain_out] = run(validate + " 2>&1");
  EXPECT_EQ(plain, 0) << plain_out;
  const auto [bad_task, bad_task_out] = run(validate + " --data 2>&1");
  EXPECT_EQ(bad_task, 1) << bad_task_out;
  EXPECT_NE(bad_task_out.find((dir / "exp.json").string() + ":/tasks/sst2/dataset"), std::string::npos)
      << bad_task_out;
  EXPECT_NE(bad_task_out.find("sst3"), std::string::npos) << bad_task_out;

  // The task name fixed, the missing dev split is what --data finds.
  experiment["tasks"]["sst2"]["dataset"]["task"] = "sst2";
  testing::write_file(dir / "exp.json", experiment.dump(2));
  const auto [no_dev, no_dev_out] = run(validate + " --data 2>&1");
  EXPECT_EQ(no_dev, 1);
  EXPECT_NE(no_dev_out.find("dev.tsv' does not exist"), std::string::npos) << no_dev_out;
  testing::write_file(dir / "sst2/dev.tsv", "sentence\tlabel\na dog\t1\n");
  const auto [ok, ok_out] = run(validate + " --data 2>&1");
  EXPECT_EQ(ok, 0) << ok_out;
}

}  // namespace
}  // namespace unitrain

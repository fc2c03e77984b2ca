// Images that break after a split was opened (a truncated or corrupt JPEG found only when
// training reads it): under the default on_bad_record "error" the run stops naming the
// file; under "skip" it goes on without the record and says so; `data check --decode`
// finds such files before a run. Real plugins on a small toy suite, through the CLI.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "test_util.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class BadImages : public ::testing::Test {
 protected:
  void SetUp() override {
    toy::ToySuiteOptions options;
    options.seed = 5;
    options.images = 10;  // 8 train, 2 val
    options.text_examples = 20;
    options.image_size = 48;
    toy::make_toy_suite(dir_ / "toy", options);
    // The first record of each split: its image cut short, or not an image at all.
    truncated_ = first_image("train2017");
    const std::string bytes = test::read_file(truncated_);
    test::write_file(truncated_, bytes.substr(0, bytes.size() / 2));
    corrupt_ = first_image("val2017");
    test::write_file(corrupt_, "this is not a JPEG");

    const json image = {{"min_size", 48}, {"max_size", 64}};
    const json e = {
        {"name", "bad_images"},
        {"seed", 1},
        {"threads", 1},
        {"model",
         {{"encoders",
           {{"image",
             {{"type", "image"}, {"depth", 18}, {"width", 8}, {"layers", {1, 1, 1, 1}},
              {"return_layer", "layer3"}, {"hidden_dim", 16}, {"num_layers", 1}, {"num_heads", 2},
              {"dim_feedforward", 32}, {"output_dim", 16}}}}},
          {"decoder",
           {{"type", "unit_decoder"}, {"d_model", 16}, {"num_layers", 1}, {"num_heads", 2},
            {"dim_feedforward", 32}}},
          {"heads", {{"coco", {{"type", "detr"}, {"in_dim", 16}, {"num_classes", 9}}}}}}},
        {"tasks",
         {{"coco",
           {{"dataset",
             {{"type", "coco_detection"}, {"root", (dir_ / "toy/coco").string()}, {"image", image}}},
            {"encoders", {"image"}}, {"num_queries", 4}, {"batch_size", 2}}}}},
        {"training", {{"max_steps", 6}, {"log_every", 2}}},  // one and a half epochs
        {"data", {{"workers", 1}, {"prefetch", 2}}}};
    test::write_file(exp_file(), e.dump(2));
  }

  // The first image of the split, in the order the annotations list it (its record 0).
  fs::path first_image(const std::string& split) const {
    const json instances = json::parse(
        test::read_file(dir_ / ("toy/coco/annotations/instances_" + split + ".json")));
    return dir_ / "toy/coco" / split / instances["images"][0]["file_name"].get<std::string>();
  }

  std::string exp_file() const { return (dir_ / "exp.json").string(); }

  test::TempDir dir_;
  fs::path truncated_, corrupt_;
};

TEST_F(BadImages, TrainingStopsNamingTheFileUnderTheErrorPolicy) {
  const auto run = dir_ / "run";
  auto train = test::run_unitrain("train '" + exp_file() + "' --out '" + run.string() + "'");
  EXPECT_EQ(train.status, 1) << train.output;
  EXPECT_THAT(train.output, HasSubstr("task 'coco', epoch 0, record 0: "));
  EXPECT_THAT(train.output, HasSubstr("image file '" + truncated_.string() +
                                      "' is a truncated JPEG"));
  EXPECT_THAT(train.output, HasSubstr("set \"on_bad_record\": \"skip\""));
}

TEST_F(BadImages, SkipPolicyTrainsWithoutTheRecordAndSaysSo) {
  const auto run = dir_ / "run";
  auto train = test::run_unitrain("train '" + exp_file() + "' --out '" + run.string() +
                                  "' --set tasks.coco.dataset.on_bad_record=skip");
  ASSERT_EQ(train.status, 0) << train.output;
  // Once each, although the training record is drawn again in the second epoch.
  EXPECT_THAT(train.output, HasSubstr("warning: task 'coco', split 'train': record 0 left out "
                                      "(truncated_image): "));
  EXPECT_THAT(train.output, HasSubstr("; the next readable record takes its place"));
  EXPECT_THAT(train.output, HasSubstr("warning: task 'coco', split 'val': record 0 left out "
                                      "(corrupt_image): "));
  EXPECT_THAT(train.output, HasSubstr("; not evaluated"));
  const std::string once = "split 'train': record 0 left out";
  EXPECT_EQ(train.output.find(once), train.output.rfind(once)) << train.output;

  // metrics.jsonl keeps what was left out, with the dataset's message.
  std::istringstream lines(test::read_file(run / "metrics.jsonl"));
  std::vector<json> skipped;
  int64_t steps = 0;
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line);
    if (j.contains("skipped")) skipped.push_back(j["skipped"]);
    if (j.contains("loss")) steps = j["step"];
  }
  EXPECT_EQ(steps, 6);
  ASSERT_GE(skipped.size(), 2u);
  EXPECT_EQ(skipped[0]["split"], "train");
  EXPECT_EQ(skipped[0]["reason"], "truncated_image");
  EXPECT_THAT(skipped[0]["message"].get<std::string>(), HasSubstr(truncated_.string()));
  EXPECT_TRUE(fs::exists(run / "eval.json"));
}

TEST_F(BadImages, DataCheckDecodeListsTheRecordsBeforeARun) {
  // Opening alone finds nothing wrong: the files exist.
  auto check = test::run_unitrain("data check '" + exp_file() + "'");
  EXPECT_EQ(check.status, 0) << check.output;

  check = test::run_unitrain("data check '" + exp_file() + "' --decode");
  EXPECT_EQ(check.status, 1) << check.output;
  EXPECT_THAT(check.output, HasSubstr("coco train record 0: "));
  EXPECT_THAT(check.output, HasSubstr(truncated_.string() + "' is a truncated JPEG"));
  EXPECT_THAT(check.output, HasSubstr("coco val record 0: "));
  EXPECT_THAT(check.output, HasSubstr("cannot decode image file '" + corrupt_.string()));
  EXPECT_THAT(check.output, HasSubstr("error: 2 record(s) cannot be read and would stop a run"));

  // Under "skip" they are counted as left out, and the check passes.
  check = test::run_unitrain("data check '" + exp_file() +
                             "' --decode --json --set tasks.coco.dataset.on_bad_record=skip");
  ASSERT_EQ(check.status, 0) << check.output;
  const json report = json::parse(check.output.substr(check.output.find('{')));
  EXPECT_EQ(report["coco"]["train"]["records"], 8);
  EXPECT_EQ(report["coco"]["train"]["decoded"], 7);
  EXPECT_EQ(report["coco"]["train"]["left_out"], (json{{"truncated_image", 1}}));
  EXPECT_EQ(report["coco"]["val"]["left_out"], (json{{"corrupt_image", 1}}));
  EXPECT_TRUE(report["coco"]["val"]["failed"].empty());
}

}  // namespace
}  // namespace unitrain

// Every experiment shipped in experiments/ validates, and the full UniT configuration
// builds with MMF's sizes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_util.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;

std::string experiment(const std::string& name) {
  return std::string(UNITRAIN_SOURCE_DIR) + "/experiments/" + name;
}

TEST(ShippedExperiments, AllValidate) {
  std::vector<std::string> files = {"unit_toy8.json", "unit_toy8_grid.json",
                                    "unit_8task.json"};
  for (const auto& item : fs::directory_iterator(experiment("toy/single"))) {
    files.push_back("toy/single/" + item.path().filename().string());
  }
  ASSERT_EQ(files.size(), 11u);
  for (const auto& file : files) {
    auto result = test::run_unitrain("validate " + experiment(file));
    EXPECT_EQ(result.status, 0) << file << ": " << result.output;
  }
  auto smoke = test::run_unitrain("--plugin-dir " + test::fixture("good") + " validate " +
                                  experiment("smoke.json"));
  EXPECT_EQ(smoke.status, 0) << smoke.output;
}

// Validation checks the JSON; building the model also checks the plugins' options
// against each other (widths, heads, objects_from).
TEST(ShippedExperiments, AllBuildTheirModels) {
  std::vector<std::string> files = {"unit_toy8.json", "unit_toy8_dp2.json", "unit_toy8_grid.json"};
  for (const auto& item : fs::directory_iterator(experiment("toy/single"))) {
    files.push_back("toy/single/" + item.path().filename().string());
  }
  // The toy experiments read their tokenizer's vocabulary from a toy suite: a small one.
  test::TempDir toy;
  auto made = test::run_unitrain("make-toy-suite '" + toy.path().string() +
                                 "' --images 10 --text 20 --image-size 32");
  ASSERT_EQ(made.status, 0) << made.output;
  for (const auto& file : files) {
    auto result = test::run_command("UNITRAIN_TOY_SUITE='" + toy.path().string() + "' '" +
                                    UNITRAIN_TEST_BINARY + "' model summary --json " +
                                    experiment(file));
    ASSERT_EQ(result.status, 0) << file << ": " << result.output;
    auto summary = nlohmann::json::parse(result.output);
    int64_t sum = 0;
    for (const auto& [name, count] : summary["components"].items()) sum += count.get<int64_t>();
    for (const auto& [name, count] : summary["other"].items()) sum += count.get<int64_t>();
    EXPECT_EQ(sum, summary["total"].get<int64_t>()) << file;
    EXPECT_GT(sum, 0) << file;
  }
  auto smoke = test::run_unitrain("--plugin-dir " + test::fixture("good") + " model summary " +
                                  experiment("smoke.json"));
  EXPECT_EQ(smoke.status, 0) << smoke.output;
}

TEST(ShippedExperiments, Unit8TaskHasMmfSizes) {
  auto result = test::run_unitrain("model summary --json " + experiment("unit_8task.json"));
  ASSERT_EQ(result.status, 0) << result.output;
  auto summary = nlohmann::json::parse(result.output);
  // ResNet-50 backbone (23,454,912, as torchvision without fc) + projection, 6-layer
  // encoder and task token; BERT-base without pooler + projections; 6-layer d=768 decoder.
  EXPECT_EQ(summary["components"]["encoders/image"], 32330176);
  EXPECT_EQ(summary["components"]["encoders/text"], 110269440);
  EXPECT_EQ(summary["components"]["decoder"], 47537664);
  EXPECT_EQ(summary["components"].size(), 11u);
  EXPECT_GT(summary["total"].get<int64_t>(), 200000000);
}

// The step-time bench's full-size variant (bench/step_bench_unit_8task.sh) is unit_8task's
// model exactly, on the toy suite's files and without its pretrained weights.
TEST(ShippedExperiments, Unit8TaskToyBuildsUnit8TasksModel) {
  test::TempDir toy;
  auto made = test::run_unitrain("make-toy-suite '" + toy.path().string() +
                                 "' --images 10 --text 20 --image-size 32");
  ASSERT_EQ(made.status, 0) << made.output;
  const std::string env = "UNITRAIN_TOY_SUITE='" + toy.path().string() + "' UNITRAIN_WEIGHTS=/nonexistent ";
  auto full = test::run_unitrain("model summary --json " + experiment("unit_8task.json"));
  ASSERT_EQ(full.status, 0) << full.output;
  auto variant = test::run_command(env + "'" + UNITRAIN_TEST_BINARY + "' model summary --json " +
                                   experiment("bench/unit_8task_toy.json"));
  ASSERT_EQ(variant.status, 0) << variant.output;
  EXPECT_EQ(nlohmann::json::parse(variant.output)["components"],
            nlohmann::json::parse(full.output)["components"]);
  // Its datasets read the toy suite (the real formats): every split of every task opens.
  auto data = test::run_command(env + "'" + UNITRAIN_TEST_BINARY + "' validate --data " +
                                experiment("bench/unit_8task_toy.json"));
  EXPECT_EQ(data.status, 0) << data.output;
}

}  // namespace
}  // namespace unitrain

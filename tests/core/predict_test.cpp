// `unitrain predict` end to end: a tiny UniT model (real plugins) trained for a few
// steps on the toy suite's SST-2, VQAv2 and COCO, then asked about raw text and images.
// Checks the output format, label names, box units and the drawn image; not accuracy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "test_util.h"
#include "unitrain/config.h"
#include "unitrain/dataset.h"
#include "unitrain/registry.h"
#include "unitrain/toy/toy_suite.h"
#include "unitrain/trainer.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

class Predict : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const fs::path toy = *dir_ / "toy";
    toy::ToySuiteOptions options;
    options.seed = 3;
    options.images = 20;
    options.text_examples = 60;
    options.image_size = 64;
    toy::make_toy_suite(toy, options);
    registry_ = new Registry();  // leaked: plugin libraries are never unloaded
    registry_->load_directory(UNITRAIN_TEST_PLUGIN_DIR);

    const json tokenizer = {{"vocab", (toy / "vocab.txt").string()}};
    const json image = {{"min_size", 64}, {"max_size", 96}};
    json vqa2 = {{"type", "vqa2"}, {"root", (toy / "vqa2").string()}, {"tokenizer", tokenizer},
                 {"answer_min_count", 1}, {"image", image}};
    const auto answers = vqa2_answers(vqa2);
    num_answers_ = static_cast<int64_t>(answers.size());
    json e = {
        {"name", "predict_test"},
        {"seed", 2},
        {"model",
         {{"encoders",
           {{"image",
             {{"type", "image"}, {"depth", 18}, {"width", 8}, {"layers", {1, 1, 1, 1}},
              {"return_layer", "layer3"}, {"hidden_dim", 16}, {"num_layers", 1}, {"num_heads", 2},
              {"dim_feedforward", 32}, {"output_dim", 32}}},
            {"text",
             {{"type", "text"}, {"tokenizer", tokenizer}, {"hidden_dim", 32}, {"num_layers", 1},
              {"num_heads", 4}, {"intermediate_dim", 64}, {"max_position", 32}, {"output_dim", 32}}}}},
          {"decoder",
           {{"type", "unit_decoder"}, {"d_model", 32}, {"num_layers", 1}, {"num_heads", 4},
            {"dim_feedforward", 64}}},
          {"heads",
           {{"sst2", {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", 2}}},
            {"vqa2",
             {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", num_answers_},
              {"loss", "soft_bce"}}},
            {"coco", {{"type", "detr"}, {"in_dim", 32}, {"num_classes", 9}}}}}}},
        {"tasks",
         {{"sst2",
           {{"dataset",
             {{"type", "glue"}, {"task", "sst2"}, {"root", (toy / "glue/SST-2").string()},
              {"tokenizer", tokenizer}, {"max_length", 24}}},
            {"encoders", {"text"}}, {"num_queries", 1}, {"batch_size", 4}, {"val_split", "dev"}}},
          {"vqa2",
           {{"dataset", vqa2}, {"encoders", {"image", "text"}}, {"num_queries", 2}, {"batch_size", 2}}},
          {"coco",
           {{"dataset", {{"type", "coco_detection"}, {"root", (toy / "coco").string()}, {"image", image}}},
            {"encoders", {"image"}}, {"num_queries", 6}, {"batch_size", 2}}}}},
        {"training", {{"max_steps", 3}, {"eval_max_batches", 1}}},
        {"data", {{"workers", 1}, {"prefetch", 1}}}};
    test::write_file(*dir_ / "exp.json", e.dump(2));
    Experiment experiment = load_experiment(*dir_ / "exp.json");
    validate_experiment(experiment, registry_);
    TrainerConfig config;
    config.run_dir = *dir_ / "run";
    config.console = false;
    Trainer(experiment, *registry_, config).train();
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::vector<std::string> vqa2_answers(json options) {
    const std::string type = options["type"];
    options.erase("type");
    options["split"] = "val";
    return registry_->create_as<Dataset>("dataset", type, options, "predict_test")->labels().names;
  }

  // The first image (name order) of a toy folder.
  static std::string first_image(const std::string& folder) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(*dir_ / "toy" / folder)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files.front().string();
  }

  static test::CommandResult predict(const std::string& args) {
    return test::run_unitrain("predict '" + (*dir_ / "exp.json").string() + "' --checkpoint '" +
                              (*dir_ / "run").string() + "' " + args);
  }

  static json output_json(const test::CommandResult& result) {
    const auto start = result.output.find('{');
    if (start == std::string::npos) {
      ADD_FAILURE() << "no JSON in: " << result.output;
      return json::object();
    }
    return json::parse(result.output.substr(start));
  }

  static void expect_ranked(const json& predictions, size_t k) {
    ASSERT_EQ(predictions.size(), k) << predictions.dump();
    for (size_t i = 0; i < k; ++i) {
      const double score = predictions[i]["score"].get<double>();
      EXPECT_GE(score, 0.0);
      EXPECT_LE(score, 1.0);
      if (i > 0) EXPECT_LE(score, predictions[i - 1]["score"].get<double>());
      EXPECT_TRUE(predictions[i]["label"].is_string());
      EXPECT_TRUE(predictions[i]["id"].is_number_integer());
    }
  }

  static test::TempDir* dir_;
  static Registry* registry_;
  static int64_t num_answers_;
};

test::TempDir* Predict::dir_ = nullptr;
Registry* Predict::registry_ = nullptr;
int64_t Predict::num_answers_ = 0;

TEST_F(Predict, TextClassificationTopK) {
  auto result = predict("--task sst2 --text 'a truly wonderful film' --top-k 2");
  ASSERT_EQ(result.status, 0) << result.output;
  const json out = output_json(result);
  EXPECT_EQ(out["task"], "sst2");
  EXPECT_EQ(out["kind"], "classification");
  EXPECT_EQ(out["text"], "a truly wonderful film");
  expect_ranked(out["predictions"], 2);
  // Softmax over the two SST-2 labels, named as the dataset names them.
  EXPECT_NEAR(out["predictions"][0]["score"].get<double>() + out["predictions"][1]["score"].get<double>(),
              1.0, 1e-5);
  std::set<std::string> labels = {out["predictions"][0]["label"], out["predictions"][1]["label"]};
  EXPECT_EQ(labels, (std::set<std::string>{"0", "1"}));
}

TEST_F(Predict, VqaNamesAnswers) {
  const std::string image = first_image("vqa2/val2014");
  auto result = predict("--task vqa2 --image '" + image + "' --text 'what color is the circle?' --top-k 3");
  ASSERT_EQ(result.status, 0) << result.output;
  const json out = output_json(result);
  EXPECT_EQ(out["kind"], "vqa");
  EXPECT_EQ(out["image"]["path"], image);
  expect_ranked(out["predictions"], std::min<size_t>(3, num_answers_));
  const auto answers = vqa2_answers({{"type", "vqa2"},
                                     {"root", (*dir_ / "toy/vqa2").string()},
                                     {"tokenizer", {{"vocab", (*dir_ / "toy/vocab.txt").string()}}},
                                     {"answer_min_count", 1}});
  for (const auto& p : out["predictions"]) {
    EXPECT_EQ(p["label"].get<std::string>(), answers.at(p["id"].get<size_t>()));
  }
}

TEST_F(Predict, DetectionBoxesInImagePixelsAndDrawing) {
  const std::string image = first_image("coco/val2017");
  const cv::Mat original = cv::imread(image);
  ASSERT_FALSE(original.empty());
  const fs::path drawn = *dir_ / "drawn.png";
  auto result = predict("--task coco --image '" + image + "' --threshold 0 --top-k 4 --draw '" +
                        drawn.string() + "'");
  ASSERT_EQ(result.status, 0) << result.output;
  const json out = output_json(result);
  EXPECT_EQ(out["kind"], "detection");
  EXPECT_EQ(out["image"]["width"], original.cols);
  EXPECT_EQ(out["image"]["height"], original.rows);
  const json& detections = out["detections"];
  ASSERT_EQ(detections.size(), 4u) << out.dump();  // 6 queries, threshold 0, capped by --top-k
  double largest = 0;
  for (const auto& d : detections) {
    ASSERT_EQ(d["box"].size(), 4u);
    EXPECT_LE(d["box"][0].get<double>(), d["box"][2].get<double>());
    EXPECT_LE(d["box"][1].get<double>(), d["box"][3].get<double>());
    for (const auto& v : d["box"]) largest = std::max(largest, v.get<double>());
    // Class names from the COCO file: "red circle" ... "blue triangle".
    EXPECT_THAT(d["label"].get<std::string>(), ::testing::MatchesRegex("(red|green|blue) (circle|square|triangle)"));
  }
  EXPECT_GT(largest, 2.0) << "boxes are in pixels, not normalized";
  const cv::Mat picture = cv::imread(drawn.string());
  ASSERT_FALSE(picture.empty());
  EXPECT_EQ(picture.cols, original.cols);
  EXPECT_EQ(picture.rows, original.rows);
}

TEST_F(Predict, ClearErrors) {
  auto no_task = predict("--task nope --text hi");
  EXPECT_EQ(no_task.status, 1);
  EXPECT_THAT(no_task.output, HasSubstr("error: --task 'nope': not a task of"));
  EXPECT_THAT(no_task.output, HasSubstr("tasks: coco, sst2, vqa2"));

  auto no_text = predict("--task sst2");
  EXPECT_EQ(no_text.status, 1);
  EXPECT_THAT(no_text.output, HasSubstr("error: task 'sst2' reads text: give --text"));

  auto no_image = predict("--task coco");
  EXPECT_EQ(no_image.status, 1);
  EXPECT_THAT(no_image.output, HasSubstr("error: task 'coco' reads an image: give --image"));

  const std::string missing = (*dir_ / "missing.jpg").string();
  auto missing_image = predict("--task vqa2 --text 'what?' --image '" + missing + "'");
  EXPECT_EQ(missing_image.status, 1);
  EXPECT_THAT(missing_image.output, HasSubstr("error: "));
  EXPECT_THAT(missing_image.output, HasSubstr(missing));

  auto no_draw = predict("--task sst2 --text hi --draw '" + (*dir_ / "x.png").string() + "'");
  EXPECT_EQ(no_draw.status, 1);
  EXPECT_THAT(no_draw.output, HasSubstr("error: --draw: task 'sst2' reads no image"));
}

}  // namespace
}  // namespace unitrain

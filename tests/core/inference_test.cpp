// unitrain::inference (unitrain/inference.h) on a tiny UniT model (real plugins) trained a
// few steps on the toy suite's SST-2, VQAv2 and COCO: the same answers as `unitrain
// predict`, decoded pixels as files, concurrent calls as sequential ones, and the errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "test_util.h"
#include "tiny_model.h"
#include "unitrain/inference.h"
#include "unitrain/toy/toy_suite.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
namespace inf = unitrain::inference;
using json = nlohmann::json;
using ::testing::HasSubstr;

class Inference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const fs::path toy = *dir_ / "toy";
    toy::ToySuiteOptions options;
    options.seed = 6;
    options.images = 16;
    options.text_examples = 40;
    options.image_size = 64;
    toy::make_toy_suite(toy, options);
    const json tokenizer = {{"vocab", (toy / "vocab.txt").string()}};
    const json image = {{"min_size", 64}, {"max_size", 96}};
    const json vqa2 = {{"type", "vqa2"}, {"root", (toy / "vqa2").string()}, {"tokenizer", tokenizer},
                       {"answers_file", (*dir_ / "answers.txt").string()}, {"image", image}};
    test::write_file(*dir_ / "answers.txt", "red\ngreen\nblue\nyes\nno\n1\n2\n3\ncircle\nsquare\ntriangle\n");
    const json e = {
        {"name", "inference_test"},
        {"seed", 3},
        {"model",
         {{"encoders",
           {{"image", test::tiny_image_encoder(32)}, {"text", test::tiny_text_encoder(tokenizer, 32)}}},
          {"decoder", test::tiny_decoder(32)},
          {"heads",
           {{"sst2", {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", 2}}},
            {"vqa2", {{"type", "mlp_classifier"}, {"in_dim", 32}, {"num_labels", 11}, {"loss", "soft_bce"}}},
            {"coco", {{"type", "detr"}, {"in_dim", 32}, {"num_classes", 9}}}}}}},
        {"tasks",
         {{"sst2",
           {{"dataset",
             {{"type", "glue"}, {"task", "sst2"}, {"root", (toy / "glue/SST-2").string()},
              {"tokenizer", tokenizer}, {"max_length", 24}}},
            {"encoders", {"text"}}, {"num_queries", 1}, {"batch_size", 4}, {"val_split", "dev"}}},
          {"vqa2", {{"dataset", vqa2}, {"encoders", {"image", "text"}}, {"num_queries", 2}, {"batch_size", 2}}},
          {"coco",
           {{"dataset", {{"type", "coco_detection"}, {"root", (toy / "coco").string()}, {"image", image}}},
            {"encoders", {"image"}}, {"num_queries", 5}, {"batch_size", 2}}}}},
        {"training", {{"max_steps", 3}, {"eval_max_batches", 1}}},
        {"data", {{"workers", 1}, {"prefetch", 1}}}};
    test::write_file(*dir_ / "exp.json", e.dump(2));
    auto trained = test::run_unitrain("train '" + (*dir_ / "exp.json").string() + "' --out '" +
                                      (*dir_ / "run").string() + "'");
    ASSERT_EQ(trained.status, 0) << trained.output;
    model_ = new inf::Model(inf::Model::open((*dir_ / "run").string()));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }

  static std::string image(const std::string& folder) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(*dir_ / "toy" / folder)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files.front().string();
  }

  // `unitrain predict` on the same run, all labels / boxes.
  static json cli(const std::string& args) {
    auto result = test::run_unitrain("predict '" + (*dir_ / "exp.json").string() + "' --checkpoint '" +
                                     (*dir_ / "run").string() + "' --top-k 100 --threshold 0 " + args);
    EXPECT_EQ(result.status, 0) << result.output;
    return test::json_in(result);
  }

  static void expect_same(const inf::Prediction& a, const inf::Prediction& b) {
    EXPECT_EQ(a.task, b.task);
    ASSERT_EQ(a.labels.size(), b.labels.size());
    for (size_t i = 0; i < a.labels.size(); ++i) {
      EXPECT_EQ(a.labels[i].id, b.labels[i].id);
      EXPECT_EQ(a.labels[i].score, b.labels[i].score);
    }
    ASSERT_EQ(a.boxes.size(), b.boxes.size());
    for (size_t i = 0; i < a.boxes.size(); ++i) {
      EXPECT_EQ(a.boxes[i].id, b.boxes[i].id);
      EXPECT_EQ(a.boxes[i].score, b.boxes[i].score);
      EXPECT_EQ(a.boxes[i].x0, b.boxes[i].x0);
      EXPECT_EQ(a.boxes[i].y1, b.boxes[i].y1);
    }
  }

  static test::TempDir* dir_;
  static inf::Model* model_;
};

test::TempDir* Inference::dir_ = nullptr;
inf::Model* Inference::model_ = nullptr;

TEST_F(Inference, OpensARunFolder) {
  ASSERT_NE(model_, nullptr);
  EXPECT_EQ(model_->tasks(), (std::vector<std::string>{"coco", "sst2", "vqa2"}));
  EXPECT_EQ(fs::path(model_->checkpoint()), fs::path(*dir_ / "run/checkpoints/last.pt"));
  EXPECT_EQ(model_->kind("sst2"), "classification");
  EXPECT_EQ(model_->kind("vqa2"), "vqa");
  EXPECT_EQ(model_->kind("coco"), "detection");
  EXPECT_EQ(model_->label_names("sst2"), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(model_->label_names("vqa2").at(2), "blue");
  EXPECT_TRUE(model_->reads_image("vqa2"));
  EXPECT_TRUE(model_->reads_text("vqa2"));
  EXPECT_FALSE(model_->reads_text("coco"));
  EXPECT_FALSE(model_->reads_image("sst2"));
  // A checkpoint file opens the same model.
  const inf::Model file = inf::Model::open(model_->checkpoint());
  expect_same(file.predict("sst2", {{}, "a truly wonderful film"}),
              model_->predict("sst2", {{}, "a truly wonderful film"}));
}

TEST_F(Inference, AnswersAsPredictDoes) {
  ASSERT_NE(model_, nullptr);
  const inf::Prediction text = model_->predict("sst2", {{}, "a clever", "charming story"});
  const json expected_text = cli("--task sst2 --text 'a clever' --text-b 'charming story'");
  ASSERT_EQ(text.labels.size(), expected_text["predictions"].size());
  for (size_t i = 0; i < text.labels.size(); ++i) {
    EXPECT_EQ(text.labels[i].name, expected_text["predictions"][i]["label"]);
    EXPECT_NEAR(text.labels[i].score, expected_text["predictions"][i]["score"].get<double>(), 1e-6);
  }
  EXPECT_NEAR(text.labels[0].score + text.labels[1].score, 1.0, 1e-5);

  const std::string picture = image("vqa2/val2014");
  const inf::Prediction vqa = model_->predict("vqa2", {inf::Image::from_file(picture), "what color is it?"});
  const json expected_vqa = cli("--task vqa2 --image '" + picture + "' --text 'what color is it?'");
  ASSERT_EQ(vqa.labels.size(), 11u);
  for (size_t i = 0; i < vqa.labels.size(); ++i) {
    EXPECT_EQ(vqa.labels[i].name, expected_vqa["predictions"][i]["label"]);
    EXPECT_NEAR(vqa.labels[i].score, expected_vqa["predictions"][i]["score"].get<double>(), 1e-6);
  }

  const std::string scene = image("coco/val2017");
  const inf::Prediction boxes = model_->predict("coco", {inf::Image::from_file(scene)});
  const json expected_boxes = cli("--task coco --image '" + scene + "'");
  EXPECT_EQ(boxes.kind, "detection");
  ASSERT_EQ(boxes.boxes.size(), 5u);  // every query
  ASSERT_EQ(expected_boxes["detections"].size(), 5u);
  for (size_t i = 0; i < boxes.boxes.size(); ++i) {
    const json& d = expected_boxes["detections"][i];
    EXPECT_EQ(boxes.boxes[i].label, d["label"]);
    EXPECT_NEAR(boxes.boxes[i].score, d["score"].get<double>(), 1e-6);
    EXPECT_NEAR(boxes.boxes[i].x0, d["box"][0].get<double>(), 1e-3);
    EXPECT_NEAR(boxes.boxes[i].y0, d["box"][1].get<double>(), 1e-3);
    EXPECT_NEAR(boxes.boxes[i].x1, d["box"][2].get<double>(), 1e-3);
    EXPECT_NEAR(boxes.boxes[i].y1, d["box"][3].get<double>(), 1e-3);
    if (i > 0) EXPECT_LE(boxes.boxes[i].score, boxes.boxes[i - 1].score);
  }
}

TEST_F(Inference, DecodedPixelsAnswerAsTheFile) {
  ASSERT_NE(model_, nullptr);
  const std::string scene = image("coco/val2017");
  const inf::Prediction from_file = model_->predict("coco", {inf::Image::from_file(scene)});
  cv::Mat bgr = cv::imread(scene, cv::IMREAD_COLOR);
  ASSERT_FALSE(bgr.empty());
  cv::Mat rgb, rgba;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::cvtColor(bgr, rgba, cv::COLOR_BGR2RGBA);
  expect_same(model_->predict("coco", {inf::Image::from_pixels(rgb.data, rgb.cols, rgb.rows, 3)}), from_file);
  expect_same(model_->predict("coco", {inf::Image::from_pixels(rgba.data, rgba.cols, rgba.rows, 4)}), from_file);
  // Rows with padding at their end (a stride larger than width x channels).
  cv::Mat padded(rgb.rows, rgb.cols + 3, CV_8UC3, cv::Scalar(255, 0, 255));
  rgb.copyTo(padded(cv::Rect(0, 0, rgb.cols, rgb.rows)));
  expect_same(model_->predict("coco", {inf::Image::from_pixels(padded.data, rgb.cols, rgb.rows, 3, padded.step)}),
              from_file);
}

TEST_F(Inference, ConcurrentCallsAnswerAsSequentialOnes) {
  ASSERT_NE(model_, nullptr);
  const std::vector<std::pair<std::string, inf::Input>> requests = {
      {"sst2", {{}, "a truly wonderful film"}},
      {"coco", {inf::Image::from_file(image("coco/val2017"))}},
      {"vqa2", {inf::Image::from_file(image("vqa2/val2014")), "what shape is it?"}},
      {"sst2", {{}, "a dull", "and boring plot"}},
      {"coco", {inf::Image::from_file(image("coco/train2017"))}},
      {"vqa2", {inf::Image::from_file(image("vqa2/train2014")), "how many circles?"}},
  };
  std::vector<inf::Prediction> sequential;
  for (const auto& [task, input] : requests) sequential.push_back(model_->predict(task, input));

  constexpr int kThreads = 4;
  constexpr int kRounds = 3;
  std::vector<std::vector<inf::Prediction>> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int round = 0; round < kRounds; ++round) {
          for (size_t i = 0; i < requests.size(); ++i) {
            const auto& [task, input] = requests[(i + t) % requests.size()];
            results[t].push_back(model_->predict(task, input));
          }
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    ASSERT_EQ(results[t].size(), kRounds * requests.size());
    for (size_t k = 0; k < results[t].size(); ++k) {
      expect_same(results[t][k], sequential[(k % requests.size() + t) % requests.size()]);
    }
  }
}

TEST_F(Inference, BatchOfInputsAnswersAsOneByOne) {
  ASSERT_NE(model_, nullptr);
  const std::vector<inf::Input> inputs = {{{}, "awful"}, {{}, "a clever", "charming story"}, {{}, "fine"}};
  const auto batch = model_->predict_batch("sst2", inputs);
  ASSERT_EQ(batch.size(), 3u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const inf::Prediction one = model_->predict("sst2", inputs[i]);
    ASSERT_EQ(batch[i].labels.size(), one.labels.size());
    for (size_t k = 0; k < one.labels.size(); ++k) {
      EXPECT_EQ(batch[i].labels[k].id, one.labels[k].id);
      EXPECT_NEAR(batch[i].labels[k].score, one.labels[k].score, 1e-5);
    }
  }
  EXPECT_TRUE(model_->predict_batch("sst2", {}).empty());
}

TEST_F(Inference, ErrorsSayWhat) {
  ASSERT_NE(model_, nullptr);
  auto message = [](auto&& f) { return test::error_of<inf::Error>(f); };
  EXPECT_THAT(message([&] { model_->predict("nope", {{}, "x"}); }),
              HasSubstr("task 'nope': not a task of"));
  EXPECT_THAT(message([&] { model_->predict("nope", {{}, "x"}); }), HasSubstr("tasks: coco, sst2, vqa2"));
  EXPECT_THAT(message([&] { model_->predict("sst2", {}); }), HasSubstr("task 'sst2' reads text: give Input::text"));
  EXPECT_THAT(message([&] { model_->predict("coco", {}); }), HasSubstr("task 'coco' reads an image: give Input::image"));
  EXPECT_THAT(message([&] { model_->predict("coco", {inf::Image::from_file(image("coco/val2017")), "hi"}); }),
              HasSubstr("task 'coco' reads no text; drop Input::text"));
  const std::string missing = (*dir_ / "missing.jpg").string();
  EXPECT_THAT(message([&] { model_->predict("coco", {inf::Image::from_file(missing)}); }), HasSubstr(missing));
  const std::uint8_t pixel[2] = {0, 0};
  EXPECT_THAT(message([&] { model_->predict("coco", {inf::Image::from_pixels(pixel, 1, 1, 2)}); }),
              HasSubstr("1, 3 or 4 channels, found 1x1 with 2 channels"));
  EXPECT_THAT(message([&] { inf::Model::open((*dir_ / "no_run").string()); }),
              HasSubstr((*dir_ / "no_run").string()));
  test::write_file(*dir_ / "broken.pt", "not a checkpoint");
  EXPECT_THAT(message([&] { inf::Model::open((*dir_ / "broken.pt").string()); }),
              HasSubstr("broken.pt: not a readable checkpoint"));
}

}  // namespace
}  // namespace unitrain

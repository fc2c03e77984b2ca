// `unitrain predict` end to end: a tiny UniT model (real plugins) trained for a few
// steps on the toy suite's SST-2, VQAv2 and COCO, then asked about raw text and images.
// Checks the output format, label names, box units and the drawn image; not accuracy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fmt/format.h>

#include "test_util.h"
#include "tiny_model.h"
#include "unitrain/config.h"
#include "unitrain/dataset.h"
#include "unitrain/model.h"
#include "unitrain/tokenizer.h"
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
           {{"image", test::tiny_image_encoder(32)}, {"text", test::tiny_text_encoder(tokenizer, 32)}}},
          {"decoder", test::tiny_decoder(32)},
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
    experiment_json_ = new json(e);
    test::write_file(*dir_ / "exp.json", e.dump(2));
    Experiment experiment = load_experiment(*dir_ / "exp.json");
    validate_experiment(experiment, registry_);
    TrainerConfig config;
    config.run_dir = *dir_ / "run";
    config.console = false;
    Trainer(experiment, *registry_, config).train();
  }
  static void TearDownTestSuite() {
    delete loaded_;
    delete dir_;
    delete experiment_json_;
  }

  // The trained model loaded in this process as `unitrain eval` loads it.
  static UnitModelImpl& model() {
    if (loaded_ == nullptr) {
      Experiment experiment = load_experiment(*dir_ / "exp.json");
      validate_experiment(experiment, registry_);
      TrainerConfig config;
      config.console = false;
      config.evaluate_only = true;
      loaded_ = new Trainer(experiment, *registry_, config);
      loaded_->load_weights(*dir_ / "run");
    }
    auto& m = dynamic_cast<UnitModelImpl&>(loaded_->model());
    m.eval();
    return m;
  }

  // The evaluation split of a task's dataset, built from the experiment's block.
  static std::shared_ptr<Dataset> val_dataset(const std::string& task) {
    json options = (*experiment_json_)["tasks"][task]["dataset"];
    const std::string type = options["type"];
    options.erase("type");
    options["split"] = task == "sst2" ? "dev" : "val";
    return registry_->create_as<Dataset>("dataset", type, options, "predict_test");
  }

  // The model's raw outputs for one record of the task's evaluation split.
  static HeadOutput forward(const std::string& task, const Sample& sample) {
    torch::NoGradGuard no_grad;
    return model().forward(task, collate({sample}, task), /*with_loss=*/false);
  }

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
  static json* experiment_json_;
  static Trainer* loaded_;
};

test::TempDir* Predict::dir_ = nullptr;
Registry* Predict::registry_ = nullptr;
int64_t Predict::num_answers_ = 0;
json* Predict::experiment_json_ = nullptr;
Trainer* Predict::loaded_ = nullptr;

TEST_F(Predict, TextClassificationTopK) {
  auto result = predict("--task sst2 --text 'a truly wonderful film' --top-k 2");
  ASSERT_EQ(result.status, 0) << result.output;
  const json out = test::json_in(result);
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
  const json out = test::json_in(result);
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
  const json out = test::json_in(result);
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

// --- predict against the model itself ---------------------------------------------
// predict prepares raw inputs itself (decode, the dataset block's transform, its
// tokenizer); here its answers are compared with the loaded model run in this process
// on the dataset's own evaluation record of the same file, reading the head's raw
// outputs (softmax / sigmoid, boxes scaled by the original size as DETR's PostProcess).

std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

json read_json(const fs::path& file) { return json::parse(test::read_file(file)); }

// Each label's score in predict's output, against the expected scores [C].
void expect_scores(const json& predictions, const torch::Tensor& expected) {
  ASSERT_EQ(static_cast<int64_t>(predictions.size()), expected.size(0)) << predictions.dump();
  for (const auto& p : predictions) {
    const int64_t id = p["id"].get<int64_t>();
    EXPECT_NEAR(p["score"].get<double>(), expected[id].item<double>(), 1e-5) << "label " << id;
  }
}

TEST_F(Predict, ClassificationScoresEqualTheModelsForward) {
  // The first dev row of SST-2 ("sentence\tlabel" after the header).
  const std::string tsv = test::read_file(*dir_ / "toy/glue/SST-2/dev.tsv");
  const auto row_start = tsv.find('\n') + 1;
  const std::string sentence = tsv.substr(row_start, tsv.find('\t', row_start) - row_start);
  const torch::Tensor expected = forward("sst2", val_dataset("sst2")->get(0, 0)).outputs.at("logits")[0].softmax(-1);

  auto result = predict("--task sst2 --text " + shell_quoted(sentence) + " --top-k 2");
  ASSERT_EQ(result.status, 0) << result.output;
  expect_scores(test::json_in(result)["predictions"], expected);
}

TEST_F(Predict, TextBIsEncodedAsTheSecondSegment) {
  TokenizerOptions options;
  options.vocab = (*dir_ / "toy/vocab.txt").string();
  options.max_length = 24;  // the dataset block's
  const std::string a = "a truly wonderful film", b = "a dull and boring plot";
  const Encoding encoding = make_tokenizer(options)->encode(a, &b);
  Sample sample;
  sample.input_ids = encoding.input_ids;
  sample.segment_ids = encoding.segment_ids;
  const torch::Tensor expected = forward("sst2", sample).outputs.at("logits")[0].softmax(-1);

  auto pair = predict("--task sst2 --text '" + a + "' --text-b '" + b + "' --top-k 2");
  ASSERT_EQ(pair.status, 0) << pair.output;
  const json out = test::json_in(pair);
  EXPECT_EQ(out["text_b"], b);
  expect_scores(out["predictions"], expected);
  // The second text changed the answer: without it the scores differ.
  auto single = predict("--task sst2 --text '" + a + "' --top-k 2");
  ASSERT_EQ(single.status, 0) << single.output;
  const json top = test::json_in(single)["predictions"][0];
  EXPECT_GT(std::abs(top["score"].get<double>() - expected[top["id"].get<int64_t>()].item<double>()), 1e-5);
}

TEST_F(Predict, VqaScoresOnANonSquareImageEqualTheModelsForward) {
  // Evaluation records are the questions file's, in its order.
  const json questions = read_json(*dir_ / "toy/vqa2/v2_OpenEnded_mscoco_val2014_questions.json")["questions"];
  auto dataset = val_dataset("vqa2");
  ASSERT_EQ(dataset->size(), static_cast<int64_t>(questions.size()));
  int64_t index = -1;
  Sample sample;
  for (int64_t i = 0; i < dataset->size() && index < 0; ++i) {
    sample = dataset->get(i, 0);
    if (sample.orig_width != sample.orig_height) index = i;
  }
  ASSERT_GE(index, 0) << "the toy val split has no non-square image";
  const json& question = questions[index];
  ASSERT_EQ(question["image_id"].get<int64_t>(), sample.image_id);
  const std::string image = (*dir_ / fmt::format("toy/vqa2/val2014/COCO_val2014_{:012d}.jpg", sample.image_id)).string();
  const torch::Tensor expected = forward("vqa2", sample).outputs.at("logits")[0].sigmoid();

  auto result = predict("--task vqa2 --image '" + image + "' --text " +
                        shell_quoted(question["question"].get<std::string>()) + " --top-k " +
                        std::to_string(num_answers_));
  ASSERT_EQ(result.status, 0) << result.output;
  const json out = test::json_in(result);
  EXPECT_EQ(out["image"]["width"], sample.orig_width);
  EXPECT_EQ(out["image"]["height"], sample.orig_height);
  expect_scores(out["predictions"], expected);
}

TEST_F(Predict, DetectionOnANonSquareImageEqualsTheModelsForwardInOriginalPixels) {
  const json coco = read_json(*dir_ / "toy/coco/annotations/instances_val2017.json");
  json image_entry;
  for (const auto& entry : coco["images"]) {
    if (entry["width"] != entry["height"]) {
      image_entry = entry;
      break;
    }
  }
  ASSERT_FALSE(image_entry.is_null()) << "the toy val split has no non-square image";
  auto dataset = val_dataset("coco");
  Sample sample;
  for (int64_t i = 0; i < dataset->size(); ++i) {
    sample = dataset->get(i, 0);
    if (sample.image_id == image_entry["id"].get<int64_t>()) break;
  }
  ASSERT_EQ(sample.image_id, image_entry["id"].get<int64_t>());
  const double width = image_entry["width"].get<double>(), height = image_entry["height"].get<double>();
  ASSERT_EQ(sample.orig_width, static_cast<int64_t>(width));
  // Resized (and so not at its original size) before the model sees it.
  ASSERT_NE(sample.image.size(2), sample.orig_width);

  const HeadOutput out = forward("coco", sample);
  const torch::Tensor logits = out.outputs.at("pred_logits")[0];  // [Q, C+1]
  const torch::Tensor boxes = out.outputs.at("pred_boxes")[0];    // [Q, 4] cx cy w h
  const auto [scores, labels] = logits.softmax(-1).narrow(-1, 0, logits.size(1) - 1).max(-1);
  std::vector<Detection> expected;
  for (int64_t q = 0; q < logits.size(0); ++q) {
    const double cx = boxes[q][0].item<double>(), cy = boxes[q][1].item<double>();
    const double w = boxes[q][2].item<double>(), h = boxes[q][3].item<double>();
    expected.push_back({static_cast<float>((cx - w / 2) * width), static_cast<float>((cy - h / 2) * height),
                        static_cast<float>((cx + w / 2) * width), static_cast<float>((cy + h / 2) * height),
                        scores[q].item<float>(), labels[q].item<int64_t>()});
  }
  std::stable_sort(expected.begin(), expected.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });

  const std::string image = (*dir_ / "toy/coco/val2017" / image_entry["file_name"].get<std::string>()).string();
  const std::string queries = std::to_string(logits.size(0));
  auto result = predict("--task coco --image '" + image + "' --threshold 0 --top-k " + queries);
  ASSERT_EQ(result.status, 0) << result.output;
  const json detections = test::json_in(result)["detections"];
  ASSERT_EQ(detections.size(), expected.size()) << detections.dump();
  for (size_t i = 0; i < expected.size(); ++i) {
    const json& d = detections[i];
    EXPECT_EQ(d["id"].get<int64_t>(), expected[i].label) << i;
    EXPECT_NEAR(d["score"].get<double>(), expected[i].score, 1e-5) << i;
    const float want[4] = {expected[i].x0, expected[i].y0, expected[i].x1, expected[i].y1};
    for (int k = 0; k < 4; ++k) {
      EXPECT_NEAR(d["box"][k].get<double>(), want[k], 1e-5 * std::max(1.0f, std::abs(want[k])))
          << "detection " << i << " coordinate " << k;
    }
  }

  // --threshold keeps exactly the detections scoring at least it.
  const float threshold = (expected[1].score + expected[2].score) / 2;
  auto above = predict("--task coco --image '" + image + "' --threshold " + std::to_string(threshold));
  ASSERT_EQ(above.status, 0) << above.output;
  const json kept = test::json_in(above)["detections"];
  ASSERT_EQ(kept.size(), 2u) << kept.dump();
  for (const auto& d : kept) EXPECT_GE(d["score"].get<double>(), threshold);

  // --draw: the drawn file is the image where nothing is drawn, and differs from it on
  // every box's bottom edge.
  const cv::Mat original = cv::imread(image);
  const fs::path none = *dir_ / "drawn_none.png";
  auto nothing = predict("--task coco --image '" + image + "' --threshold 2 --draw '" + none.string() + "'");
  ASSERT_EQ(nothing.status, 0) << nothing.output;
  EXPECT_EQ(cv::norm(cv::imread(none.string()), original, cv::NORM_INF), 0.0);
  const fs::path two = *dir_ / "drawn_two.png";
  auto drawn = predict("--task coco --image '" + image + "' --threshold " + std::to_string(threshold) +
                       " --draw '" + two.string() + "'");
  ASSERT_EQ(drawn.status, 0) << drawn.output;
  const cv::Mat picture = cv::imread(two.string());
  for (const auto& d : kept) {
    const int x = std::clamp(static_cast<int>(std::lround((d["box"][0].get<double>() + d["box"][2].get<double>()) / 2)),
                             0, original.cols - 1);
    const int y = std::clamp(static_cast<int>(std::lround(d["box"][3].get<double>())), 0, original.rows - 1);
    EXPECT_NE(picture.at<cv::Vec3b>(y, x), original.at<cv::Vec3b>(y, x)) << "bottom edge of " << d.dump();
  }
}

// --set reaches the preprocessing: another resize gives other scores, boxes stay in
// the original's pixels; a bad key is named.
TEST_F(Predict, SetOverridesTheExperiment) {
  const std::string image = first_image("coco/val2017");
  auto base = predict("--task coco --image '" + image + "' --threshold 0 --top-k 1");
  auto other = predict("--task coco --image '" + image +
                       "' --threshold 0 --top-k 1 --set tasks.coco.dataset.image.min_size=40 "
                       "--set tasks.coco.dataset.image.max_size=40");
  ASSERT_EQ(base.status, 0) << base.output;
  ASSERT_EQ(other.status, 0) << other.output;
  EXPECT_NE(test::json_in(base)["detections"][0]["score"], test::json_in(other)["detections"][0]["score"]);

  auto typo = predict("--task coco --image '" + image + "' --set tasks.coco.dataset.image.min_sise=40");
  EXPECT_EQ(typo.status, 1);
  EXPECT_THAT(typo.output, HasSubstr("/tasks/coco/dataset/image/min_sise"));
}

// --- eval --------------------------------------------------------------------------

TEST_F(Predict, EvalSplitOutAndMaxBatches) {
  const fs::path out = *dir_ / "eval_train.json";
  auto result = test::run_unitrain("eval '" + (*dir_ / "exp.json").string() + "' --checkpoint '" +
                                   (*dir_ / "run").string() + "' --split train --max-batches 2 --out '" +
                                   out.string() + "'");
  ASSERT_EQ(result.status, 0) << result.output;
  const json written = read_json(out);
  EXPECT_EQ(written, test::json_in(result));
  // The same evaluation in this process, and the default split differs from it.
  model();  // loads the weights
  EXPECT_EQ(written, loaded_->evaluate("train", 2));
  const json val = loaded_->evaluate("", 2);
  EXPECT_NE(written, val) << "the train split evaluates as the val split";
  // The table of an evaluate-only trainer (no training split opened): chance from the
  // evaluated split's labels.
  EXPECT_THAT(loaded_->eval_table(val), ::testing::ContainsRegex("sst2 +accuracy +[0-9.]+ +0\\.500"));
  for (const std::string task : {"coco", "sst2", "vqa2"}) EXPECT_TRUE(written.contains(task)) << task;

  auto missing = test::run_unitrain("eval '" + (*dir_ / "exp.json").string() + "' --checkpoint '" +
                                    (*dir_ / "run").string() + "' --split nope");
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.output, HasSubstr("nope"));
}

// --- predict --input (batch) ---------------------------------------------------------

// Requests of three tasks interleaved, ids echoed, results in file order equal to the
// single-request path's (the same model, batched by task).
TEST_F(Predict, InputFileAnswersEveryLineAsSingleRequestsDo) {
  const std::string coco = first_image("coco/val2017");
  const std::string vqa = first_image("vqa2/val2014");
  std::vector<json> requests = {
      {{"task", "sst2"}, {"text", "a truly wonderful film"}, {"id", "first"}},
      {{"task", "coco"}, {"image", coco}, {"id", 7}},
      {{"task", "vqa2"}, {"image", vqa}, {"text", "what color is the circle?"}},
      {{"task", "sst2"}, {"text", "a dull and boring plot"}},
      {{"task", "sst2"}, {"text", "a clever"}, {"text_b", "charming story"}},
      {{"task", "coco"}, {"image", first_image("coco/train2017")}},
      {{"task", "sst2"}, {"text", "awful"}},
  };
  std::string text;
  for (size_t i = 0; i < requests.size(); ++i) {
    text += requests[i].dump() + "\n";
    if (i == 2) text += "\n";  // a blank line is no request (line numbers still count it)
  }
  test::write_file(*dir_ / "requests.jsonl", text);
  const fs::path output = *dir_ / "results.jsonl";
  const fs::path drawn = *dir_ / "drawn";
  auto batch = predict("--input '" + (*dir_ / "requests.jsonl").string() + "' --output '" +
                       output.string() + "' --batch-size 2 --threshold 0 --top-k 3 --draw-dir '" +
                       drawn.string() + "'");
  ASSERT_EQ(batch.status, 0) << batch.output;
  std::vector<json> lines;
  std::vector<std::string> raw;
  std::istringstream in(test::read_file(output));
  for (std::string line; std::getline(in, line);) {
    raw.push_back(line);
    lines.push_back(json::parse(line));
  }
  ASSERT_EQ(lines.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const json& r = requests[i];
    std::string args = "--task " + r["task"].get<std::string>() + " --threshold 0 --top-k 3";
    if (r.contains("image")) args += " --image '" + r["image"].get<std::string>() + "'";
    if (r.contains("text")) args += " --text " + shell_quoted(r["text"]);
    if (r.contains("text_b")) args += " --text-b " + shell_quoted(r["text_b"]);
    auto single = predict(args);
    ASSERT_EQ(single.status, 0) << single.output;
    json expected = test::json_in(single);
    expected.erase("checkpoint");
    json got = lines[i];
    if (r.contains("id")) {
      EXPECT_EQ(got["id"], r["id"]);
      EXPECT_EQ(raw[i].rfind("{\"id\":", 0), 0u) << raw[i];  // first, before "task"
      got.erase("id");
    }
    // Labels and boxes as the single request gives them; scores to float precision (a
    // batch pads texts and images to its largest).
    const std::string key = expected.contains("detections") ? "detections" : "predictions";
    ASSERT_EQ(got[key].size(), expected[key].size()) << got.dump() << "\n" << expected.dump();
    for (size_t k = 0; k < got[key].size(); ++k) {
      EXPECT_EQ(got[key][k]["label"], expected[key][k]["label"]) << i;
      EXPECT_NEAR(got[key][k]["score"].get<double>(), expected[key][k]["score"].get<double>(), 1e-4) << i;
      if (key == "detections") {
        for (int c = 0; c < 4; ++c) {
          EXPECT_NEAR(got[key][k]["box"][c].get<double>(), expected[key][k]["box"][c].get<double>(), 1e-2);
        }
      }
    }
    got.erase(key);
    expected.erase(key);
    EXPECT_EQ(got, expected) << i;
  }
  // One drawing per request with an image, named by its line (line 4 is blank).
  EXPECT_TRUE(fs::is_regular_file(drawn / "2.png"));
  EXPECT_TRUE(fs::is_regular_file(drawn / "3.png"));
  EXPECT_TRUE(fs::is_regular_file(drawn / "7.png"));
  EXPECT_FALSE(fs::exists(drawn / "1.png"));

  // Without --output the lines go to stdout; a --task default fills lines without one.
  test::write_file(*dir_ / "texts.jsonl", "{\"text\": \"awful\"}\n{\"text\": \"a clever\", \"text_b\": \"charming story\"}\n");
  auto to_stdout = predict("--task sst2 --top-k 3 --input '" + (*dir_ / "texts.jsonl").string() + "'");
  ASSERT_EQ(to_stdout.status, 0) << to_stdout.output;
  std::istringstream printed(to_stdout.output);
  std::vector<json> printed_lines;
  for (std::string line; std::getline(printed, line);) {
    if (!line.empty() && line[0] == '{') printed_lines.push_back(json::parse(line));
  }
  ASSERT_EQ(printed_lines.size(), 2u) << to_stdout.output;
  EXPECT_EQ(printed_lines[0]["predictions"][0]["label"], lines[6]["predictions"][0]["label"]);
  EXPECT_EQ(printed_lines[1]["text_b"], "charming story");
}

TEST_F(Predict, InputFileErrorsNameTheFileAndLine) {
  const fs::path file = *dir_ / "bad.jsonl";
  auto run = [&](const std::string& text, const std::string& extra = "") {
    test::write_file(file, text);
    return predict("--input '" + file.string() + "'" + extra);
  };
  const std::string ok = "{\"task\": \"sst2\", \"text\": \"fine\"}\n";
  const std::string where = file.string() + ":2: ";

  auto no_task = run(ok + "{\"task\": \"nope\", \"text\": \"x\"}\n");
  EXPECT_EQ(no_task.status, 1);
  EXPECT_THAT(no_task.output, HasSubstr(where + "\"task\" 'nope': not a task of"));

  auto unknown_key = run(ok + "{\"task\": \"sst2\", \"txt\": \"x\"}\n");
  EXPECT_EQ(unknown_key.status, 1);
  EXPECT_THAT(unknown_key.output, HasSubstr(where + "unknown key 'txt'; valid keys: task, image, text, text_b, id"));

  auto no_image = run(ok + "{\"task\": \"coco\"}\n");
  EXPECT_EQ(no_image.status, 1);
  EXPECT_THAT(no_image.output, HasSubstr(where + "task 'coco' reads an image: give \"image\""));

  auto extra_text = run(ok + "{\"task\": \"coco\", \"image\": \"x.jpg\", \"text\": \"hi\"}\n");
  EXPECT_EQ(extra_text.status, 1);
  EXPECT_THAT(extra_text.output, HasSubstr(where + "task 'coco' reads no text; drop \"text\""));

  auto not_json = run(ok + "{\"task\": \n");
  EXPECT_EQ(not_json.status, 1);
  EXPECT_THAT(not_json.output, HasSubstr(where + "not a JSON object"));

  const std::string missing = (*dir_ / "missing.jpg").string();
  auto unreadable = run(ok + "{\"task\": \"coco\", \"image\": \"" + missing + "\"}\n");
  EXPECT_EQ(unreadable.status, 1);
  EXPECT_THAT(unreadable.output, HasSubstr(where));
  EXPECT_THAT(unreadable.output, HasSubstr(missing));

  auto no_default = run("{\"text\": \"x\"}\n");
  EXPECT_EQ(no_default.status, 1);
  EXPECT_THAT(no_default.output, HasSubstr(file.string() + ":1: no \"task\""));

  auto with_image_flag = run(ok, " --image x.jpg");
  EXPECT_NE(with_image_flag.status, 0);
  EXPECT_THAT(with_image_flag.output, HasSubstr("--image excludes --input"));

  auto batch = run(ok, " --batch-size 0");
  EXPECT_EQ(batch.status, 1);
  EXPECT_THAT(batch.output, HasSubstr("--batch-size: expected >= 1, found 0"));
}

}  // namespace
}  // namespace unitrain

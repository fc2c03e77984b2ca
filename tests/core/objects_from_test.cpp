// A task reading another task's detected objects (objects_from, objects_boxes) through
// a whole run's life, as the demo's VQAv2 reads coco: trained, checkpointed, resumed bit
// for bit, evaluated by `unitrain eval` and asked by `unitrain predict` as the README
// shows (an image and a question for a task whose own encoders read text only).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "test_util.h"
#include "tiny_model.h"
#include "unitrain/batch.h"
#include "unitrain/config.h"
#include "unitrain/dataset.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/toy/toy_suite.h"
#include "unitrain/trainer.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

class ObjectsFrom : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    toy::ToySuiteOptions toy;
    toy.seed = 6;
    toy.images = 16;
    toy.text_examples = 20;
    toy.image_size = 48;
    toy::make_toy_suite(*dir_ / "toy", toy);
    registry_ = new Registry();  // leaked: plugin libraries are never unloaded
    registry_->load_directory(UNITRAIN_TEST_PLUGIN_DIR);

    const json tokenizer = {{"vocab", (*dir_ / "toy/vocab.txt").string()}};
    const json image = {{"min_size", 48}, {"max_size", 64}};
    json vqa2 = {{"type", "vqa2"}, {"root", (*dir_ / "toy/vqa2").string()}, {"tokenizer", tokenizer},
                 {"answer_min_count", 1}, {"image", image}};
    json answers = vqa2;
    answers.erase("type");
    answers["split"] = "val";
    num_answers_ = static_cast<int64_t>(
        registry_->create_as<Dataset>("dataset", "vqa2", answers, "objects_from_test")->labels().names.size());
    experiment_ = {
        {"name", "objects_from_test"},
        {"seed", 8},
        {"threads", 1},
        {"model",
         {{"encoders",
           {{"image", test::tiny_image_encoder(16)}, {"text", test::tiny_text_encoder(tokenizer, 16)}}},
          {"decoder", test::tiny_decoder(16, {{"num_layers", 2}})},
          {"heads",
           {{"coco", {{"type", "detr"}, {"in_dim", 16}, {"num_classes", 9}}},
            {"vqa2", {{"type", "mlp_classifier"}, {"in_dim", 16}, {"num_labels", num_answers_},
                      {"loss", "soft_bce"}}}}}}},
        {"tasks",
         {{"coco",
           {{"dataset", {{"type", "coco_detection"}, {"root", (*dir_ / "toy/coco").string()}, {"image", image}}},
            {"encoders", {"image"}}, {"num_queries", 5}, {"batch_size", 2}}},
          {"vqa2",
           {{"dataset", vqa2}, {"encoders", {"text"}}, {"objects_from", "coco"}, {"objects_boxes", true},
            {"num_queries", 2}, {"batch_size", 3}}}}},
        {"training",
         {{"max_steps", 8}, {"lr", 2e-3}, {"warmup_steps", 2}, {"checkpoint_every", 4},
          {"keep_checkpoints", 3}, {"eval_max_batches", 2}}},
        {"data", {{"workers", 2}, {"prefetch", 2}}}};
    test::write_file(*dir_ / "exp.json", experiment_.dump(2));
  }
  static void TearDownTestSuite() { delete dir_; }

  static Experiment experiment() {
    Experiment e = load_experiment(*dir_ / "exp.json");
    validate_experiment(e, registry_);
    return e;
  }

  static TrainerConfig quiet(const fs::path& run_dir) {
    TrainerConfig config;
    config.run_dir = run_dir;
    config.console = false;
    return config;
  }


  static test::TempDir* dir_;
  static Registry* registry_;
  static json experiment_;
  static int64_t num_answers_;
};

test::TempDir* ObjectsFrom::dir_ = nullptr;
Registry* ObjectsFrom::registry_ = nullptr;
json ObjectsFrom::experiment_;
int64_t ObjectsFrom::num_answers_ = 0;

TEST_F(ObjectsFrom, TrainResumeEvaluateAndPredict) {
  // 8 steps straight; then the same run resumed from its step-4 file in another folder.
  const Experiment e = experiment();
  Trainer straight(e, *registry_, quiet(*dir_ / "straight"));
  straight.train();
  TrainerConfig config = quiet(*dir_ / "resumed");
  config.resume = true;
  config.resume_from = *dir_ / "straight/checkpoints/step_00000004.pt";
  Trainer resumed(e, *registry_, config);
  resumed.train();

  ASSERT_EQ(straight.history().size(), 8u);
  ASSERT_EQ(resumed.history().size(), 4u);
  std::set<std::string> tasks;
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(resumed.history()[i].task, straight.history()[4 + i].task);
    EXPECT_EQ(resumed.history()[i].loss, straight.history()[4 + i].loss) << "step " << 4 + i;
  }
  for (const auto& record : straight.history()) tasks.insert(record.task);
  EXPECT_EQ(tasks, (std::set<std::string>{"coco", "vqa2"})) << "both tasks trained";
  auto a = straight.model().named_parameters();
  bool has_object_projection = false;
  for (const auto& item : resumed.model().named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), a[item.key()])) << item.key();
    has_object_projection |= item.key().rfind("objects_vqa2.", 0) == 0;
  }
  EXPECT_TRUE(has_object_projection) << "objects_boxes adds the objects_vqa2 projection";

  // `unitrain eval` on the run equals the trainer's evaluation of the same weights.
  const std::string exp = "'" + (*dir_ / "exp.json").string() + "'";
  const std::string run = "'" + (*dir_ / "resumed").string() + "'";
  auto eval = test::run_unitrain("eval " + exp + " --checkpoint " + run + " --max-batches 2");
  ASSERT_EQ(eval.status, 0) << eval.output;
  const json metrics = test::json_in(eval);
  EXPECT_EQ(metrics, straight.evaluate("", 2));
  EXPECT_TRUE(metrics["vqa2"].contains("vqa_accuracy")) << metrics.dump();

  // predict, as the README: the image and the question; the answers' scores equal the
  // loaded model's on the dataset's own record of that image and question.
  const json questions =
      json::parse(test::read_file(*dir_ / "toy/vqa2/v2_OpenEnded_mscoco_val2014_questions.json"))["questions"];
  json options = experiment_["tasks"]["vqa2"]["dataset"];
  options.erase("type");
  options["split"] = "val";
  const Sample sample = registry_->create_as<Dataset>("dataset", "vqa2", options, "objects_from_test")->get(0, 0);
  ASSERT_EQ(questions[0]["image_id"].get<int64_t>(), sample.image_id);
  const std::string image =
      (*dir_ / fmt::format("toy/vqa2/val2014/COCO_val2014_{:012d}.jpg", sample.image_id)).string();
  auto& model = dynamic_cast<UnitModelImpl&>(resumed.model());
  model.eval();
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model.forward("vqa2", collate({sample}, "vqa2"), false).outputs.at("logits")[0].sigmoid();
  }
  auto predict = test::run_unitrain("predict " + exp + " --checkpoint " + run + " --task vqa2 --image '" +
                                    image + "' --text '" + questions[0]["question"].get<std::string>() +
                                    "' --top-k " + std::to_string(num_answers_));
  ASSERT_EQ(predict.status, 0) << predict.output;
  const json out = test::json_in(predict);
  EXPECT_EQ(out["kind"], "vqa");
  ASSERT_EQ(static_cast<int64_t>(out["predictions"].size()), num_answers_);
  for (const auto& p : out["predictions"]) {
    EXPECT_NEAR(p["score"].get<double>(), expected[p["id"].get<int64_t>()].item<double>(), 1e-5) << p.dump();
  }

  // Without the image, predict says which input the objects need.
  auto no_image = test::run_unitrain("predict " + exp + " --checkpoint " + run +
                                     " --task vqa2 --text 'what color is the circle?'");
  EXPECT_EQ(no_image.status, 1);
  EXPECT_THAT(no_image.output, HasSubstr("task 'vqa2' reads an image: give --image"));
}

}  // namespace
}  // namespace unitrain

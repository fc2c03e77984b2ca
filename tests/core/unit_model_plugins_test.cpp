// UnitModel built through the registry from the real plugins (image and text encoders,
// unit_decoder, mlp_classifier and detr heads) at tiny sizes, and `unitrain model summary`.
#include <gtest/gtest.h>

#include "test_util.h"
#include "unitrain/config.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"

namespace unitrain {
namespace {

using json = nlohmann::json;
using torch::indexing::Slice;

const std::string kFixtures = std::string(UNITRAIN_TEST_FIXTURE_DIR) + "/good";

std::string experiment_text() {
  return R"({
  "name": "tiny_unit",
  "plugin_dirs": [")" + kFixtures + R"("],
  "model": {
    "encoders": {
      "image": {"type": "image", "depth": 18, "width": 8, "layers": [1, 1, 1, 1],
                "return_layer": "layer3", "hidden_dim": 16, "num_layers": 1, "num_heads": 2,
                "dim_feedforward": 32, "task_token": true, "output_dim": 32},
      "text": {"type": "text", "vocab_size": 60, "hidden_dim": 32, "num_layers": 1,
               "num_heads": 4, "intermediate_dim": 64, "max_position": 16, "output_dim": 32}
    },
    "decoder": {"type": "unit_decoder", "d_model": 32, "num_layers": 2, "num_heads": 4,
                "dim_feedforward": 64},
    "heads": {
      "snli_ve": {"type": "mlp_classifier", "in_dim": 32, "num_labels": 3},
      "vqa2": {"type": "mlp_classifier", "in_dim": 32, "num_labels": 7, "loss": "soft_bce"},
      "coco": {"type": "detr", "in_dim": 32, "num_classes": 5}
    }
  },
  "tasks": {
    "snli_ve": {"dataset": {"type": "test_dataset"}, "encoders": ["image", "text"], "num_queries": 2},
    "vqa2": {"dataset": {"type": "test_dataset"}, "encoders": ["image", "text"], "num_queries": 3},
    "coco": {"dataset": {"type": "test_dataset"}, "encoders": ["image"], "num_queries": 8}
  }
})";
}

Batch make_batch(const std::string& task) {
  Batch b;
  b.task = task;
  b.size = 2;
  b.image = torch::randn({2, 3, 32, 48});
  b.image_mask = torch::zeros({2, 32, 48}, torch::kBool);
  b.image_mask.index_put_({1, Slice(), Slice(32, torch::indexing::None)}, true);
  b.image_size = torch::tensor({{32, 48}, {32, 32}}, torch::kLong);
  b.orig_size = torch::tensor({{320, 480}, {64, 64}}, torch::kLong);
  b.input_ids = torch::randint(1, 60, {2, 6}, torch::kLong);
  b.text_mask = torch::zeros({2, 6}, torch::kBool);
  b.text_mask.index_put_({1, Slice(4, torch::indexing::None)}, true);
  b.segment_ids = torch::zeros({2, 6}, torch::kLong);
  b.labels = torch::tensor({1, 2}, torch::kLong);
  b.soft_labels = torch::zeros({2, 7});
  b.soft_labels.index_put_({0, 3}, 1.0);
  b.soft_labels.index_put_({1, 5}, 0.6);
  b.boxes = {torch::tensor({{0.4f, 0.5f, 0.3f, 0.2f}}), torch::zeros({0, 4})};
  b.classes = {torch::tensor({4}, torch::kLong), torch::zeros({0}, torch::kLong)};
  return b;
}

class UnitModelPlugins : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = dir_ / "tiny_unit.json";
    test::write_file(file_, experiment_text());
    registry_.load_default_search_path({{kFixtures, "the test fixtures"}});
    experiment_ = load_experiment(file_);
    validate_experiment(experiment_, &registry_);
  }
  test::TempDir dir_;
  std::filesystem::path file_;
  Registry registry_;
  Experiment experiment_;
};

TEST_F(UnitModelPlugins, ForwardAndBackwardThroughTheRegistry) {
  torch::manual_seed(0);
  UnitModel model(experiment_, registry_factory(registry_));
  for (const auto& task : {"snli_ve", "vqa2", "coco"}) {
    model->zero_grad();
    auto out = model->forward(task, make_batch(task));
    torch::Tensor total = torch::zeros({});
    for (const auto& [name, loss] : out.losses) {
      ASSERT_TRUE(torch::isfinite(loss).item<bool>()) << task << " " << name;
      total = total + loss;
    }
    total.backward();
    auto decoder_params = model->component("decoder")->parameters();
    int64_t with_grad = 0;
    for (const auto& p : decoder_params) with_grad += p.grad().defined() ? 1 : 0;
    EXPECT_GT(with_grad, 0) << task;
    for (const auto& p : model->component(std::string("heads/") + task)->parameters()) {
      EXPECT_TRUE(p.grad().defined()) << task;
    }
  }
  auto coco = model->forward("coco", make_batch("coco"), false);
  EXPECT_EQ(coco.outputs.at("pred_boxes").sizes(), (std::vector<int64_t>{2, 8, 4}));
  EXPECT_EQ(model->forward("vqa2", make_batch("vqa2"), false).outputs.at("logits").sizes(),
            (std::vector<int64_t>{2, 7}));
}

TEST_F(UnitModelPlugins, WidthMismatchIsAConfigError) {
  experiment_.json["model"]["encoders"]["text"]["output_dim"] = 16;
  try {
    UnitModel model(experiment_, registry_factory(registry_));
    FAIL();
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("tiny_unit.json:/tasks/snli_ve/encoders/1"), std::string::npos) << message;
    EXPECT_NE(message.find("16-dim"), std::string::npos) << message;
  }
}

TEST_F(UnitModelPlugins, SummaryCommand) {
  UnitModel model(experiment_, registry_factory(registry_));
  const std::string cli = std::string(UNITRAIN_TEST_BINARY) + " model summary " + file_.string();
  auto result = test::run_command(cli + " --json");
  ASSERT_EQ(result.status, 0) << result.output;
  auto summary = json::parse(result.output);
  EXPECT_EQ(summary["total"].get<int64_t>(), model->parameter_count());
  int64_t sum = 0;
  for (const auto& [name, count] : summary["components"].items()) {
    EXPECT_EQ(count.get<int64_t>(), model->parameter_counts().at(name)) << name;
    sum += count.get<int64_t>();
  }
  EXPECT_EQ(sum, summary["total"].get<int64_t>());
  EXPECT_EQ(summary["components"].size(), 6u);
  EXPECT_EQ(summary["other"], json::object());

  result = test::run_command(cli + " --depth 1");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("encoders/image"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("  backbone"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("heads/coco"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("total"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace unitrain

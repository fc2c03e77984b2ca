// A prediction must not depend on what else is in the batch: an image predicted alone,
// zero padded next to a larger image, or in a batch of images of its own size gives the
// same detections, and the same answers for the vision-and-language tasks that read its
// image grid or its detected objects (objects_from). Real plugins through the registry.
#include <gtest/gtest.h>

#include "test_util.h"
#include "unitrain/config.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"

namespace unitrain {
namespace {

const std::string kFixtures = std::string(UNITRAIN_TEST_FIXTURE_DIR) + "/good";

// Widths at the toy model's proportions: layer3 (stride 16), a 1-layer image transformer,
// a shared 2-layer decoder; coco detects, vqa2 reads coco's objects with their boxes,
// snli_ve reads the image grid and the text.
std::string experiment_text() {
  return R"({
  "name": "batch_invariance",
  "plugin_dirs": [")" + kFixtures + R"("],
  "model": {
    "encoders": {
      "image": {"type": "image", "depth": 18, "width": 8, "layers": [1, 1, 1, 1],
                "return_layer": "layer3", "trainable_layers": 5, "hidden_dim": 16,
                "num_layers": 1, "num_heads": 2, "dim_feedforward": 32, "dropout": 0.0,
                "task_token": true, "output_dim": 32},
      "text": {"type": "text", "vocab_size": 60, "hidden_dim": 32, "num_layers": 1,
               "num_heads": 4, "intermediate_dim": 64, "max_position": 16, "dropout": 0.0,
               "attention_dropout": 0.0, "output_dim": 32}
    },
    "decoder": {"type": "unit_decoder", "d_model": 32, "num_layers": 2, "num_heads": 4,
                "dim_feedforward": 64, "dropout": 0.0},
    "heads": {
      "coco": {"type": "detr", "in_dim": 32, "num_classes": 5, "anchor_grid": true},
      "vqa2": {"type": "mlp_classifier", "in_dim": 32, "num_labels": 7, "loss": "soft_bce"},
      "snli_ve": {"type": "mlp_classifier", "in_dim": 32, "num_labels": 3}
    }
  },
  "tasks": {
    "coco": {"dataset": {"type": "test_dataset"}, "encoders": ["image"], "num_queries": 8},
    "vqa2": {"dataset": {"type": "test_dataset"}, "encoders": ["text"], "num_queries": 2,
             "objects_from": "coco", "objects_boxes": true},
    "snli_ve": {"dataset": {"type": "test_dataset"}, "encoders": ["image", "text"],
                "num_queries": 2}
  }
})";
}

Sample image_sample(int64_t height, int64_t width, int64_t seed) {
  torch::manual_seed(seed);
  Sample s;
  s.source = "image" + std::to_string(seed);
  // Normalized pixels with structure at every scale, so that features near the border
  // differ from the padding (zero) the canvas holds.
  s.image = torch::randn({3, height, width}) +
            torch::linspace(-2, 2, width).view({1, 1, width}) *
                torch::linspace(1, -1, height).view({1, height, 1});
  s.orig_height = height * 3;
  s.orig_width = width * 3;
  s.image_id = seed;
  s.input_ids = {1, 5 + seed % 7, 9, 2};
  return s;
}

struct Outputs {
  std::map<std::string, torch::Tensor> by_name;  // "task/output" -> row of sample 0
};

// The three tasks' outputs for the first sample of `samples`, collated as one batch.
Outputs outputs_of_first(UnitModel& model, const std::vector<Sample>& samples) {
  torch::NoGradGuard no_grad;
  Outputs out;
  for (const std::string task : {"coco", "vqa2", "snli_ve"}) {
    auto head = model->forward(task, collate(samples, task), /*with_loss=*/false);
    for (const auto& [name, value] : head.outputs) out.by_name[task + "/" + name] = value[0];
  }
  return out;
}

double max_difference(const Outputs& a, const Outputs& b, std::string* worst) {
  double most = 0;
  for (const auto& [name, value] : a.by_name) {
    const double d = (value - b.by_name.at(name)).abs().max().item<double>();
    if (d > most) {
      most = d;
      *worst = name;
    }
  }
  return most;
}

class BatchInvariance : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = dir_ / "batch_invariance.json";
    test::write_file(file_, experiment_text());
    registry_.load_default_search_path({{kFixtures, "the test fixtures"}});
    experiment_ = load_experiment(file_);
    validate_experiment(experiment_, &registry_);
  }

  // The image of (height, width) alone, first in a batch with a larger image (so zero
  // padded on both axes), and first in a batch with another image of its size.
  void expect_invariant(int64_t height, int64_t width) {
    torch::manual_seed(3);
    UnitModel model(experiment_, registry_factory(registry_));
    model->eval();
    const Sample image = image_sample(height, width, 1);
    const auto alone = outputs_of_first(model, {image});
    const auto padded = outputs_of_first(model, {image, image_sample(80, 96, 2)});
    const auto same_size = outputs_of_first(model, {image, image_sample(height, width, 3)});
    std::string worst;
    // Float sums in another order (convolutions over a larger canvas, attention over
    // more keys) move outputs by ~1e-6 in float32; a masked backbone leaves nothing else.
    constexpr double kTolerance = 1e-4;
    EXPECT_LT(max_difference(alone, padded, &worst), kTolerance)
        << height << "x" << width << " padded to 80x96: " << worst;
    EXPECT_LT(max_difference(alone, same_size, &worst), kTolerance)
        << height << "x" << width << " next to its own size: " << worst;
    // The comparison is not vacuous: another image gives other boxes.
    const auto other = outputs_of_first(model, {image_sample(height, width, 4)});
    EXPECT_GT(max_difference(alone, other, &worst), 1e-3);
  }

  test::TempDir dir_;
  std::filesystem::path file_;
  Registry registry_;
  Experiment experiment_;
};

TEST_F(BatchInvariance, SquareImage) { expect_invariant(45, 45); }
TEST_F(BatchInvariance, WideImage) { expect_invariant(37, 61); }
TEST_F(BatchInvariance, TallImage) { expect_invariant(61, 37); }
// Sizes on the feature grid (multiples of the stride), as the toy suite's 128x96.
TEST_F(BatchInvariance, WideImageOnTheStrideGrid) { expect_invariant(48, 64); }

}  // namespace
}  // namespace unitrain

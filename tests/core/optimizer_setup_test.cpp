// The optimizer the trainer builds, checked against AdamW computed by hand: two updates
// of a small UniT (real image / text encoders, decoder and head) on the toy suite's
// SNLI-VE, with every setting away from its default (backbone_lr, weight_decay,
// adam_betas, adam_eps, loss_weight). The gradient of each step is taken in the batch
// hook, just before the trainer's own forward and backward on the same batch.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

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

// The settings under test; each differs from its default so that a setting that does
// not reach the update shows.
struct Settings {
  double lr = 1e-2;
  double backbone_lr = 2e-3;
  double weight_decay = 0.3;
  double beta1 = 0.6;
  double beta2 = 0.8;
  double eps = 1e-4;
  double loss_weight = 2.5;
};

// "backbone" as a whole segment of a parameter's dotted name.
bool in_backbone(const std::string& name) {
  return name.rfind("backbone.", 0) == 0 || name.find(".backbone.") != std::string::npos;
}

// Parameters of a module, cloned, by name.
std::map<std::string, torch::Tensor> snapshot(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : module.named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

// Two AdamW updates (PyTorch's formula, in double) from p0 with gradients g1 (at p0) and
// g2 (at the parameters after the first update).
torch::Tensor adamw_two_steps(const torch::Tensor& p0, const torch::Tensor& g1, const torch::Tensor& g2,
                              double lr, double weight_decay, const Settings& s) {
  torch::Tensor p = p0.to(torch::kDouble);
  torch::Tensor m = torch::zeros_like(p), v = torch::zeros_like(p);
  const torch::Tensor grads[2] = {g1.to(torch::kDouble), g2.to(torch::kDouble)};
  for (int t = 1; t <= 2; ++t) {
    const torch::Tensor& g = grads[t - 1];
    p = p * (1 - lr * weight_decay);
    m = s.beta1 * m + (1 - s.beta1) * g;
    v = s.beta2 * v + (1 - s.beta2) * g * g;
    const double c1 = 1 - std::pow(s.beta1, t), c2 = 1 - std::pow(s.beta2, t);
    p = p - lr / c1 * m / ((v / c2).sqrt() + s.eps);
  }
  return p;
}

class OptimizerSetup : public ::testing::Test {
 protected:
  void SetUp() override {
    toy::ToySuiteOptions toy;
    toy.seed = 5;
    toy.images = 8;
    toy.text_examples = 20;
    toy.image_size = 48;
    toy::make_toy_suite(dir_ / "toy", toy);
    registry_.load_directory(UNITRAIN_TEST_PLUGIN_DIR);
  }

  json experiment_json(const Settings& s) const {
    const json tokenizer = {{"vocab", (dir_ / "toy/vocab.txt").string()}};
    return {
        {"name", "optimizer_setup_test"},
        {"seed", 4},
        {"threads", 1},
        {"model",
         {{"encoders",
           {{"image", test::tiny_image_encoder(16, {{"dropout", 0.0}})},
            {"text", test::tiny_text_encoder(tokenizer, 16, {{"dropout", 0.0}, {"attention_dropout", 0.0}})}}},
          {"decoder", test::tiny_decoder(16, {{"dropout", 0.0}})},
          {"heads", {{"snli_ve", {{"type", "mlp_classifier"}, {"in_dim", 16}, {"num_labels", 3},
                                  {"dropout", 0.0}}}}}}},
        {"tasks",
         {{"snli_ve",
           {{"dataset",
             {{"type", "snli_ve"}, {"root", (dir_ / "toy/snli_ve").string()}, {"tokenizer", tokenizer},
              {"image", {{"min_size", 48}, {"max_size", 64}}}}},
            {"encoders", {"image", "text"}}, {"num_queries", 2}, {"batch_size", 3},
            {"val_split", "dev"}, {"loss_weight", s.loss_weight}}}}},
        {"training",
         {{"max_steps", 2}, {"lr", s.lr}, {"backbone_lr", s.backbone_lr}, {"weight_decay", s.weight_decay},
          {"adam_betas", {s.beta1, s.beta2}}, {"adam_eps", s.eps}, {"lr_schedule", "constant"},
          {"warmup_steps", 0}, {"clip_grad_norm", 0.0}, {"eval_max_batches", 1}}},
        {"data", {{"workers", 1}, {"prefetch", 1}}}};
  }

  // Three training records of the task, collated as the loader would.
  Batch fixed_batch() {
    json options = {{"root", (dir_ / "toy/snli_ve").string()},
                    {"tokenizer", {{"vocab", (dir_ / "toy/vocab.txt").string()}}},
                    {"image", {{"min_size", 48}, {"max_size", 64}}},
                    {"split", "train"}};
    auto dataset = registry_.create_as<Dataset>("dataset", "snli_ve", options, "optimizer_setup_test");
    std::vector<Sample> samples;
    for (int64_t i = 0; i < 3; ++i) samples.push_back(dataset->get(i, 0));
    return collate(samples, "snli_ve");
  }

  test::TempDir dir_;
  Registry registry_;
};

TEST_F(OptimizerSetup, TwoUpdatesEqualAdamWByHandWithEachGroupsLrAndDecay) {
  const Settings s;
  test::write_file(dir_ / "exp.json", experiment_json(s).dump(2));
  Experiment experiment = load_experiment(dir_ / "exp.json");
  validate_experiment(experiment, &registry_);

  const Batch batch = fixed_batch();
  std::vector<std::map<std::string, torch::Tensor>> before, grads;  // per step
  Trainer* trainer_ptr = nullptr;
  TrainerConfig config;
  config.run_dir = dir_ / "run";
  config.console = false;
  // Before each step: the parameters, and the gradient of loss_weight x the task's loss
  // at them, taken as the trainer will take it (the same batch, no dropout, one thread).
  config.batch_source = [&](const std::string& task) {
    auto& model = dynamic_cast<UnitModelImpl&>(trainer_ptr->model());
    before.push_back(snapshot(model));
    const HeadOutput out = model.forward(task, batch, /*with_loss=*/true);
    torch::Tensor loss = torch::zeros({});
    for (const auto& [name, value] : out.losses) loss = loss + value;
    (loss * s.loss_weight).backward();
    std::map<std::string, torch::Tensor> g;
    for (const auto& item : model.named_parameters()) {
      if (item.value().grad().defined()) g[item.key()] = item.value().grad().clone();
      item.value().mutable_grad() = torch::Tensor();
    }
    grads.push_back(std::move(g));
    return batch;
  };
  Trainer trainer(experiment, registry_, config);
  trainer_ptr = &trainer;
  trainer.train();
  ASSERT_EQ(before.size(), 2u);
  const auto after = snapshot(trainer.model());

  // The expected parameters, and the same with one setting lost on its way to the
  // update: each must differ clearly from what the trainer did, or the test is blind.
  enum Variant { kExpected, kOneLr, kDecayEverywhere, kDefaultBeta1, kDefaultBeta2, kDefaultEps,
                 kNoLossWeight, kVariants };
  const char* kVariantNames[] = {"expected", "one lr for all", "decay on 1-D parameters too",
                                 "default beta1", "default beta2", "default eps", "no loss_weight"};
  double worst[kVariants] = {0};
  int frozen = 0, backbone = 0, rest = 0, undecayed = 0;
  for (const auto& [name, p0] : before[0]) {
    if (!grads[0].count(name)) {
      ++frozen;  // frozen stages: no gradient, no update
      EXPECT_TRUE(torch::equal(after.at(name), p0)) << name << " has no gradient but moved";
      continue;
    }
    ASSERT_TRUE(grads[1].count(name)) << name;
    (in_backbone(name) ? backbone : rest)++;
    const bool decays = p0.dim() > 1;
    undecayed += decays ? 0 : 1;
    for (int v = 0; v < kVariants; ++v) {
      Settings vs = s;
      double lr = in_backbone(name) ? s.backbone_lr : s.lr;
      double wd = decays ? s.weight_decay : 0.0;
      torch::Tensor g1 = grads[0].at(name), g2 = grads[1].at(name);
      if (v == kOneLr) lr = s.lr;
      if (v == kDecayEverywhere) wd = s.weight_decay;
      if (v == kDefaultBeta1) vs.beta1 = 0.9;
      if (v == kDefaultBeta2) vs.beta2 = 0.999;
      if (v == kDefaultEps) vs.eps = 1e-8;
      if (v == kNoLossWeight) {
        g1 = g1 / s.loss_weight;
        g2 = g2 / s.loss_weight;
      }
      const torch::Tensor expected = adamw_two_steps(p0, g1, g2, lr, wd, vs);
      const double diff = (after.at(name).to(torch::kDouble) - expected).abs().max().item<double>();
      worst[v] = std::max(worst[v], diff);
      if (v == kExpected) {
        EXPECT_LT(diff, 2e-6) << name << (in_backbone(name) ? " (backbone_lr)" : " (lr)")
                              << (decays ? ", decayed" : ", not decayed");
      }
    }
  }
  // The model has each kind: frozen stem and layer1, a trained backbone, the rest, and
  // 1-D parameters (biases, norms).
  EXPECT_GT(frozen, 0);
  EXPECT_GT(backbone, 0);
  EXPECT_GT(rest, 0);
  EXPECT_GT(undecayed, 0);
  EXPECT_LT(worst[kExpected], 2e-6);
  for (int v = kExpected + 1; v < kVariants; ++v) {
    EXPECT_GT(worst[v], 1e-4) << "the test cannot tell '" << kVariantNames[v] << "' from the setting";
  }
}

}  // namespace
}  // namespace unitrain

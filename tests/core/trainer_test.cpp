// The trainer on the test plugins: learning, the learning-rate schedule, clipping,
// gradient accumulation, exact resume, the non-finite-loss guard, run-folder files,
// checkpoint errors and the train / eval commands.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "test_util.h"
#include "unitrain/adamw.h"
#include "unitrain/checkpoint.h"
#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/toy/toy_suite.h"
#include "unitrain/trainer.h"
#include "train/mixed_precision.h"

namespace unitrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using test::error_of;
using test::read_jsonl;

Registry& registry() {
  static Registry* registry = [] {
    auto* r = new Registry();  // leaked: plugin libraries are never unloaded
    r->load_directory(test::fixture("good"));
    r->load_directory(test::fixture("nan"));
    r->load_directory(test::fixture("feedback"));
    r->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

// One task ("majority": is token 1 more frequent than token 2 in 7 tokens) on the
// dropout-free test plugins; one loader thread and one intra-op thread, so that runs
// are bit-reproducible.
json base_experiment() {
  return json::parse(R"({
    "name": "trainer_test", "seed": 3, "threads": 1,
    "model": {
      "encoders": {"text": {"type": "test_encoder", "modality": "text", "dim": 16}},
      "decoder": {"type": "test_decoder", "dim": 16},
      "heads": {"majority": {"type": "test_head", "in_dim": 16, "num_labels": 2}}
    },
    "tasks": {
      "majority": {"dataset": {"type": "test_dataset", "size": 64, "length": 7},
                   "encoders": ["text"], "num_queries": 1, "batch_size": 16}
    },
    "training": {"max_steps": 20, "lr": 1e-2, "clip_grad_norm": 1.0, "log_every": 5},
    "data": {"workers": 1, "prefetch": 2}
  })");
}

// A second task reading longer sequences, sampled 30 % of the time.
json two_task_experiment() {
  json j = base_experiment();
  j["model"]["heads"]["majority_long"] = {{"type", "test_head"}, {"in_dim", 16}, {"num_labels", 2}};
  j["tasks"]["majority_long"] = j["tasks"]["majority"];
  j["tasks"]["majority_long"]["dataset"]["length"] = 15;
  j["tasks"]["majority_long"]["batch_size"] = 8;
  j["tasks"]["majority"]["ratio"] = 0.7;
  j["tasks"]["majority_long"]["ratio"] = 0.3;
  return j;
}

Experiment experiment(const test::TempDir& dir, const json& j, const std::string& name = "exp.json") {
  test::write_file(dir / name, j.dump(2));
  Experiment e = load_experiment(dir / name);
  validate_experiment(e, &registry());
  return e;
}

TrainerConfig quiet(const fs::path& run_dir, bool resume = false) {
  TrainerConfig config;
  config.run_dir = run_dir;
  config.resume = resume;
  config.console = false;
  return config;
}

std::vector<double> losses(const Trainer& trainer) {
  std::vector<double> out;
  for (const auto& record : trainer.history()) out.push_back(record.loss);
  return out;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
}

// --- learning ----------------------------------------------------------------------

TEST(Trainer, LossDecreasesAndTheTaskIsLearned) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 60;
  j["training"]["warmup_steps"] = 5;
  Trainer trainer(experiment(dir, j), registry(), quiet(dir / "run"));
  EvalResult result = trainer.train();
  const auto l = losses(trainer);
  ASSERT_EQ(l.size(), 60u);
  EXPECT_EQ(trainer.step(), 60);
  // Chance level is ln 2 = 0.693; the label is linear in the token counts, so the
  // test model learns it fully (measured: 0.50 over the first 20 steps, 0.02 over the
  // last 20).
  EXPECT_GT(mean(l, 0, 5), 0.6);
  EXPECT_LT(mean(l, 40, 60), 0.2 * mean(l, 0, 20));
  EXPECT_GE(result["majority"]["accuracy"].get<double>(), 0.95) << result.dump();
  for (const auto& record : trainer.history()) EXPECT_EQ(record.task, "majority");
}

// --- learning-rate schedule --------------------------------------------------------

TEST(LrFactor, WarmupThenCosine) {
  TrainingOptions o;
  o.max_steps = 14;
  o.warmup_steps = 4;
  o.lr_schedule = "cosine";
  // Warmup: (step + 1) / 4.
  EXPECT_DOUBLE_EQ(lr_factor(o, 0), 0.25);
  EXPECT_DOUBLE_EQ(lr_factor(o, 1), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(o, 3), 1.0);
  // Decay over the 10 steps after warmup: progress = (step - 4) / 10,
  // factor = (1 + cos(pi * progress)) / 2.
  EXPECT_DOUBLE_EQ(lr_factor(o, 4), 1.0);                    // progress 0
  EXPECT_NEAR(lr_factor(o, 8), 0.6545084971874737, 1e-12);   // 0.4: (1 + 0.30902) / 2
  EXPECT_NEAR(lr_factor(o, 9), 0.5, 1e-12);                  // 0.5: cos = 0
  EXPECT_NEAR(lr_factor(o, 13), 0.024471741852423234, 1e-12);  // 0.9: (1 - 0.95106) / 2
  EXPECT_NEAR(lr_factor(o, 14), 0.0, 1e-12);                 // 1.0
  EXPECT_NEAR(lr_factor(o, 100), 0.0, 1e-12);                // clamped past the end
}

TEST(LrFactor, Linear) {
  TrainingOptions o;
  o.max_steps = 14;
  o.warmup_steps = 4;
  o.lr_schedule = "linear";
  EXPECT_DOUBLE_EQ(lr_factor(o, 2), 0.75);     // warmup 3/4
  EXPECT_NEAR(lr_factor(o, 6), 0.8, 1e-12);    // 1 - 2/10
  EXPECT_NEAR(lr_factor(o, 11), 0.3, 1e-12);   // 1 - 7/10
  EXPECT_NEAR(lr_factor(o, 14), 0.0, 1e-12);
}

TEST(LrFactor, ConstantKeepsWarmup) {
  TrainingOptions o;
  o.max_steps = 100;
  o.warmup_steps = 5;
  o.lr_schedule = "constant";
  EXPECT_DOUBLE_EQ(lr_factor(o, 0), 0.2);
  EXPECT_DOUBLE_EQ(lr_factor(o, 4), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(o, 5), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(o, 99), 1.0);
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(lr_factor(o, 0), 1.0);
}

TEST(LrFactor, MinLrRatioIsTheFloor) {
  TrainingOptions o;
  o.max_steps = 10;
  o.warmup_steps = 0;
  o.min_lr_ratio = 0.1;
  o.lr_schedule = "cosine";
  EXPECT_DOUBLE_EQ(lr_factor(o, 0), 1.0);
  EXPECT_NEAR(lr_factor(o, 5), 0.55, 1e-12);  // 0.1 + 0.9 * 0.5
  EXPECT_NEAR(lr_factor(o, 10), 0.1, 1e-12);
  o.lr_schedule = "linear";
  EXPECT_NEAR(lr_factor(o, 2), 0.82, 1e-12);  // 0.1 + 0.9 * 0.8
  EXPECT_NEAR(lr_factor(o, 10), 0.1, 1e-12);
}

// --- optimizer: AdamW over flat buffers, clipping ---------------------------------

// Parameters of several shapes in two groups (decay with lr 0.01, no decay with lr
// 0.02), as the trainer builds them.
struct Params {
  std::vector<torch::Tensor> decay, no_decay;
};

Params make_params(uint64_t seed) {
  torch::manual_seed(seed);
  Params p;
  p.decay = {torch::randn({3, 4}), torch::randn({2, 2, 3}), torch::randn({5, 1})};
  p.no_decay = {torch::randn({4}), torch::randn({1}), torch::randn({6})};
  for (auto& t : p.decay) t.requires_grad_();
  for (auto& t : p.no_decay) t.requires_grad_();
  return p;
}

// Gradients for step `step`: parameter i of 6 has none on steps where (step + i) % 3 == 0,
// so runs of consecutive parameters break up and step counts drift apart.
void set_grads(Params& p, int step) {
  int i = 0;
  for (auto* group : {&p.decay, &p.no_decay}) {
    for (auto& t : *group) {
      const auto ramp = torch::arange(t.numel(), torch::kFloat32).view(t.sizes());
      t.mutable_grad() = (step + i) % 3 == 0 ? torch::Tensor()
                                              : torch::sin(ramp * (step + 1) + i) * (i + 1);
      ++i;
    }
  }
}

// Same values, moments and skipping as LibTorch's AdamW (after LibTorch's global-norm
// clipping) over 12 steps with two groups, clipping active on some steps only.
TEST(FlatAdamW, MatchesLibTorchAdamWWithClippingAndSkippedParameters) {
  Params ours = make_params(7), ref = make_params(7);
  FlatAdamW optimizer({{ours.decay, 0.01, 0.1}, {ours.no_decay, 0.02, 0.0}}, 0.9, 0.98, 1e-6);
  auto adamw = [](double lr, double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).betas({0.9, 0.98}).eps(1e-6).weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(ref.decay, adamw(0.01, 0.1));
  groups.emplace_back(ref.no_decay, adamw(0.02, 0.0));
  torch::optim::AdamW reference(groups, torch::optim::AdamWOptions(0.01));
  std::vector<torch::Tensor> all_ref = ref.decay;
  all_ref.insert(all_ref.end(), ref.no_decay.begin(), ref.no_decay.end());
  int clipped = 0;
  for (int step = 0; step < 12; ++step) {
    set_grads(ours, step);
    set_grads(ref, step);
    const double max_norm = step % 2 == 0 ? 3.0 : 100.0;
    double sum = 0;
    for (const auto& t : all_ref) {
      if (t.grad().defined()) sum += t.grad().pow(2).sum().item<double>();
    }
    const double norm = optimizer.step(max_norm);
    EXPECT_NEAR(norm, std::sqrt(sum), 1e-4 * std::sqrt(sum)) << "step " << step;
    clipped += norm > max_norm;
    torch::nn::utils::clip_grad_norm_(all_ref, max_norm);
    reference.step();
    for (size_t i = 0; i < all_ref.size(); ++i) {
      const auto& a = i < 3 ? ours.decay[i] : ours.no_decay[i - 3];
      ASSERT_TRUE(torch::allclose(a, all_ref[i], 1e-5, 1e-6))
          << "step " << step << " parameter " << i << "\n" << a - all_ref[i];
    }
  }
  EXPECT_GT(clipped, 2);
  EXPECT_LT(clipped, 12);
}

TEST(FlatAdamW, ParametersBecomeViewsOfOneBufferAndKeepTheirValues) {
  Params p = make_params(3);
  std::vector<torch::Tensor> before;
  for (const auto& t : p.decay) before.push_back(t.detach().clone());
  FlatAdamW optimizer({{p.decay, 0.1, 0.0}}, 0.9, 0.999, 1e-8);
  for (size_t i = 0; i < p.decay.size(); ++i) {
    EXPECT_TRUE(torch::equal(p.decay[i], before[i])) << i;
    EXPECT_TRUE(p.decay[i].is_contiguous());
    EXPECT_TRUE(p.decay[i].requires_grad());
    EXPECT_TRUE(p.decay[i].is_alias_of(p.decay[0])) << i;  // one storage
  }
  // Writes into a parameter (a checkpoint load) reach the optimizer's buffer.
  {
    torch::NoGradGuard no_grad;
    p.decay[1].fill_(2.0);
  }
  p.decay[1].mutable_grad() = torch::ones_like(p.decay[1]);
  optimizer.step(0.0);
  // First AdamW step: m/(sqrt(v)+eps) = 1 for a constant gradient, so 2 - lr.
  EXPECT_TRUE(torch::allclose(p.decay[1], torch::full_like(p.decay[1], 1.9), 1e-6, 1e-6));
  EXPECT_TRUE(torch::equal(p.decay[0], before[0]));  // no gradient: untouched
}

TEST(FlatAdamW, ReturnsThePreClipNormAndClipsOnlyAboveTheBound) {
  // Gradients (3, 4) and (12): global norm 13. A first Adam step moves every value by
  // lr whatever the scale, so the clip shows in the second moment: after clipping to
  // 1.3 the stored moments are those of gradients scaled by 0.1.
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({1}, torch::requires_grad());
  auto unused = torch::zeros({3}, torch::requires_grad());
  FlatAdamW optimizer({{{a, b, unused}, 0.1, 0.0}}, 0.5, 0.5, 1e-8);
  auto set = [&] {
    a.mutable_grad() = torch::tensor({3.0f, 4.0f});
    b.mutable_grad() = torch::tensor({12.0f});
  };
  set();
  EXPECT_NEAR(optimizer.step(1.3), 13.0, 1e-5);
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  torch::serialize::InputArchive in;
  std::istringstream stream(out.str());
  in.load_from(stream);
  torch::Tensor exp_avg, steps;
  in.read("group0.exp_avg", exp_avg, true);
  in.read("group0.steps", steps, true);
  // m = (1 - 0.5) * 0.1 * g.
  const auto expected = torch::tensor({0.15f, 0.2f, 0.6f, 0.f, 0.f, 0.f});
  EXPECT_TRUE(torch::allclose(exp_avg, expected, 1e-5, 1e-6)) << exp_avg;
  EXPECT_TRUE(torch::equal(steps, torch::tensor({1, 1, 0}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(unused, torch::zeros({3})));

  // Below the bound, or with clipping off, the gradients enter as they are.
  FlatAdamW loose({{{a, b}, 0.1, 0.0}}, 0.5, 0.5, 1e-8);
  set();
  EXPECT_NEAR(loose.step(20.0), 13.0, 1e-5);
  set();
  EXPECT_NEAR(loose.step(0.0), 13.0, 1e-5);
  EXPECT_TRUE(torch::equal(a.grad(), torch::tensor({3.0f, 4.0f})));  // never scaled in place
  a.mutable_grad() = torch::Tensor();
  b.mutable_grad() = torch::Tensor();
  EXPECT_EQ(loose.step(1.0), 0.0);
}

TEST(FlatAdamW, SaveLoadContinuesExactlyAndRejectsOtherShapes) {
  Params straight = make_params(5), resumed = make_params(5);
  FlatAdamW a({{straight.decay, 0.01, 0.1}, {straight.no_decay, 0.02, 0.0}}, 0.9, 0.999, 1e-8);
  FlatAdamW b({{resumed.decay, 0.01, 0.1}, {resumed.no_decay, 0.02, 0.0}}, 0.9, 0.999, 1e-8);
  for (int step = 0; step < 4; ++step) {
    set_grads(straight, step);
    a.step(1.0);
  }
  torch::serialize::OutputArchive archive;
  a.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < 3; ++i) resumed.decay[i].copy_(straight.decay[i]);
    for (size_t i = 0; i < 3; ++i) resumed.no_decay[i].copy_(straight.no_decay[i]);
  }
  torch::serialize::InputArchive in;
  std::istringstream stream(out.str());
  in.load_from(stream);
  b.load(in);
  for (int step = 4; step < 8; ++step) {
    set_grads(straight, step);
    set_grads(resumed, step);
    a.step(1.0);
    b.step(1.0);
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(torch::equal(straight.decay[i], resumed.decay[i])) << i;
    EXPECT_TRUE(torch::equal(straight.no_decay[i], resumed.no_decay[i])) << i;
  }

  // A state for other parameters, or none at all, is refused with what differs.
  Params other = make_params(5);
  other.decay.pop_back();
  FlatAdamW smaller({{other.decay, 0.01, 0.1}, {other.no_decay, 0.02, 0.0}}, 0.9, 0.999, 1e-8);
  torch::serialize::InputArchive again;
  std::istringstream stream2(out.str());
  again.load_from(stream2);
  EXPECT_THAT(error_of<c10::Error>([&] { smaller.load(again); }),
              HasSubstr("group 0: expected 2 parameters of 24 values, found 3 of 29"));
  torch::serialize::OutputArchive empty;
  std::ostringstream empty_out;
  empty.write("x", torch::zeros({1}));
  empty.save_to(empty_out);
  torch::serialize::InputArchive empty_in;
  std::istringstream empty_stream(empty_out.str());
  empty_in.load_from(empty_stream);
  EXPECT_THAT(error_of<c10::Error>([&] { smaller.load(empty_in); }),
              HasSubstr("expected optimizer state 'unitrain.flat_adamw.v1'"));
}

// The fused CPU step (one loop over every value, pieces on all threads) against the
// tensor-op path on parameters larger than one piece of work (2^16 values), with
// skipped parameters, clipping and weight decay, at 1 and 2 intra-op threads.
TEST(FlatAdamW, FusedCpuStepEqualsTheTensorOpPath) {
  const int threads = torch::get_num_threads();
  for (int t : {1, 2}) {
    torch::set_num_threads(t);
    auto make = [](uint64_t seed) {
      torch::manual_seed(seed);
      Params p;
      p.decay = {torch::randn({300, 700}), torch::randn({3, 5}), torch::randn({70000})};
      p.no_decay = {torch::randn({129}), torch::randn({1})};
      for (auto* g : {&p.decay, &p.no_decay}) {
        for (auto& x : *g) x.requires_grad_();
      }
      return p;
    };
    Params fused = make(11), ops = make(11);
    FlatAdamW a({{fused.decay, 0.01, 0.1}, {fused.no_decay, 0.02, 0.0}}, 0.9, 0.999, 1e-8);
    FlatAdamW b({{ops.decay, 0.01, 0.1}, {ops.no_decay, 0.02, 0.0}}, 0.9, 0.999, 1e-8);
    b.use_tensor_ops(true);
    for (int step = 0; step < 6; ++step) {
      set_grads(fused, step);
      set_grads(ops, step);
      const double max_norm = step % 2 == 0 ? 50.0 : 1e6;
      const double na = a.step(max_norm), nb = b.step(max_norm);
      EXPECT_NEAR(na, nb, 1e-6 * nb) << "threads " << t << " step " << step;
      for (size_t i = 0; i < 5; ++i) {
        const auto& x = i < 3 ? fused.decay[i] : fused.no_decay[i - 3];
        const auto& y = i < 3 ? ops.decay[i] : ops.no_decay[i - 3];
        ASSERT_TRUE(torch::allclose(x, y, 1e-6, 1e-7))
            << "threads " << t << " step " << step << " parameter " << i << ": max |diff| "
            << (x - y).abs().max().item<double>();
      }
    }
  }
  torch::set_num_threads(threads);
}

TEST(FlatAdamW, RejectsMixedDtypesInAGroup) {
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({2}, torch::dtype(torch::kFloat64).requires_grad(true));
  auto make = [&] { FlatAdamW({{{a, b}, 0.1, 0.0}}, 0.9, 0.999, 1e-8); };
  EXPECT_THAT(error_of<std::invalid_argument>(make),
              HasSubstr("group 0 mixes Float on cpu with Double on cpu"));
}

// --- gradient accumulation ---------------------------------------------------------

// 2 accumulated batches of 8 and 1 batch of 16 see the same 16 samples (the epoch
// permutation depends on seed, task and epoch only) and average the same per-sample
// losses, so one update gives the same parameters.
TEST(Trainer, AccumulationMatchesOneLargerBatch) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 1;
  j["training"]["lr"] = 0.05;
  j["training"]["warmup_steps"] = 0;
  j["tasks"]["majority"]["batch_size"] = 8;
  j["training"]["accumulate_steps"] = 2;
  Trainer accumulated(experiment(dir, j, "a.json"), registry(), quiet(dir / "a"));
  accumulated.train();
  j["tasks"]["majority"]["batch_size"] = 16;
  j["training"]["accumulate_steps"] = 1;
  const Experiment large_experiment = experiment(dir, j, "b.json");
  Trainer large(large_experiment, registry(), quiet(dir / "b"));
  large.train();
  Trainer untrained(large_experiment, registry(), quiet(dir / "c"));

  ASSERT_EQ(accumulated.history().size(), 1u);
  EXPECT_NEAR(accumulated.history()[0].loss, large.history()[0].loss, 1e-6);
  auto a = accumulated.model().named_parameters();
  auto b = large.model().named_parameters();
  auto init = untrained.model().named_parameters();
  ASSERT_EQ(a.size(), b.size());
  double moved = 0;
  for (const auto& item : b) {
    const auto& name = item.key();
    EXPECT_TRUE(torch::allclose(a[name], item.value(), /*rtol=*/0, /*atol=*/1e-6)) << name;
    moved = std::max(moved, (item.value() - init[name]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 1e-3) << "the update must change the parameters for the test to mean anything";
}

// --- resume ------------------------------------------------------------------------

// 20 steps straight vs 10 steps, a checkpoint, and a resumed run to 20: the same
// losses, bit for bit. A constant schedule after warmup, as the first half of a
// resumed run is trained with max_steps 10 and a decaying schedule depends on it.
void expect_exact_resume(const json& base) {
  test::TempDir dir;
  json j = base;
  j["training"]["lr_schedule"] = "constant";
  j["training"]["warmup_steps"] = 4;
  j["training"]["checkpoint_every"] = 10;
  j["training"]["max_steps"] = 20;
  Trainer straight(experiment(dir, j, "straight.json"), registry(), quiet(dir / "straight"));
  straight.train();

  j["training"]["max_steps"] = 10;
  Trainer first(experiment(dir, j, "first.json"), registry(), quiet(dir / "resumed"));
  first.train();
  j["training"]["max_steps"] = 20;
  Trainer second(experiment(dir, j, "second.json"), registry(), quiet(dir / "resumed", true));
  second.train();

  const auto all = losses(straight);
  ASSERT_EQ(all.size(), 20u);
  EXPECT_EQ(losses(first), std::vector<double>(all.begin(), all.begin() + 10));
  EXPECT_EQ(losses(second), std::vector<double>(all.begin() + 10, all.end()));
  ASSERT_EQ(second.history().size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(second.history()[i].step, straight.history()[10 + i].step);
    EXPECT_EQ(second.history()[i].task, straight.history()[10 + i].task) << i;
  }
  EXPECT_EQ(second.step(), 20);
  auto a = straight.model().named_parameters();
  for (const auto& item : second.model().named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), a[item.key()])) << item.key();
  }
}

TEST(Trainer, ResumeGivesBitIdenticalLosses) { expect_exact_resume(base_experiment()); }

TEST(Trainer, ResumeWithTwoTasksKeepsTheTaskSequence) {
  expect_exact_resume(two_task_experiment());
}

// The real text encoder, decoder and heads use dropout: exact resume also needs the
// torch generator restored. Two GLUE tasks of the toy suite.
TEST(Trainer, ResumeWithDropoutIsExact) {
  test::TempDir data;
  toy::ToySuiteOptions toy;
  toy.images = 5;
  toy.text_examples = 40;
  toy.image_size = 32;
  toy::make_toy_suite(data.path(), toy);
  const json tokenizer = {{"vocab", (data / "vocab.txt").string()}};
  auto task = [&](const std::string& name, const std::string& folder) {
    return json{{"dataset",
                 {{"type", "glue"}, {"task", name}, {"root", (data / "glue" / folder).string()},
                  {"tokenizer", tokenizer}, {"max_length", 24}}},
                {"encoders", {"text"}}, {"num_queries", 1}, {"batch_size", 4}, {"val_split", "dev"}};
  };
  json j = base_experiment();
  j["model"] = {
      {"encoders",
       {{"text",
         {{"type", "text"}, {"tokenizer", tokenizer}, {"hidden_dim", 16}, {"num_layers", 1},
          {"num_heads", 2}, {"intermediate_dim", 32}, {"max_position", 32}, {"output_dim", 16},
          {"dropout", 0.3}}}}},
      {"decoder",
       {{"type", "unit_decoder"}, {"d_model", 16}, {"num_layers", 1}, {"num_heads", 2},
        {"dim_feedforward", 32}, {"dropout", 0.3}}},
      {"heads",
       {{"sst2", {{"type", "mlp_classifier"}, {"in_dim", 16}, {"num_labels", 2}, {"dropout", 0.3}}},
        {"qnli", {{"type", "mlp_classifier"}, {"in_dim", 16}, {"num_labels", 2}, {"dropout", 0.3}}}}}};
  j["tasks"] = {{"sst2", task("sst2", "SST-2")}, {"qnli", task("qnli", "QNLI")}};
  j["training"]["eval_max_batches"] = 1;
  expect_exact_resume(j);
}

// A run of 20 steps writing a checkpoint every 5, and a run resumed in another folder
// from the first one's step-10 file: steps 10..19 give the same losses, tasks, logged
// learning rates and final parameters, bit for bit. Both runs have max_steps 20, so
// any schedule and warmup can be checked.
void expect_exact_resume_from_step_file(const json& base) {
  test::TempDir dir;
  json j = base;
  j["training"]["max_steps"] = 20;
  j["training"]["checkpoint_every"] = 5;
  j["training"]["keep_checkpoints"] = 4;
  j["training"]["log_every"] = 1;
  const Experiment e = experiment(dir, j);
  Trainer straight(e, registry(), quiet(dir / "straight"));
  straight.train();
  TrainerConfig config = quiet(dir / "resumed", true);
  config.resume_from = dir / "straight/checkpoints/step_00000010.pt";
  Trainer resumed(e, registry(), config);
  resumed.train();

  ASSERT_EQ(straight.history().size(), 20u);
  ASSERT_EQ(resumed.history().size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    const auto& a = straight.history()[10 + i];
    const auto& b = resumed.history()[i];
    EXPECT_EQ(b.step, a.step);
    EXPECT_EQ(b.task, a.task) << "step " << a.step;
    EXPECT_EQ(b.loss, a.loss) << "step " << a.step;
  }
  // The learning rate of every logged step (warmup and decay continue where they were).
  std::map<int64_t, double> lr;
  for (const auto& line : read_jsonl(dir / "straight/metrics.jsonl")) {
    if (line.contains("lr")) lr[line["step"].get<int64_t>()] = line["lr"].get<double>();
  }
  int64_t compared = 0;
  for (const auto& line : read_jsonl(dir / "resumed/metrics.jsonl")) {
    if (!line.contains("lr")) continue;
    const int64_t step = line["step"].get<int64_t>();
    EXPECT_GT(step, 10);
    EXPECT_EQ(line["lr"].get<double>(), lr.at(step)) << "step " << step;
    ++compared;
  }
  EXPECT_EQ(compared, 10);
  auto a = straight.model().named_parameters();
  for (const auto& item : resumed.model().named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), a[item.key()])) << item.key();
  }
}

TEST(Trainer, ResumeInsideTheWarmupOfALinearScheduleIsExact) {
  json j = two_task_experiment();
  j["training"]["lr_schedule"] = "linear";
  j["training"]["warmup_steps"] = 14;
  j["training"]["min_lr_ratio"] = 0.1;
  expect_exact_resume_from_step_file(j);
}

TEST(Trainer, ResumeDuringACosineDecayIsExact) {
  json j = two_task_experiment();
  j["training"]["lr_schedule"] = "cosine";
  j["training"]["warmup_steps"] = 3;
  expect_exact_resume_from_step_file(j);
}

// Micro-batches of one update come from different tasks; the scheduler and every
// loader must be saved between updates, not micro-batches.
TEST(Trainer, ResumeWithGradientAccumulationIsExact) {
  json j = two_task_experiment();
  j["training"]["accumulate_steps"] = 3;
  expect_exact_resume_from_step_file(j);
}

// Several loader threads prefetching ahead: the checkpoint holds the position of the
// batches consumed, not of those queued.
TEST(Trainer, ResumeWithSeveralLoaderWorkersIsExact) {
  json j = two_task_experiment();
  j["data"] = {{"workers", 3}, {"prefetch", 4}};
  j["scheduler"] = {{"type", "size_proportional"}};
  expect_exact_resume_from_step_file(j);
}

// --- a scheduler that listens ------------------------------------------------------

// SchedulerFeedback: the scheduler hears each update's loss before its next draw, so a
// loss-greedy strategy's choices follow the logged losses exactly, and each
// evaluation's metrics; what it heard is in its checkpointed state.
TEST(Trainer, SchedulerFeedbackHearsLossesAndEvaluations) {
  test::TempDir dir;
  json j = two_task_experiment();
  j["scheduler"] = {{"type", "test_loss_greedy"}};
  j["training"]["eval_every"] = 5;
  j["training"]["checkpoint_every"] = 5;
  j["training"]["max_steps"] = 12;
  const Experiment e = experiment(dir, j);
  Trainer trainer(e, registry(), quiet(dir / "run"));
  trainer.train();

  // Replay the strategy on the history: unseen tasks first, then the highest last loss.
  const auto& history = trainer.history();
  ASSERT_EQ(history.size(), 12u);
  std::map<std::string, double> last = {{"majority", -1.0}, {"majority_long", -1.0}};
  std::set<std::string> switched;
  for (const auto& record : history) {
    const std::string expected =
        last["majority"] == -1.0        ? "majority"
        : last["majority_long"] == -1.0 ? "majority_long"
        : last["majority_long"] > last["majority"] ? "majority_long" : "majority";
    EXPECT_EQ(record.task, expected) << "step " << record.step;
    last[record.task] = record.loss;
    switched.insert(record.task);
  }
  EXPECT_EQ(switched.size(), 2u);

  // The evaluations at steps 5 and 10 are in the step-10 checkpoint's scheduler state,
  // with the metrics metrics.jsonl logged.
  auto archive = open_checkpoint(dir / "run/checkpoints/step_00000010.pt");
  c10::IValue text;
  ASSERT_TRUE(archive.try_read("trainer", text));
  const json state = json::parse(text.toStringRef())["scheduler"];
  ASSERT_EQ(state["evaluations"].size(), 2u) << state.dump();
  std::map<int64_t, json> logged;
  for (const auto& line : read_jsonl(dir / "run/metrics.jsonl")) {
    if (line.contains("eval")) logged[line["step"].get<int64_t>()] = line["eval"];
  }
  EXPECT_EQ(state["evaluations"][0]["step"], 5);
  EXPECT_EQ(state["evaluations"][0]["metrics"], logged.at(5));
  EXPECT_EQ(state["evaluations"][1]["step"], 10);
  EXPECT_EQ(state["evaluations"][1]["metrics"], logged.at(10));
  // Each task's headline metric, from its evaluator, before each evaluation.
  EXPECT_EQ(state["evaluations"][0]["headlines"], json({"accuracy", "accuracy"}));
}

TEST(Trainer, ResumeWithASchedulerThatListensIsExact) {
  json j = two_task_experiment();
  j["scheduler"] = {{"type", "test_loss_greedy"}};
  j["training"]["eval_every"] = 4;
  j["training"]["accumulate_steps"] = 2;
  expect_exact_resume_from_step_file(j);
}

// --- non-finite losses -------------------------------------------------------------

TEST(Trainer, NanLossStopsWithStepTaskAndValue) {
  test::TempDir dir;
  json j = base_experiment();
  j["model"]["heads"]["majority"] = {{"type", "nan_head"}, {"nan_after_steps", 3}};
  Trainer trainer(experiment(dir, j), registry(), quiet(dir / "run"));
  const std::string message = error_of<TrainingError>([&] { trainer.train(); });
  EXPECT_THAT(message, HasSubstr("step 3: loss of task 'majority' is nan"));
  EXPECT_THAT(message, HasSubstr("loss_ce=nan"));
  EXPECT_THAT(message, HasSubstr("test_dataset:train:"));  // the batch's first record
  EXPECT_EQ(trainer.step(), 3);
}

// --- mixed precision ---------------------------------------------------------------

TEST(Autocast, Bf16ScopeRunsMatmulsInBfloat16OnTheCpu) {
  const auto a = torch::randn({4, 8}), b = torch::randn({8, 3});
  {
    train::AutocastScope scope("bf16", torch::kCPU);
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    {
      train::AutocastScope inner("bf16", torch::kCPU);
      EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    }
    // Still on after the inner scope ends.
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
  // layer_norm of a bfloat16 activation with float32 weights runs in float32 (LibTorch
  // 1.13's CPU autocast alone fails on it).
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({3}));
  const auto x = torch::mm(a, b).to(torch::kBFloat16);
  {
    train::AutocastScope scope("bf16", torch::kCPU);
    const auto y = norm(x);
    EXPECT_EQ(y.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::allclose(y, norm(x.to(torch::kFloat)), 1e-6, 1e-6));
  }
  train::AutocastScope off("off", torch::kCPU);
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
}

TEST(LossScaler, SkipsAndHalvesOnOverflowAndGrowsAfterItsInterval) {
  train::LossScaler scaler(1024.0, 2.0, 0.5, 3);
  EXPECT_FALSE(scaler.update(false));
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_EQ(scaler.skipped(), 1);
  EXPECT_TRUE(scaler.update(true));
  EXPECT_TRUE(scaler.update(true));
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_TRUE(scaler.update(true));  // the third finite update in a row
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_TRUE(scaler.update(true));
  EXPECT_FALSE(scaler.update(false));  // an overflow restarts the count
  EXPECT_EQ(scaler.scale(), 512.0);

  train::LossScaler restored(1024.0, 2.0, 0.5, 3);
  restored.load_state(scaler.state());
  EXPECT_EQ(restored.state(), scaler.state());
  EXPECT_EQ(restored.skipped(), 2);
  for (int i = 0; i < 3; ++i) restored.update(true);
  EXPECT_EQ(restored.scale(), 1024.0);

  auto p = torch::ones({3}).requires_grad_();
  (p * 512.0 * torch::tensor({1.0f, 2.0f, 4.0f})).sum().backward();
  scaler.unscale({p, torch::zeros({2}).requires_grad_()});  // one without a gradient
  EXPECT_TRUE(torch::equal(p.grad(), torch::tensor({1.0f, 2.0f, 4.0f})));
}

// bf16 autocast: the forward's matmuls in bfloat16, parameters and updates in float32.
// It trains as float32 does, its first loss within bfloat16's rounding of float32's but
// not equal to it, and resumes bit for bit.
TEST(Trainer, Bf16AutocastTrainsAndResumesExactly) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 60;
  j["training"]["warmup_steps"] = 5;
  Trainer plain(experiment(dir, j, "plain.json"), registry(), quiet(dir / "plain"));
  plain.train();
  j["training"]["autocast"] = "bf16";
  Trainer mixed(experiment(dir, j, "bf16.json"), registry(), quiet(dir / "bf16"));
  EvalResult result = mixed.train();
  const auto a = losses(plain), b = losses(mixed);
  ASSERT_EQ(b.size(), 60u);
  EXPECT_NE(a[0], b[0]) << "autocast must change the forward's precision";
  EXPECT_NEAR(a[0], b[0], 2e-2 * std::abs(a[0]));
  EXPECT_LT(mean(b, 40, 60), 0.2 * mean(b, 0, 20));
  EXPECT_GE(result["majority"]["accuracy"].get<double>(), 0.95) << result.dump();
  for (const auto& p : mixed.model().parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  json resumed = base_experiment();
  resumed["training"]["autocast"] = "bf16";
  expect_exact_resume(resumed);
}

TEST(Trainer, Fp16AutocastNeedsCudaAndOneTaskPerUpdate) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["autocast"] = "fp16";
  std::string message = error_of<ConfigError>([&] { Trainer t(experiment(dir, j), registry(), quiet(dir / "a")); });
  EXPECT_THAT(message, HasSubstr("/training/autocast"));
  EXPECT_THAT(message, HasSubstr("needs a CUDA device"));
  EXPECT_THAT(message, HasSubstr("use \"bf16\" on the CPU"));
  j["training"]["autocast"] = "fp32";
  message = error_of<ConfigError>([&] { Trainer t(experiment(dir, j), registry(), quiet(dir / "b")); });
  EXPECT_THAT(message, HasSubstr("/training/autocast: expected \"off\", \"bf16\" or \"fp16\", found \"fp32\""));
}

// float16 on a GPU: the loss scale is logged, kept in the checkpoint, and training
// learns the task.
TEST(Trainer, Fp16AutocastWithLossScale_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  test::TempDir dir;
  json j = base_experiment();
  j["device"] = "cuda";
  j["training"]["max_steps"] = 60;
  j["training"]["warmup_steps"] = 5;
  j["training"]["autocast"] = "fp16";
  Trainer trainer(experiment(dir, j), registry(), quiet(dir / "run"));
  EvalResult result = trainer.train();
  EXPECT_GE(result["majority"]["accuracy"].get<double>(), 0.95) << result.dump();
  const auto lines = read_jsonl(dir / "run" / "metrics.jsonl");
  bool logged = false;
  for (const auto& line : lines) logged = logged || line.contains("loss_scale");
  EXPECT_TRUE(logged);
  for (const auto& p : trainer.model().parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
}

// --- run folder and checkpoints ----------------------------------------------------

TEST(Trainer, RunFolderFiles) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 10;
  j["training"]["log_every"] = 5;
  j["training"]["eval_every"] = 5;
  j["training"]["checkpoint_every"] = 2;
  j["training"]["keep_checkpoints"] = 1;
  const Experiment e = experiment(dir, j);
  Trainer trainer(e, registry(), quiet(dir / "run"));
  const EvalResult result = trainer.train();
  const fs::path run = dir / "run";

  // Checkpoints at 2, 4, 6, 8 and 10; the newest plus keep_checkpoints = 1 remain.
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(run / "checkpoints")) {
    files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"last.pt", "step_00000008.pt", "step_00000010.pt"}));
  EXPECT_EQ(test::read_file(run / "checkpoints/last.pt"),
            test::read_file(run / "checkpoints/step_00000010.pt"));

  // metrics.jsonl: a log line at 5, an evaluation at 5, a log line at 10, the final
  // evaluation.
  const auto lines = read_jsonl(run / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  for (int i : {0, 2}) {
    const json& line = lines[i];
    EXPECT_EQ(line["step"], i == 0 ? 5 : 10);
    EXPECT_EQ(line["task"], "majority");
    EXPECT_TRUE(line["loss"].is_number_float());
    EXPECT_TRUE(line["loss_ce"].is_number_float());
    EXPECT_GT(line["samples_per_s"].get<double>(), 0.0);
    EXPECT_GT(line["grad_norm"].get<double>(), 0.0);
    EXPECT_NEAR(line["lr"].get<double>(), 1e-2 * lr_factor(training_options_from_json(
                                                                e.json["training"], e),
                                                            line["step"].get<int64_t>() - 1),
                1e-12);
  }
  EXPECT_DOUBLE_EQ(lines[2]["loss"].get<double>(), trainer.history().back().loss);
  for (int i : {1, 3}) {
    EXPECT_EQ(lines[i]["step"], i == 1 ? 5 : 10);
    EXPECT_TRUE(lines[i]["eval"]["majority"]["accuracy"].is_number()) << lines[i].dump();
  }
  EXPECT_EQ(lines[3]["eval"], result);

  EXPECT_EQ(json::parse(test::read_file(run / "eval.json")), result);
  EXPECT_EQ(json::parse(test::read_file(run / "experiment.resolved.json")), e.json);
  EXPECT_FALSE(fs::exists(run / "checkpoints/last.pt.tmp"));
}

// Per-task throughput counts every update of its task (history agrees), its samples at
// that task's batch size, and writes the same to throughput.json.
TEST(Trainer, ThroughputPerTask) {
  test::TempDir dir;
  json j = two_task_experiment();
  j["training"]["max_steps"] = 30;
  j["training"]["accumulate_steps"] = 1;
  const Experiment e = experiment(dir, j);
  Trainer trainer(e, registry(), quiet(dir / "run"));
  trainer.train();
  const json t = trainer.throughput();
  std::map<std::string, int64_t> updates;
  for (const auto& record : trainer.history()) ++updates[record.task];
  ASSERT_EQ(updates.size(), 2u);
  double share = 0;
  for (const auto& [task, n] : updates) {
    SCOPED_TRACE(task);
    const json& row = t.at(task);
    EXPECT_EQ(row.at("steps"), n);
    EXPECT_EQ(row.at("samples"), n * (task == "majority" ? 16 : 8));
    EXPECT_DOUBLE_EQ(row.at("share").get<double>(), n / 30.0);
    EXPECT_GT(row.at("seconds").get<double>(), 0.0);
    EXPECT_NEAR(row.at("it_per_s").get<double>(), n / row.at("seconds").get<double>(), 1e-9);
    EXPECT_NEAR(row.at("samples_per_s").get<double>(),
                row.at("samples").get<double>() / row.at("seconds").get<double>(), 1e-9);
    const json& phases = row.at("phases");
    double phase_sum = 0;
    for (const char* phase : {"data", "forward", "backward", "update"}) {
      EXPECT_GE(phases.at(phase).get<double>(), 0.0) << task << " " << phase;
      phase_sum += phases.at(phase).get<double>();
    }
    EXPECT_GT(phases.at("forward").get<double>(), 0.0) << task;
    EXPECT_GT(phases.at("update").get<double>(), 0.0) << task;
    EXPECT_NEAR(phase_sum, row.at("seconds").get<double>(), 1e-9) << task;
    share += row.at("share").get<double>();
  }
  EXPECT_DOUBLE_EQ(share, 1.0);
  EXPECT_EQ(t.at("all").at("steps"), 30);
  EXPECT_NEAR(t.at("all").at("seconds").get<double>(),
              t.at("majority").at("seconds").get<double>() +
                  t.at("majority_long").at("seconds").get<double>(),
              1e-9);
  EXPECT_EQ(json::parse(test::read_file(dir / "run/throughput.json")), t);

  const std::string table = trainer.throughput_table();
  EXPECT_NE(table.find("majority_long"), std::string::npos) << table;
  EXPECT_NE(table.find("\nall "), std::string::npos) << table;
}

class TrainedRun : public ::testing::Test {
 protected:
  void SetUp() override {
    json j = base_experiment();
    j["training"]["max_steps"] = 2;
    experiment_ = experiment(dir_, j);
    Trainer(experiment_, registry(), quiet(run_)).train();
  }
  test::TempDir dir_;
  fs::path run_ = dir_ / "run";
  Experiment experiment_;
};

TEST_F(TrainedRun, TruncatedCheckpointIsNotReadable) {
  const fs::path last = run_ / "checkpoints/last.pt";
  const auto size = fs::file_size(last);
  fs::resize_file(last, size / 2);
  const std::string resume = error_of<CheckpointError>(
      [&] { Trainer(experiment_, registry(), quiet(run_, true)).train(); });
  EXPECT_THAT(resume, HasSubstr(last.string() + ": not a readable checkpoint"));
  const std::string load = error_of<CheckpointError>(
      [&] { Trainer(experiment_, registry(), quiet(dir_ / "eval")).load_weights(run_); });
  EXPECT_THAT(load, HasSubstr(last.string() + ": not a readable checkpoint"));
}

TEST_F(TrainedRun, ExportedComponentIsNotAResumableCheckpoint) {
  const fs::path component = dir_ / "head.pt";
  save_component(export_component(find_checkpoint(run_), "heads/majority"), component);
  const fs::path other = dir_ / "other";
  fs::create_directories(other / "checkpoints");
  fs::copy_file(component, other / "checkpoints/last.pt");

  const std::string resume = error_of<CheckpointError>(
      [&] { Trainer(experiment_, registry(), quiet(other, true)).train(); });
  EXPECT_THAT(resume, HasSubstr("not a model checkpoint"));
  EXPECT_THAT(resume, HasSubstr("unitrain.component.v1"));
  const std::string load = error_of<CheckpointError>(
      [&] { Trainer(experiment_, registry(), quiet(dir_ / "eval")).load_weights(component); });
  EXPECT_THAT(load, HasSubstr(component.string() + ": not a model checkpoint"));
}

TEST_F(TrainedRun, LoadWeightsRestoresTheTrainedModel) {
  Trainer fresh(experiment_, registry(), quiet(dir_ / "eval"));
  fresh.load_weights(run_);
  // The parameters themselves are the checkpoint's "model" state, tensor for tensor.
  auto archive = open_checkpoint(find_checkpoint(run_));
  c10::IValue model_state;
  ASSERT_TRUE(archive.try_read("model", model_state));
  const auto saved_state = model_state.toGenericDict();
  const auto loaded = state_dict(fresh.model());
  ASSERT_EQ(loaded.size(), saved_state.size());
  for (const auto& entry : loaded) {
    ASSERT_TRUE(saved_state.contains(entry.key())) << entry.key();
    EXPECT_TRUE(torch::equal(entry.value(), saved_state.at(entry.key()).toTensor())) << entry.key();
  }
  const auto saved = read_jsonl(run_ / "metrics.jsonl").back()["eval"];
  EXPECT_EQ(fresh.evaluate(), saved);
}

// --- commands ----------------------------------------------------------------------

TEST(TrainCommand, TrainThenEvalPrintsMetrics) {
  test::TempDir dir;
  json j = base_experiment();
  j["training"]["max_steps"] = 30;
  test::write_file(dir / "exp.json", j.dump());
  const std::string plugins = "--plugin-dir '" + test::fixture("good") + "' ";
  auto train = test::run_unitrain(plugins + "train '" + (dir / "exp.json").string() + "' --out '" +
                                  (dir / "run").string() + "'");
  ASSERT_EQ(train.status, 0) << train.output;
  EXPECT_TRUE(fs::exists(dir / "run/checkpoints/last.pt"));

  auto eval = test::run_unitrain(plugins + "eval '" + (dir / "exp.json").string() +
                                 "' --checkpoint '" + (dir / "run").string() + "'");
  ASSERT_EQ(eval.status, 0) << eval.output;
  const auto start = eval.output.find('{');
  ASSERT_NE(start, std::string::npos) << eval.output;
  const json metrics = json::parse(eval.output.substr(start));
  EXPECT_EQ(metrics, json::parse(test::read_file(dir / "run/eval.json")));
  EXPECT_TRUE(metrics["majority"]["accuracy"].is_number());

  // A component file from `unitrain export` is not a checkpoint to evaluate.
  const std::string head = (dir / "head.pt").string();
  auto exported = test::run_unitrain("export '" + (dir / "run").string() +
                                     "' --component heads/majority --out '" + head + "'");
  ASSERT_EQ(exported.status, 0) << exported.output;
  auto wrong = test::run_unitrain(plugins + "eval '" + (dir / "exp.json").string() +
                                  "' --checkpoint '" + head + "'");
  EXPECT_EQ(wrong.status, 1);
  EXPECT_THAT(wrong.output, HasSubstr("error: " + head + ": not a model checkpoint (format "
                                      "'unitrain.component.v1'"));
}

TEST(TrainCommand, BadResumeFolderIsAnError) {
  test::TempDir dir;
  test::write_file(dir / "exp.json", base_experiment().dump());
  const std::string plugins = "--plugin-dir '" + test::fixture("good") + "' ";
  auto missing = test::run_unitrain(plugins + "train '" + (dir / "exp.json").string() +
                                    "' --resume '" + (dir / "nowhere").string() + "'");
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.output, HasSubstr("error: --resume '" + (dir / "nowhere").string() +
                                        "': no such run folder"));
  fs::create_directories(dir / "empty");
  auto empty = test::run_unitrain(plugins + "train '" + (dir / "exp.json").string() +
                                  "' --resume '" + (dir / "empty").string() + "'");
  EXPECT_EQ(empty.status, 1);
  EXPECT_THAT(empty.output, HasSubstr("error: '" + (dir / "empty").string() + "': no checkpoint"));
}

}  // namespace
}  // namespace unitrain

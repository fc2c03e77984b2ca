// Multi-task updates ("step": {"tasks", "combine", "cosine_every"}) on the test
// plugins: the plain sum equals accumulating the tasks' batches, every built-in rule
// resumes bit for bit, a rule loaded from a user's .so decides the update, gradient
// cosines are logged, and each mistake in the block is named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "test_util.h"
#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/scheduler.h"
#include "unitrain/trainer.h"
#include "train/multitask_step.h"
#include "train/uncertainty.h"

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
    r->load_directory(test::fixture("combine"));
    r->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

// Two tasks sharing the test encoder and decoder, each with its own head.
json two_tasks() {
  return json::parse(R"({
    "name": "multitask_test", "seed": 5, "threads": 1,
    "model": {
      "encoders": {"text": {"type": "test_encoder", "modality": "text", "dim": 16}},
      "decoder": {"type": "test_decoder", "dim": 16},
      "heads": {"short": {"type": "test_head", "in_dim": 16, "num_labels": 2},
                "long": {"type": "test_head", "in_dim": 16, "num_labels": 2}}
    },
    "tasks": {
      "short": {"dataset": {"type": "test_dataset", "size": 64, "length": 7},
                "encoders": ["text"], "num_queries": 1, "batch_size": 16},
      "long": {"dataset": {"type": "test_dataset", "size": 48, "length": 15},
               "encoders": ["text"], "num_queries": 1, "batch_size": 8}
    },
    "scheduler": {"type": "round_robin"},
    "training": {"max_steps": 6, "lr": 1e-2, "clip_grad_norm": 1.0, "log_every": 1,
                 "lr_schedule": "constant"},
    "data": {"workers": 1, "prefetch": 2}
  })");
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

// "all" + sum trains on both tasks' batches in one update: the same gradients as
// drawing them one after the other (round robin) and accumulating them. The
// accumulating run divides each batch's loss by accumulate_steps = 2, so it doubles
// the loss weights to give the same sum.
TEST(MultitaskStep, AllWithSumEqualsAccumulatingTheTasks) {
  test::TempDir dir;
  json j = two_tasks();
  j["step"] = {{"tasks", "all"}};
  Trainer combined(experiment(dir, j, "a.json"), registry(), quiet(dir / "a"));
  combined.train();
  json k = two_tasks();
  k["training"]["accumulate_steps"] = 2;
  k["tasks"]["short"]["loss_weight"] = 2.0;
  k["tasks"]["long"]["loss_weight"] = 2.0;
  Trainer accumulated(experiment(dir, k, "b.json"), registry(), quiet(dir / "b"));
  accumulated.train();

  ASSERT_EQ(combined.history().size(), 6u);
  for (const auto& record : combined.history()) EXPECT_EQ(record.task, "long+short");  // experiment order: JSON keys sorted
  auto a = accumulated.model().named_parameters();
  for (const auto& item : combined.model().named_parameters()) {
    EXPECT_TRUE(torch::allclose(item.value(), a[item.key()], /*rtol=*/0, /*atol=*/1e-6)) << item.key();
  }
  // Each task's loss (the mean over its micro-batches) and the rule's silence (sum has
  // no diagnostics).
  int64_t lines = 0;
  for (const auto& line : read_jsonl(dir / "a/metrics.jsonl")) {
    if (!line.contains("loss")) continue;
    ASSERT_TRUE(line.contains("task_losses")) << line.dump();
    const double sum = line["task_losses"]["short"].get<double>() + line["task_losses"]["long"].get<double>();
    EXPECT_NEAR(line["loss"].get<double>(), sum, 1e-12);
    EXPECT_FALSE(line.contains("combine"));
    ++lines;
  }
  EXPECT_EQ(lines, 6);
}

// 6 updates straight vs 3, a checkpoint and 3 more: the same losses and parameters bit
// for bit, with each built-in rule's learned state (weights, Adam moments, first losses,
// PCGrad's draws from the task engine) in the checkpoint.
class ResumeWithRule : public ::testing::TestWithParam<std::string> {};

TEST_P(ResumeWithRule, IsBitIdentical) {
  test::TempDir dir;
  json j = two_tasks();
  j["step"] = {{"tasks", "all"}, {"combine", {{"type", GetParam()}}}};
  j["training"]["checkpoint_every"] = 3;
  Trainer straight(experiment(dir, j, "straight.json"), registry(), quiet(dir / "straight"));
  straight.train();
  j["training"]["max_steps"] = 3;
  Trainer first(experiment(dir, j, "first.json"), registry(), quiet(dir / "resumed"));
  first.train();
  j["training"]["max_steps"] = 6;
  Trainer second(experiment(dir, j, "second.json"), registry(), quiet(dir / "resumed", true));
  second.train();

  ASSERT_EQ(straight.history().size(), 6u);
  ASSERT_EQ(second.history().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(first.history()[i].loss, straight.history()[i].loss) << i;
    EXPECT_EQ(second.history()[i].loss, straight.history()[3 + i].loss) << 3 + i;
  }
  auto a = straight.model().named_parameters();
  for (const auto& item : second.model().named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), a[item.key()])) << item.key();
  }
  // The rule's state after 6 updates is the same too (what the last log line shows).
  const auto straight_lines = read_jsonl(dir / "straight/metrics.jsonl");
  const auto resumed_lines = read_jsonl(dir / "resumed/metrics.jsonl");
  auto last_combine = [](const std::vector<json>& lines) {
    json found;
    for (const auto& line : lines) {
      if (line.contains("combine")) found = line["combine"];
    }
    return found;
  };
  EXPECT_EQ(last_combine(resumed_lines), last_combine(straight_lines));
}

INSTANTIATE_TEST_SUITE_P(BuiltInRules, ResumeWithRule,
                         ::testing::Values("sum", "uncertainty_weighting", "gradnorm", "pcgrad",
                                           "cagrad", "famo"));

// A rule from a user's library decides the update: with no update on the shared values
// the encoder and decoder keep their initial weights while the heads learn, and its
// call count (its diagnostics) reaches metrics.jsonl.
TEST(MultitaskStep, RuleFromAPluginLibraryDecidesTheUpdate) {
  test::TempDir dir;
  json j = two_tasks();
  j["training"]["weight_decay"] = 0.0;  // else decay alone would move the frozen values
  j["step"] = {{"tasks", 2}, {"combine", {{"type", "test_freeze_shared"}}}};
  const Experiment e = experiment(dir, j);
  Trainer trained(e, registry(), quiet(dir / "run"));
  trained.train();
  Trainer untrained(e, registry(), quiet(dir / "fresh"));
  auto init = untrained.model().named_parameters();
  int64_t shared = 0, own = 0;
  for (const auto& item : trained.model().named_parameters()) {
    // A head ("head_<task>.") and the decoder's queries of one task ("queries_<task>").
    const bool head = item.key().rfind("head_", 0) == 0 ||
                      item.key().find("queries_") != std::string::npos;
    if (head) {
      own += torch::equal(item.value(), init[item.key()]) ? 0 : 1;
    } else {
      EXPECT_TRUE(torch::equal(item.value(), init[item.key()])) << item.key();
      ++shared;
    }
  }
  EXPECT_GT(shared, 0);
  EXPECT_GT(own, 0) << "the heads must learn for the test to mean anything";
  int64_t step = 0;
  for (const auto& line : read_jsonl(dir / "run/metrics.jsonl")) {
    if (!line.contains("loss")) continue;
    ++step;
    EXPECT_EQ(line.at("combine").at("calls").get<int64_t>(), step);
  }
  EXPECT_EQ(step, 6);
}

TEST(MultitaskStep, CosinesOfTheTaskGradientsAreLogged) {
  test::TempDir dir;
  json j = two_tasks();
  j["step"] = {{"tasks", "all"}, {"cosine_every", 2}};
  Trainer trainer(experiment(dir, j), registry(), quiet(dir / "run"));
  trainer.train();
  std::vector<int64_t> steps;
  for (const auto& line : read_jsonl(dir / "run/metrics.jsonl")) {
    if (!line.contains("grad_cosine")) continue;
    steps.push_back(line["step"].get<int64_t>());
    ASSERT_EQ(line["grad_cosine"].size(), 1u) << line.dump();
    const double c = line["grad_cosine"]["long|short"].get<double>();
    EXPECT_GE(c, -1.0);
    EXPECT_LE(c, 1.0);
    EXPECT_NE(c, 0.0);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 4, 6}));
}

TEST(MultitaskStep, GradientCosinesOfKnownRows) {
  const torch::Tensor rows = torch::tensor({1.0, 0.0, 0.0, 1.0, 1.0, 0.0, -2.0, 0.0, 0.0}).view({3, 3});
  const json c = train::gradient_cosines(rows, {"a", "b", "c"});
  EXPECT_NEAR(c["a|b"].get<double>(), 1 / std::sqrt(2.0), 1e-7);
  EXPECT_NEAR(c["a|c"].get<double>(), -1.0, 1e-7);
  EXPECT_NEAR(c["b|c"].get<double>(), -1 / std::sqrt(2.0), 1e-7);
  EXPECT_EQ(train::gradient_cosines(torch::zeros({2, 3}), {"a", "b"})["a|b"].get<double>(), 0.0);
}

// k of the tasks, drawn by the scheduler without repeats.
TEST(MultitaskStep, DrawsKDistinctTasksFromTheScheduler) {
  test::TempDir dir;
  json j = two_tasks();
  j["scheduler"] = {{"type", "ratios"}};
  j["tasks"]["short"]["ratio"] = 0.9;
  j["tasks"]["long"]["ratio"] = 0.1;
  j["step"] = {{"tasks", 2}};
  Trainer trainer(experiment(dir, j), registry(), quiet(dir / "run"));
  trainer.train();
  for (const auto& record : trainer.history()) {
    EXPECT_TRUE(record.task == "short+long" || record.task == "long+short") << record.task;
  }
  j["tasks"]["long"]["ratio"] = 0.0;  // only "short" (task 1) is ever drawn
  Trainer starved(experiment(dir, j, "starved.json"), registry(), quiet(dir / "starved"));
  EXPECT_THAT(error_of<TrainingError>([&] { starved.train(); }),
              HasSubstr("drew only 1 distinct task(s) (short) in 2000 draws, and /step/tasks asks for 2"));
}

TEST(MultitaskStep, MistakesInTheStepBlockAreNamed) {
  test::TempDir dir;
  auto error = [&](const json& step) {
    json j = two_tasks();
    j["step"] = step;
    return error_of<ConfigError>([&] { experiment(dir, j); });
  };
  EXPECT_THAT(error({{"tasks", 3}}),
              HasSubstr("exp.json:/step/tasks: expected \"all\" or an integer from 1 to 2 (the "
                        "number of tasks), found 3"));
  EXPECT_THAT(error({{"tasks", "every"}}), HasSubstr("/step/tasks: expected \"all\""));
  EXPECT_THAT(error({{"task", 2}}), HasSubstr("/step/task: unknown key 'task'; valid keys: tasks"));
  EXPECT_THAT(error({{"cosine_every", -1}}), HasSubstr("/step/cosine_every: expected an integer >= 0"));
  EXPECT_THAT(error({{"tasks", 2}, {"combine", {{"type", "pcgrd"}}}}),
              HasSubstr("/step/combine/type: "));
  EXPECT_THAT(error({{"tasks", 2}, {"combine", {{"type", "pcgrd"}}}}), HasSubstr("pcgrad"));
  EXPECT_THAT(error({{"tasks", 2}, {"combine", {{"type", "cagrad"}, {"alpah", 1}}}}),
              HasSubstr("/step/combine/alpah: unknown key 'alpah'; valid keys: alpha"));
}

// --- uncertainty sampling (CA-MTL) ---------------------------------------------------

TEST(UncertaintySampling, NormalizedEntropiesOfKnownPredictions) {
  Predictions p;
  p.scores = torch::tensor({1.0f, 0.0f, 0.0f, 0.5f, 0.5f, 0.0f, 1 / 3.f, 1 / 3.f, 1 / 3.f}).view({3, 3});
  const auto e = train::normalized_entropies(p);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_NEAR(e[0], 0.0, 1e-12);
  EXPECT_NEAR(e[1], std::log(2.0) / std::log(3.0), 1e-7);
  EXPECT_NEAR(e[2], 1.0, 1e-6);
  // Independent sigmoids (VQA) are renormalized first: (0.9, 0.9) is a coin flip.
  Predictions vqa;
  vqa.scores = torch::tensor({0.9f, 0.9f}).view({1, 2});
  EXPECT_NEAR(train::normalized_entropies(vqa)[0], 1.0, 1e-7);
  // Detections: the mean binary entropy of the scores.
  Predictions boxes;
  boxes.detections = {{Detection{0, 0, 1, 1, 0.5f, 1}}, {Detection{0, 0, 1, 1, 1.0f, 1}, Detection{0, 0, 1, 1, 0.0f, 2}}, {}};
  EXPECT_EQ(train::normalized_entropies(boxes), (std::vector<double>{1.0, 0.0, 0.0}));
}

TEST(UncertaintySampling, SchedulerDrawsByMeanEntropyAndKeepsTheMostUncertain) {
  auto s = registry().create_as<TaskScheduler>("scheduler", "uncertainty", {{"keep", 0.5}}, "test");
  s->setup({{"a", 10, 1, 1.0}, {"b", 10, 1, 1.0}});
  auto* sampling = dynamic_cast<UncertaintySampling*>(s.get());
  ASSERT_NE(sampling, nullptr);
  TaskRng rng(3);
  const std::vector<std::vector<double>> entropy = {{0.1, 0.3, 0.2, 0.2}, {0.9, 0.5, 0.95, 0.1, 0.7}};
  int64_t b = 0;
  const int64_t draws = 20000;
  for (int64_t i = 0; i < draws; ++i) {
    const auto choice = sampling->choose({0.2, 0.8}, entropy, rng);
    if (choice.task == 1) {
      ++b;
      EXPECT_EQ(choice.examples, (std::vector<int64_t>{0, 2, 4}));  // ceil(2.5) most uncertain
    } else {
      EXPECT_EQ(choice.examples, (std::vector<int64_t>{1, 2}));  // a tie keeps the first
    }
  }
  // p = (0.2 / 0.8, 0.8 / 0.8) normalized = (0.2, 0.8); 5 standard deviations.
  EXPECT_NEAR(static_cast<double>(b) / draws, 0.8, 5 * std::sqrt(0.16 / draws));
  EXPECT_EQ(s->probabilities(), (std::vector<double>{0.2, 0.8}));
  auto greedy = registry().create_as<TaskScheduler>("scheduler", "uncertainty", {{"greedy", true}}, "test");
  greedy->setup({{"a", 10, 1, 1.0}, {"b", 10, 1, 1.0}});
  EXPECT_EQ(dynamic_cast<UncertaintySampling*>(greedy.get())->choose({0.6, 0.5}, entropy, rng).task, 0u);
}

// Training with it: each update trains on the kept share of the chosen task's candidate
// batch, every task's mean entropy is logged, and a resumed run goes on exactly.
TEST(UncertaintySampling, TrainsOnTheChosenRowsAndResumesExactly) {
  test::TempDir dir;
  json j = two_tasks();
  j["scheduler"] = {{"type", "uncertainty"}, {"keep", 0.25}};
  j["training"]["checkpoint_every"] = 3;
  Trainer straight(experiment(dir, j, "straight.json"), registry(), quiet(dir / "straight"));
  straight.train();
  const json throughput = straight.throughput();
  // short: batch 16 -> 4 rows; long: batch 8 -> 2 rows.
  EXPECT_EQ(throughput["short"]["samples"].get<int64_t>(), 4 * throughput["short"]["steps"].get<int64_t>());
  EXPECT_EQ(throughput["long"]["samples"].get<int64_t>(), 2 * throughput["long"]["steps"].get<int64_t>());
  int64_t lines = 0;
  for (const auto& line : read_jsonl(dir / "straight/metrics.jsonl")) {
    if (!line.contains("loss")) continue;
    ++lines;
    for (const char* task : {"short", "long"}) {
      const double e = line.at("uncertainty").at(task).get<double>();
      EXPECT_GT(e, 0.0);
      EXPECT_LE(e, 1.0);
    }
  }
  EXPECT_EQ(lines, 6);

  j["training"]["max_steps"] = 3;
  Trainer first(experiment(dir, j, "first.json"), registry(), quiet(dir / "resumed"));
  first.train();
  j["training"]["max_steps"] = 6;
  Trainer second(experiment(dir, j, "second.json"), registry(), quiet(dir / "resumed", true));
  second.train();
  ASSERT_EQ(second.history().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(second.history()[i].task, straight.history()[3 + i].task);
    EXPECT_EQ(second.history()[i].loss, straight.history()[3 + i].loss);
  }
  auto a = straight.model().named_parameters();
  for (const auto& item : second.model().named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), a[item.key()])) << item.key();
  }
}

}  // namespace
}  // namespace unitrain

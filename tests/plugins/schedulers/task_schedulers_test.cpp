// Scheduling strategies: frequencies against their targets (chi-square, fixed seed),
// formulas on known numbers, determinism and state round trips.
#include <algorithm>
#include <cmath>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_util.h"
#include "unitrain/registry.h"
#include "unitrain/scheduler.h"

namespace unitrain {
namespace {

using json = nlohmann::json;

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry();
    reg->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return reg;
  }();
  return *r;
}

std::shared_ptr<TaskScheduler> make(const std::string& name, const json& options,
                                    const std::vector<SchedulerTask>& tasks) {
  auto s = registry().create_as<TaskScheduler>("scheduler", name, options, "test:/scheduler");
  s->setup(tasks);
  return s;
}

// UniT's eight tasks with made-up sizes and batch size 8.
std::vector<SchedulerTask> unit_tasks() {
  const std::vector<std::pair<std::string, double>> ratios = {
      {"coco", .20}, {"vg", .07}, {"snli_ve", .12}, {"vqa2", .26},
      {"qnli", .10}, {"mnli_mm", .10}, {"qqp", .10}, {"sst2", .05}};
  std::vector<SchedulerTask> tasks;
  int64_t size = 400;
  for (const auto& [name, ratio] : ratios) {
    tasks.push_back({name, size, (size + 7) / 8, ratio});
    size += 160;
  }
  return tasks;
}

std::vector<int64_t> counts(TaskScheduler& s, size_t k, int64_t draws, uint64_t seed) {
  TaskRng rng(seed);
  std::vector<int64_t> c(k, 0);
  for (int64_t i = 0; i < draws; ++i) ++c.at(s.next(rng));
  return c;
}

// Pearson's statistic of observed counts against expected probabilities.
double chi_square(const std::vector<int64_t>& observed, const std::vector<double>& p) {
  double n = 0, stat = 0;
  for (auto o : observed) n += static_cast<double>(o);
  for (size_t i = 0; i < p.size(); ++i) {
    double e = n * p[i];
    stat += (observed[i] - e) * (observed[i] - e) / e;
  }
  return stat;
}

// 99.9 % quantile of chi-square with 7 degrees of freedom.
constexpr double kChi2Df7 = 24.32;

TEST(TaskRng, SameSeedSameSequenceAndStateRoundTrip) {
  TaskRng a(42), b(42), c(43);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(a.next(), c.next());
  json saved = a.state();
  uint64_t expected = a.next();
  TaskRng restored(0);
  restored.load_state(saved);
  EXPECT_EQ(restored.next(), expected);
  for (int i = 0; i < 1000; ++i) {
    double u = a.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(SampleIndex, InvertsTheCdfAndSkipsZeroProbabilities) {
  std::vector<double> p = {0.25, 0.0, 0.5, 0.25};
  EXPECT_EQ(sample_index(p, 0.0), 0u);
  EXPECT_EQ(sample_index(p, 0.2499), 0u);
  EXPECT_EQ(sample_index(p, 0.25), 2u);
  EXPECT_EQ(sample_index(p, 0.7499), 2u);
  EXPECT_EQ(sample_index(p, 0.75), 3u);
  EXPECT_EQ(sample_index(p, 0.9999999999), 3u);
  EXPECT_EQ(sample_index({0.0, 2.0, 0.0}, 0.5), 1u);  // unnormalized weights work too
}

TEST(Ratios, FrequenciesMatchUnitRatios) {
  auto tasks = unit_tasks();
  auto s = make("ratios", json::object(), tasks);
  auto p = s->probabilities();
  EXPECT_NEAR(p[3], 0.26, 1e-12);
  EXPECT_NEAR(p[7], 0.05, 1e-12);
  EXPECT_LT(chi_square(counts(*s, 8, 40000, 7), p), kChi2Df7);
}

TEST(Ratios, SameSeedSameTaskSequence) {
  auto tasks = unit_tasks();
  auto a = make("ratios", json::object(), tasks);
  auto b = make("ratios", json::object(), tasks);
  TaskRng ra(5), rb(5);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(a->next(ra), b->next(rb));
}

TEST(Uniform, FrequenciesAreEqual) {
  auto s = make("uniform", json::object(), unit_tasks());
  EXPECT_LT(chi_square(counts(*s, 8, 40000, 11), std::vector<double>(8, 0.125)), kChi2Df7);
}

TEST(RoundRobin, CyclesAndResumes) {
  auto s = make("round_robin", json::object(), unit_tasks());
  TaskRng rng(0);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(s->next(rng), i % 8);
  auto state = s->state();
  auto t = make("round_robin", json::object(), unit_tasks());
  t->load_state(state);
  EXPECT_EQ(t->next(rng), 20u % 8);
}

TEST(Temperature, FormulaOnKnownNumbers) {
  // sizes 100 and 900, T = 2: weights sqrt(.1) and sqrt(.9) -> p = 1/4, 3/4.
  std::vector<SchedulerTask> tasks = {{"a", 100, 10, 1}, {"b", 900, 90, 1}};
  auto p = make("temperature", {{"temperature", 2.0}}, tasks)->probabilities();
  EXPECT_NEAR(p[0], 0.25, 1e-12);
  EXPECT_NEAR(p[1], 0.75, 1e-12);
  // T = 1 is size proportional; a cap K = 100 makes both equal.
  p = make("temperature", {{"temperature", 1.0}}, tasks)->probabilities();
  EXPECT_NEAR(p[0], 0.1, 1e-12);
  p = make("temperature", {{"temperature", 1.0}, {"size_cap", 100}}, tasks)->probabilities();
  EXPECT_NEAR(p[0], 0.5, 1e-12);
}

TEST(Temperature, FrequenciesMatch) {
  auto s = make("temperature", {{"temperature", 3.0}}, unit_tasks());
  EXPECT_LT(chi_square(counts(*s, 8, 40000, 13), s->probabilities()), kChi2Df7);
}

TEST(SizeProportional, EveryBatchOfAnEpochOnceThenANewEpoch) {
  auto tasks = unit_tasks();
  auto s = make("size_proportional", json::object(), tasks);
  int64_t epoch = 0;
  for (const auto& t : tasks) epoch += t.batches_per_epoch;
  // Over two whole epochs every task is drawn exactly twice its batches per epoch.
  auto c = counts(*s, 8, 2 * epoch, 17);
  for (size_t i = 0; i < tasks.size(); ++i) EXPECT_EQ(c[i], 2 * tasks[i].batches_per_epoch) << i;
  EXPECT_EQ(s->state()["epoch"], 2);
}

TEST(SizeProportional, FirstDrawsFollowSizes) {
  // Over the first fifth of an epoch no task is exhausted: frequencies ∝ n_i.
  auto tasks = unit_tasks();
  for (auto& t : tasks) t.batches_per_epoch *= 1000;  // never exhausted in this test
  auto s = make("size_proportional", json::object(), tasks);
  auto p = s->probabilities();
  EXPECT_NEAR(p[0], 400.0 / (8 * 400 + 160 * 28), 1e-12);
  EXPECT_LT(chi_square(counts(*s, 8, 40000, 19), p), kChi2Df7);
}

TEST(Annealed, AlphaGoesFromOneToPointTwo) {
  // sizes 100 and 400, 10 batches per epoch in all, E = 5.
  std::vector<SchedulerTask> tasks = {{"a", 100, 2, 1}, {"b", 400, 8, 1}};
  auto s = make("annealed", {{"num_epochs", 5}}, tasks);
  TaskRng rng(1);
  // epoch 0: alpha 1 -> p = 100/500
  EXPECT_NEAR(s->probabilities()[0], 0.2, 1e-12);
  for (int i = 0; i < 20; ++i) s->next(rng);  // now epoch 2: alpha = 1 - 0.8*2/4 = 0.6
  double a = std::pow(100.0, 0.6), b = std::pow(400.0, 0.6);
  EXPECT_NEAR(s->probabilities()[0], a / (a + b), 1e-12);
  for (int i = 0; i < 100; ++i) s->next(rng);  // past the last epoch: alpha stays 0.2
  a = std::pow(100.0, 0.2), b = std::pow(400.0, 0.2);
  EXPECT_NEAR(s->probabilities()[0], a / (a + b), 1e-12);
}

TEST(Annealed, FrequenciesMatchInTheFirstEpoch) {
  auto tasks = unit_tasks();
  for (auto& t : tasks) t.batches_per_epoch *= 1000;
  auto s = make("annealed", {{"num_epochs", 3}}, tasks);
  auto p = s->probabilities();
  EXPECT_LT(chi_square(counts(*s, 8, 40000, 23), p), kChi2Df7);
}

TEST(Schedulers, BadOptionsAreRejected) {
  EXPECT_THROW(make("temperature", {{"temperature", 0.0}}, unit_tasks()), RegistryError);
  EXPECT_THROW(make("annealed", {{"num_epochs", 0}}, unit_tasks()), RegistryError);
  auto s = registry().create_as<TaskScheduler>("scheduler", "ratios", json::object(), "t:/s");
  std::vector<SchedulerTask> zero = {{"a", 10, 1, 0.0}};
  EXPECT_THROW(s->setup(zero), std::invalid_argument);
}

// Every registered strategy, stopped in the middle of an epoch (and of the annealed
// schedule) and restored from its state as a checkpoint holds it (JSON text), goes on
// with the very draws of the one that kept running. A strategy whose state is not the
// fresh one must also differ from a fresh instance, or the round trip proves nothing.
TEST(Schedulers, EveryStrategyResumesMidEpochExactly) {
  std::vector<SchedulerTask> tasks = {{"a", 40, 5, 0.5}, {"b", 24, 3, 0.3}, {"c", 56, 7, 0.2}};
  const int64_t epoch = 5 + 3 + 7;
  const auto schedulers = registry().list("scheduler");
  ASSERT_GE(schedulers.size(), 6u);
  for (const auto& info : schedulers) {
    SCOPED_TRACE(info.name);
    const json options = info.name == "annealed" ? json{{"num_epochs", 4}} : json::object();
    auto running = make(info.name, options, tasks);
    TaskRng rng(99);
    for (int64_t i = 0; i < epoch + epoch / 2; ++i) running->next(rng);  // 1.5 epochs

    const std::string saved = running->state().dump();
    const std::string saved_rng = rng.state().dump();
    auto restored = make(info.name, options, tasks);
    restored->load_state(json::parse(saved));
    TaskRng restored_rng;
    restored_rng.load_state(json::parse(saved_rng));
    auto fresh = make(info.name, options, tasks);
    TaskRng fresh_rng;
    fresh_rng.load_state(json::parse(saved_rng));

    std::vector<size_t> expected, got, from_fresh;
    for (int64_t i = 0; i < 3 * epoch; ++i) {
      expected.push_back(running->next(rng));
      got.push_back(restored->next(restored_rng));
      from_fresh.push_back(fresh->next(fresh_rng));
    }
    EXPECT_EQ(got, expected);
    EXPECT_EQ(restored->state(), running->state());
    if (json::parse(saved) != make(info.name, options, tasks)->state()) {
      EXPECT_NE(from_fresh, expected) << "the state changes nothing";
    }
  }
}

// MT-DNN: each epoch is a shuffled list holding every batch of every task once.
TEST(MtdnnEpoch, EveryBatchOfEveryTaskOncePerEpochShuffled) {
  const std::vector<SchedulerTask> tasks = {{"a", 30, 3, 1.0}, {"b", 10, 1, 1.0}, {"c", 50, 5, 1.0}};
  auto s = make("mtdnn_epoch", json::object(), tasks);
  EXPECT_THAT(s->probabilities(), ::testing::ElementsAre(3.0 / 9, 1.0 / 9, 5.0 / 9));
  TaskRng rng(11);
  std::vector<std::vector<size_t>> epochs(4);
  for (auto& epoch : epochs) {
    for (int i = 0; i < 9; ++i) {
      epoch.push_back(s->next(rng));
      if (i == 0) {
        // What is left of the epoch after its first draw.
        std::vector<double> left = {3, 1, 5};
        left[epoch[0]] -= 1;
        EXPECT_THAT(s->probabilities(), ::testing::ElementsAre(left[0] / 8, left[1] / 8, left[2] / 8));
      }
    }
    std::vector<size_t> sorted = epoch;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<size_t>{0, 0, 0, 1, 2, 2, 2, 2, 2}));
  }
  std::set<std::vector<size_t>> distinct(epochs.begin(), epochs.end());
  EXPECT_GE(distinct.size(), 3u) << "epochs must be shuffled anew";
  EXPECT_EQ(s->state()["epoch"], 4);
}

// 12-in-1's stop-and-go on a scripted sequence of validation metrics (defaults: gain
// below 0.1 % twice in a row stops a task; stopped tasks train every 4th turn; a drop
// of more than 0.5 % below the best restarts it).
TEST(StopAndGo, StopsAPlateauedTaskAndRestartsItWhenItDegrades) {
  const std::vector<SchedulerTask> tasks = {{"a", 10, 1, 1.0}, {"b", 10, 1, 1.0}, {"c", 10, 1, 1.0}};
  auto s = make("stop_and_go", json::object(), tasks);
  auto* feedback = dynamic_cast<SchedulerFeedback*>(s.get());
  ASSERT_NE(feedback, nullptr);
  TaskRng rng(1);
  auto draws = [&](int n) {
    std::vector<size_t> out;
    for (int i = 0; i < n; ++i) out.push_back(s->next(rng));
    return out;
  };
  auto evaluate = [&](double a, double b, double c) {
    feedback->observe_evaluation(0, {{"a", {{"accuracy", a}}}, {"b", {{"accuracy", b}}},
                                     {"c", {{"accuracy", c}, {"f1", 0.0}}}});
  };
  EXPECT_EQ(draws(6), (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
  evaluate(0.50, 0.50, 0.50);
  evaluate(0.5002, 0.60, 0.55);  // a gains 0.04 %: once
  EXPECT_EQ(draws(3), (std::vector<size_t>{0, 1, 2}));
  evaluate(0.5003, 0.70, 0.56);  // a gains 0.02 %: twice in a row, stopped
  EXPECT_EQ(s->probabilities(), (std::vector<double>{0.25 / 2.25, 1 / 2.25, 1 / 2.25}));
  EXPECT_EQ(draws(10), (std::vector<size_t>{1, 2, 1, 2, 1, 2, 0, 1, 2, 1}));
  evaluate(0.4985, 0.80, 0.57);  // 0.36 % below its best 0.5003: still stopped
  EXPECT_EQ(draws(4), (std::vector<size_t>{2, 1, 2, 1}));
  evaluate(0.4970, 0.90, 0.58);  // 0.66 % below its best: trains again
  EXPECT_EQ(draws(6), (std::vector<size_t>{2, 0, 1, 2, 0, 1}));
  EXPECT_EQ(s->probabilities(), (std::vector<double>{1.0 / 3, 1.0 / 3, 1.0 / 3}));
}

TEST(StopAndGo, OptionsChangeTheThresholdsAndTheStoppedRhythm) {
  const std::vector<SchedulerTask> tasks = {{"a", 10, 1, 1.0}, {"b", 10, 1, 1.0}};
  auto s = make("stop_and_go", {{"min_gain", 0.05}, {"patience", 1}, {"stopped_every", 2}}, tasks);
  auto* feedback = dynamic_cast<SchedulerFeedback*>(s.get());
  TaskRng rng(1);
  feedback->observe_evaluation(0, {{"a", {{"ap", 0.2}}}, {"b", {{"ap", 0.2}}}});
  feedback->observe_evaluation(0, {{"a", {{"ap", 0.205}}}, {"b", {{"ap", 0.3}}}});  // a: +2.5 %
  std::vector<size_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(s->next(rng));
  EXPECT_EQ(got, (std::vector<size_t>{1, 0, 1, 1, 0, 1}));
  EXPECT_THAT(test::error_of<std::exception>([&] { make("stop_and_go", {{"patience", 0}}, tasks); }),
              ::testing::HasSubstr("patience must be >= 1"));
}

// The trainer names each task's headline (its evaluator's): stop-and-go reads that
// metric, not the alphabetically first one. Here task a's "ap" plateaus while its
// headline "ap50" rises, and task b has no headline (read: its first metric).
TEST(StopAndGo, ReadsTheHeadlineMetricItIsTold) {
  const std::vector<SchedulerTask> tasks = {{"a", 10, 1, 1.0}, {"b", 10, 1, 1.0}};
  auto s = make("stop_and_go", {{"patience", 1}}, tasks);
  auto* feedback = dynamic_cast<SchedulerFeedback*>(s.get());
  auto* headlines = dynamic_cast<HeadlineMetrics*>(s.get());
  ASSERT_NE(headlines, nullptr);
  auto evaluate = [&](double ap, double ap50, double b) {
    headlines->observe_headlines({"ap50", ""});
    feedback->observe_evaluation(0, {{"a", {{"ap", ap}, {"ap50", ap50}}}, {"b", {{"accuracy", b}}}});
  };
  evaluate(0.30, 0.50, 0.5);
  evaluate(0.30, 0.60, 0.5);  // a's ap is flat, its ap50 gains; b is flat: stopped
  EXPECT_EQ(s->probabilities(), (std::vector<double>{1 / 1.25, 0.25 / 1.25}));
}

}  // namespace
}  // namespace unitrain

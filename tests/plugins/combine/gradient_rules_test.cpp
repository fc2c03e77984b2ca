// The built-in combine rules on two-task examples worked out by hand: the update on the
// shared values, the factors on each task's own parameters, what the learned weights do
// after an update, and state round trips.
#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_util.h"
#include "unitrain/combine.h"
#include "unitrain/registry.h"

namespace unitrain {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry();  // leaked: plugin libraries are never unloaded
    reg->load_directory(UNITRAIN_TEST_PLUGIN_DIR);
    return reg;
  }();
  return *r;
}

std::shared_ptr<GradientCombiner> make(const std::string& name, const json& options = json::object()) {
  auto rule = registry().create_as<GradientCombiner>("combine", name, options, "test:/step/combine");
  rule->setup({"a", "b"});
  return rule;
}

// Rows g_a, g_b (float64, so that expectations can be tight) and the tasks' losses.
TaskGradients two(std::vector<double> a, std::vector<double> b, std::vector<double> losses) {
  TaskGradients in;
  in.tasks = {0, 1};
  in.losses = std::move(losses);
  const auto n = static_cast<int64_t>(a.size());
  a.insert(a.end(), b.begin(), b.end());
  in.shared = torch::tensor(a, torch::kFloat64).view({2, n});
  return in;
}

std::vector<double> values(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "entry " << i;
}

// What torch.optim.Adam's first step does to a scalar at 0 with gradient g: -lr g/(|g|+eps).
double first_adam_step(double lr, double g) { return -lr * g / (std::abs(g) + 1e-8); }

TEST(CombineRules, SumAddsTheGradients) {
  TaskRng rng(1);
  const auto out = make("sum")->combine(two({1, 2}, {-3, 5}, {1, 1}), rng);
  expect_near(values(out.shared), {-2, 7}, 0);
  expect_near(out.task_scale, {1, 1}, 0);
}

// g_a = (1, 0), g_b = (-1, 1): they conflict (dot -1). PC(g_a) = g_a - (-1/2) g_b =
// (0.5, 0.5); PC(g_b) = g_b - (-1/1) g_a = (0, 1); the update is their sum.
TEST(CombineRules, PcGradProjectsConflictingGradients) {
  TaskRng rng(1);
  auto rule = make("pcgrad");
  auto out = rule->combine(two({1, 0}, {-1, 1}, {1, 1}), rng);
  expect_near(values(out.shared), {0.5, 1.5}, 1e-12);
  expect_near(out.task_scale, {1, 1}, 0);
  EXPECT_EQ(rule->diagnostics()["projections"], 2);
  // Without a conflict nothing is projected: the plain sum.
  out = rule->combine(two({1, 0}, {1, 1}, {1, 1}), rng);
  expect_near(values(out.shared), {2, 1}, 1e-12);
  EXPECT_EQ(rule->diagnostics()["projections"], 0);
}

// The CAGrad objective over w = (t, 1 - t), minimised by golden-section search here
// (independent of the rule's projected-gradient solver), then the update formula.
std::vector<double> cagrad_by_hand(const std::vector<double>& a, const std::vector<double>& b,
                                   double alpha) {
  auto dot = [](const std::vector<double>& x, const std::vector<double>& y) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
    return s;
  };
  std::vector<double> g0(a.size());
  for (size_t i = 0; i < a.size(); ++i) g0[i] = (a[i] + b[i]) / 2;
  const double c = alpha * std::sqrt(dot(g0, g0) + 1e-8) + 1e-8;
  auto gw = [&](double t) {
    std::vector<double> g(a.size());
    for (size_t i = 0; i < a.size(); ++i) g[i] = t * a[i] + (1 - t) * b[i];
    return g;
  };
  auto f = [&](double t) {
    const auto g = gw(t);
    return dot(g, g0) + c * std::sqrt(dot(g, g) + 1e-8);
  };
  double lo = 0, hi = 1;
  const double r = (std::sqrt(5.0) - 1) / 2;
  for (int i = 0; i < 200; ++i) {
    const double x1 = hi - r * (hi - lo), x2 = lo + r * (hi - lo);
    if (f(x1) < f(x2)) hi = x2; else lo = x1;
  }
  const auto g = gw((lo + hi) / 2);
  const double lambda = c / (std::sqrt(dot(g, g)) + 1e-8);
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = (g0[i] + lambda * g[i]) / (1 + alpha * alpha);
  return d;
}

TEST(CombineRules, CaGradSolvesItsProblemOnTheSimplex) {
  TaskRng rng(1);
  auto rule = make("cagrad", {{"alpha", 0.5}});
  const std::vector<double> a = {1, 0, 0.5}, b = {-0.8, 1, 0.2};
  auto out = rule->combine(two(a, b, {1, 1}), rng);
  expect_near(values(out.shared), cagrad_by_hand(a, b, 0.5), 1e-7);
  expect_near(out.task_scale, {1, 1}, 0);
  // Identical gradients g: every w gives g_w = g, so d = g (1 + alpha) / (1 + alpha^2).
  out = rule->combine(two({2, -1}, {2, -1}, {1, 1}), rng);
  expect_near(values(out.shared), {2 * 1.2, -1.2}, 1e-7);
  // alpha = 0 is the mean gradient (up to the 1e-8 guards).
  out = make("cagrad", {{"alpha", 0.0}, {"rescale", 0}})->combine(two(a, b, {1, 1}), rng);
  expect_near(values(out.shared), {0.1, 0.5, 0.35}, 1e-7);
}

// exp(-s_i) g_i with s = 0 at first; the gradient of exp(-s) L + s at s = 0 is 1 - L
// (checked against autograd), so Adam's first step moves s_a = -lr * sign(1 - 2) up and
// s_b down.
TEST(CombineRules, UncertaintyWeightingLearnsLogVariances) {
  TaskRng rng(1);
  auto rule = make("uncertainty_weighting", {{"lr", 0.01}});
  auto out = rule->combine(two({1, 0}, {0, 1}, {2.0, 0.5}), rng);
  expect_near(values(out.shared), {1, 1}, 1e-12);
  expect_near(out.task_scale, {1, 1}, 1e-12);

  torch::Tensor s = torch::zeros({2}, torch::TensorOptions(torch::kFloat64).requires_grad(true));
  const torch::Tensor losses = torch::tensor({2.0, 0.5}, torch::kFloat64);
  (torch::exp(-s) * losses + s).sum().backward();
  const auto grad = values(s.grad());
  const json adam = rule->state()["rule"]["adam"];
  EXPECT_NEAR(adam["m"][0].get<double>(), 0.1 * grad[0], 1e-15);  // (1 - beta1) g
  EXPECT_NEAR(adam["m"][1].get<double>(), 0.1 * grad[1], 1e-15);

  const double sa = first_adam_step(0.01, grad[0]), sb = first_adam_step(0.01, grad[1]);
  out = rule->combine(two({1, 0}, {0, 1}, {2.0, 0.5}), rng);
  expect_near(values(out.shared), {std::exp(-sa), std::exp(-sb)}, 1e-12);
  expect_near(out.task_scale, {std::exp(-sa), std::exp(-sb)}, 1e-12);
  EXPECT_GT(sa, 0);
  EXPECT_LT(sb, 0);
}

// |g_a| = 3, |g_b| = 1, equal training rates: the target norm is their mean, 2, so w_a
// (too strong) goes down and w_b up by Adam's first step, lr, and they still sum to 2.
// Then task a's loss halves: its rate r_a = (0.5 / 1) / 0.75 = 2/3 < r_b = 4/3, so the
// target favours b further.
TEST(CombineRules, GradNormBalancesGradientNormsByTrainingRate) {
  TaskRng rng(1);
  auto rule = make("gradnorm", {{"alpha", 1.5}, {"lr", 0.025}});
  auto out = rule->combine(two({3, 0}, {0, 1}, {1.0, 1.0}), rng);
  expect_near(values(out.shared), {3, 1}, 1e-12);
  // Renormalised to sum 2 (Adam's eps leaves them 1e-10 off).
  const double ua = 1 + first_adam_step(0.025, 3.0), ub = 1 + first_adam_step(0.025, -1.0);
  const double wa = 2 * ua / (ua + ub), wb = 2 * ub / (ua + ub);
  EXPECT_NEAR(wa, 0.975, 1e-9);
  EXPECT_NEAR(wb, 1.025, 1e-9);
  out = rule->combine(two({3, 0}, {0, 1}, {0.5, 1.0}), rng);
  expect_near(values(out.shared), {3 * wa, wb}, 1e-12);
  expect_near(out.task_scale, {wa, wb}, 1e-12);
  // The second gradient on w: sign(G - target) |g| with G = (3 wa, wb), mean(G) = 1.975,
  // targets mean(G) (2/3, 4/3)^1.5: a is above its target (+3), b below (-1).
  const double mean_g = (3 * wa + wb) / 2;
  EXPECT_GT(3 * wa, mean_g * std::pow(2.0 / 3.0, 1.5));
  EXPECT_LT(wb, mean_g * std::pow(4.0 / 3.0, 1.5));
  const json adam = rule->state()["rule"]["adam"];
  EXPECT_NEAR(adam["m"][0].get<double>(), 0.9 * 0.1 * 3 + 0.1 * 3, 1e-12);
  EXPECT_NEAR(adam["m"][1].get<double>(), 0.9 * 0.1 * -1 + 0.1 * -1, 1e-12);
}

// z = softmax(xi) = (1/2, 1/2) at first; losses (1, 2): c = (z/L) / sum(z/L) = (2/3, 1/3).
// Next update, losses (0.5, 2): delta = (log 1 - log 0.5, 0); d/dxi = z (delta - z.delta) =
// (+0.1733, -0.1733), so Adam moves xi to (-lr, +lr) and the weights follow.
TEST(CombineRules, FamoWeightsByLogLossAndLearnsFromItsDecrease) {
  TaskRng rng(1);
  auto rule = make("famo", {{"lr", 0.025}, {"weight_decay", 0.0}});
  auto out = rule->combine(two({1, 0}, {0, 1}, {1.0, 2.0}), rng);
  const double d1 = 1.0 + 1e-8, d2 = 2.0 + 1e-8;
  const double ca = (0.5 / d1) / (0.5 / d1 + 0.5 / d2);
  expect_near(values(out.shared), {ca, 1 - ca}, 1e-12);
  EXPECT_NEAR(ca, 2.0 / 3.0, 1e-8);

  out = rule->combine(two({1, 0}, {0, 1}, {0.5, 2.0}), rng);
  const double delta = std::log(d1) - std::log(0.5 + 1e-8);
  const double grad_a = 0.5 * (delta - 0.5 * delta), grad_b = 0.5 * (0 - 0.5 * delta);
  const double xa = first_adam_step(0.025, grad_a), xb = first_adam_step(0.025, grad_b);
  const double za = std::exp(xa) / (std::exp(xa) + std::exp(xb));
  const double da = 0.5 + 1e-8, db = 2.0 + 1e-8;
  const double wa = (za / da) / (za / da + (1 - za) / db);
  expect_near(values(out.shared), {wa, 1 - wa}, 1e-12);
  expect_near(out.task_scale, {wa, 1 - wa}, 1e-12);
  EXPECT_LT(za, 0.5) << "the task whose loss fell gets less weight";
}

// A rule rebuilt from another's state goes on exactly as the original.
TEST(CombineRules, StateRoundTripContinuesExactly) {
  for (const std::string name : {"uncertainty_weighting", "gradnorm", "famo", "pcgrad", "cagrad"}) {
    auto original = make(name);
    TaskRng rng(7);
    std::vector<TaskGradients> steps = {two({1, 0}, {-1, 1}, {2.0, 1.0}),
                                        two({0.5, 1}, {-1, 0.2}, {1.5, 0.9}),
                                        two({0.3, -1}, {1, 1}, {1.2, 0.8}),
                                        two({2, 0}, {-1, -1}, {1.0, 0.7})};
    original->combine(steps[0], rng);
    original->combine(steps[1], rng);
    auto copy = make(name);
    copy->load_state(json::parse(original->state().dump()));
    TaskRng copy_rng(0);
    copy_rng.load_state(rng.state());
    for (size_t i = 2; i < steps.size(); ++i) {
      const auto a = original->combine(steps[i], rng);
      const auto b = copy->combine(steps[i], copy_rng);
      EXPECT_TRUE(torch::equal(a.shared, b.shared)) << name << " update " << i;
      EXPECT_EQ(a.task_scale, b.task_scale) << name;
    }
  }
}

TEST(CombineRules, StateOfOtherTasksIsRefused) {
  auto rule = make("gradnorm");
  auto other = registry().create_as<GradientCombiner>("combine", "gradnorm", json::object(), "test");
  other->setup({"a", "c"});
  EXPECT_THAT(test::error_of<std::exception>([&] { other->load_state(rule->state()); }),
              HasSubstr("saved state is for the tasks [a, b], this run has [a, c]"));
}

TEST(CombineRules, BadOptionsAreRefusedByTheFactory) {
  EXPECT_THAT(test::error_of<std::exception>([&] { make("cagrad", {{"rescale", 3}}); }),
              HasSubstr("rescale must be 0, 1 or 2"));
  EXPECT_THAT(test::error_of<std::exception>([&] { make("famo", {{"lr", 0.0}}); }),
              HasSubstr("lr must be > 0"));
}

}  // namespace
}  // namespace unitrain

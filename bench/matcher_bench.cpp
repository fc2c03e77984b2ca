// Time per call of the exact assignment solver on DETR-sized cost matrices, and of the
// full DETR matcher (costs + per-image solve) on a batch. Prints a table.
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include <torch/torch.h>

#include "unitrain/nn/hungarian.h"
#include "unitrain/nn/matcher.h"

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double microseconds_per_call(F&& f, int repeats) {
  f();  // warm up
  const auto start = Clock::now();
  for (int i = 0; i < repeats; ++i) f();
  const std::chrono::duration<double, std::micro> elapsed = Clock::now() - start;
  return elapsed.count() / repeats;
}

double solver_time(int64_t rows, int64_t cols, int repeats, std::mt19937_64& engine) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<std::vector<double>> costs(16, std::vector<double>(rows * cols));
  for (auto& cost : costs) {
    for (auto& c : cost) c = uniform(engine);
  }
  size_t k = 0;
  return microseconds_per_call(
      [&] {
        auto pairs = unitrain::nn::solve_assignment(costs[k++ % costs.size()], rows, cols);
        if (pairs.empty()) std::abort();
      },
      repeats);
}

double matcher_time(int64_t batch, int64_t queries, int64_t classes, int64_t boxes, int repeats) {
  auto logits = torch::randn({batch, queries, classes + 1});
  auto pred = torch::rand({batch, queries, 4}) * 0.5 + 0.1;
  std::vector<torch::Tensor> target_classes, target_boxes;
  for (int64_t i = 0; i < batch; ++i) {
    target_classes.push_back(torch::randint(0, classes, {boxes}, torch::kLong));
    target_boxes.push_back(torch::rand({boxes, 4}) * 0.5 + 0.1);
  }
  return microseconds_per_call(
      [&] { unitrain::nn::hungarian_match(logits, pred, target_classes, target_boxes); }, repeats);
}

}  // namespace

int main() {
  torch::manual_seed(0);
  std::mt19937_64 engine(0);
  std::printf("%-44s %14s\n", "case", "us per call");
  const double wide = solver_time(100, 20, 2000, engine);
  std::printf("%-44s %14.1f\n", "solve_assignment 100 x 20", wide);
  const double tall = solver_time(20, 100, 2000, engine);
  std::printf("%-44s %14.1f\n", "solve_assignment 20 x 100", tall);
  const double square = solver_time(100, 100, 200, engine);
  std::printf("%-44s %14.1f\n", "solve_assignment 100 x 100", square);
  const double full = matcher_time(8, 100, 91, 20, 50);
  std::printf("%-44s %14.1f\n", "hungarian_match B=8 Q=100 C=91 N=20", full);
  const double full_vg = matcher_time(8, 100, 1600, 20, 50);
  std::printf("%-44s %14.1f\n", "hungarian_match B=8 Q=100 C=1600 N=20", full_vg);
  std::printf("\nratios: 100x100 / 100x20 = %.1f; matcher(B=8) / (8 x solver 100x20) = %.2f\n",
              square / wide, full / (8 * wide));
  return 0;
}

#include "unitrain/nn/hungarian.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

#include <gtest/gtest.h>

namespace unitrain::nn {
namespace {

// Minimum total cost over all injective maps of the smaller side into the larger.
double brute_force(const std::vector<double>& cost, int64_t rows, int64_t cols) {
  const bool wide = rows <= cols;
  const int64_t n = wide ? rows : cols, m = wide ? cols : rows;
  std::vector<int64_t> perm(m);
  std::iota(perm.begin(), perm.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    // Only the first n entries matter; permutations sharing them repeat, which is fine.
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      total += wide ? cost[i * cols + perm[i]] : cost[perm[i] * cols + i];
    }
    best = std::min(best, total);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

void expect_valid(const std::vector<Assignment>& pairs, int64_t rows, int64_t cols) {
  ASSERT_EQ(static_cast<int64_t>(pairs.size()), std::min(rows, cols));
  std::vector<int> row_used(rows, 0), col_used(cols, 0);
  for (size_t k = 0; k < pairs.size(); ++k) {
    ASSERT_GE(pairs[k].row, 0);
    ASSERT_LT(pairs[k].row, rows);
    ASSERT_GE(pairs[k].col, 0);
    ASSERT_LT(pairs[k].col, cols);
    EXPECT_EQ(row_used[pairs[k].row]++, 0);
    EXPECT_EQ(col_used[pairs[k].col]++, 0);
    if (k > 0) EXPECT_LT(pairs[k - 1].row, pairs[k].row) << "pairs must be sorted by row";
  }
}

TEST(Hungarian, MatchesBruteForceOnRandomRectangularCosts) {
  std::mt19937_64 engine(7);
  std::uniform_real_distribution<double> uniform(-3.0, 10.0);
  for (int64_t rows = 1; rows <= 7; ++rows) {
    for (int64_t cols = 1; cols <= 7; ++cols) {
      for (int trial = 0; trial < 4; ++trial) {
        std::vector<double> cost(rows * cols);
        for (auto& c : cost) c = uniform(engine);
        auto pairs = solve_assignment(cost, rows, cols);
        expect_valid(pairs, rows, cols);
        EXPECT_NEAR(assignment_cost(cost.data(), cols, pairs), brute_force(cost, rows, cols), 1e-9)
            << rows << " x " << cols << " trial " << trial;
      }
    }
  }
}

TEST(Hungarian, IntegerCostsWithManyTies) {
  std::mt19937_64 engine(11);
  std::uniform_int_distribution<int> small(0, 2);
  for (int64_t rows : {3, 5, 6}) {
    for (int64_t cols : {2, 5, 7}) {
      std::vector<double> cost(rows * cols);
      for (auto& c : cost) c = small(engine);
      auto pairs = solve_assignment(cost, rows, cols);
      expect_valid(pairs, rows, cols);
      EXPECT_DOUBLE_EQ(assignment_cost(cost.data(), cols, pairs), brute_force(cost, rows, cols));
    }
  }
}

TEST(Hungarian, AllEqualCostsGiveAFullAssignment) {
  std::vector<double> cost(4 * 6, 1.5);
  auto pairs = solve_assignment(cost, 4, 6);
  expect_valid(pairs, 4, 6);
  EXPECT_DOUBLE_EQ(assignment_cost(cost.data(), 6, pairs), 6.0);
}

TEST(Hungarian, KnownSquareProblem) {
  // The diagonal is optimal: 1 + 2 + 3 = 6 (any other choice costs at least 9).
  std::vector<double> cost = {1, 9, 9,  //
                              9, 2, 9,  //
                              9, 9, 3};
  auto pairs = solve_assignment(cost, 3, 3);
  EXPECT_EQ(pairs, (std::vector<Assignment>{{0, 0}, {1, 1}, {2, 2}}));
}

TEST(Hungarian, TallMatrixLeavesRowsUnassigned) {
  // 4 rows, 2 columns: rows 2 and 3 are the cheap ones.
  std::vector<double> cost = {5, 5,  //
                              5, 5,  //
                              0, 3,  //
                              3, 0};
  auto pairs = solve_assignment(cost, 4, 2);
  EXPECT_EQ(pairs, (std::vector<Assignment>{{2, 0}, {3, 1}}));
}

TEST(Hungarian, EmptyInputs) {
  std::vector<double> none;
  EXPECT_TRUE(solve_assignment(none, 0, 5).empty());
  EXPECT_TRUE(solve_assignment(none, 5, 0).empty());
  EXPECT_TRUE(solve_assignment(none, 0, 0).empty());
}

TEST(Hungarian, RejectsNonFiniteCosts) {
  std::vector<double> cost = {1, 2, std::numeric_limits<double>::quiet_NaN(), 4};
  try {
    solve_assignment(cost, 2, 2);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cost[1, 0]"), std::string::npos) << e.what();
  }
}

TEST(Hungarian, LargeRandomProblemIsConsistentAcrossOrientations) {
  // The optimum of a matrix and of its transpose are the same number.
  std::mt19937_64 engine(3);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const int64_t rows = 100, cols = 20;
  std::vector<double> cost(rows * cols), transposed(rows * cols);
  for (auto& c : cost) c = uniform(engine);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) transposed[j * rows + i] = cost[i * cols + j];
  }
  auto a = solve_assignment(cost, rows, cols);
  auto b = solve_assignment(transposed, cols, rows);
  expect_valid(a, rows, cols);
  EXPECT_NEAR(assignment_cost(cost.data(), cols, a), assignment_cost(transposed.data(), rows, b),
              1e-9);
}

}  // namespace
}  // namespace unitrain::nn

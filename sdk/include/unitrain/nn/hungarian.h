// Exact minimum-cost assignment for a dense rectangular cost matrix (the linear
// assignment problem), as DETR's matcher needs it: each row (query) gets at most one
// column (target) and each column at most one row; min(rows, cols) pairs are chosen so
// that the sum of their costs is minimal.
//
// The solver is the shortest-augmenting-path form of the Hungarian method with dual
// potentials (Jonker-Volgenant style): O(n^2 m) for n = min(rows, cols), m = max.
// Plain C++, no torch, so it can be benchmarked and tested in isolation.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace unitrain::nn {

// One chosen pair: `row` is assigned to `col`.
struct Assignment {
  int64_t row = 0;
  int64_t col = 0;
  bool operator==(const Assignment& other) const {
    return row == other.row && col == other.col;
  }
};

// `cost` is row-major, rows x cols. Returns min(rows, cols) pairs sorted by row; empty
// when rows or cols is 0. Throws std::invalid_argument when a cost is NaN or infinite
// (the message gives its position) or when the sizes are negative.
std::vector<Assignment> solve_assignment(const double* cost, int64_t rows, int64_t cols);

inline std::vector<Assignment> solve_assignment(const std::vector<double>& cost, int64_t rows,
                                                int64_t cols) {
  return solve_assignment(cost.data(), rows, cols);
}

// Sum of cost[row, col] over `pairs` (for tests and reports).
double assignment_cost(const double* cost, int64_t cols, const std::vector<Assignment>& pairs);

}  // namespace unitrain::nn

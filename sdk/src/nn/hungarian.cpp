// Shortest augmenting paths with dual potentials.
//
// Work on the orientation with n <= m (transposing when there are more rows than
// columns). Rows are inserted one at a time. For each new row a Dijkstra-like search
// over columns grows an alternating tree: `slack[j]` is the smallest reduced cost
// c(i, j) - u[i] - v[j] seen from any tree row, `via[j]` the column whose row gave it.
// The column of least slack joins the tree; potentials move by that slack so that
// every tree edge stays tight (reduced cost 0) and no reduced cost becomes negative.
// When a free column joins, the path back to the new row is flipped. Column index 0
// is a virtual column holding the row being inserted, which keeps the loop uniform.
#include "unitrain/nn/hungarian.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace unitrain::nn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Solves an n x m problem with n <= m; `at(i, j)` reads the cost of row i, column j
// (0-based). Returns, for every row, its column.
template <typename CostAt>
std::vector<int64_t> solve_wide(int64_t n, int64_t m, CostAt at) {
  // 1-based rows and columns; row 0 / column 0 are the virtual ones.
  std::vector<double> u(n + 1, 0.0), v(m + 1, 0.0), slack(m + 1);
  std::vector<int64_t> row_of(m + 1, 0);  // row_of[j]: row matched to column j, 0 = free
  std::vector<int64_t> via(m + 1, 0);
  std::vector<char> in_tree(m + 1);

  for (int64_t new_row = 1; new_row <= n; ++new_row) {
    row_of[0] = new_row;
    int64_t col = 0;  // the column that joined the tree last
    std::fill(slack.begin(), slack.end(), kInf);
    std::fill(in_tree.begin(), in_tree.end(), 0);
    do {
      in_tree[col] = 1;
      const int64_t row = row_of[col];
      double delta = kInf;
      int64_t next = 0;
      for (int64_t j = 1; j <= m; ++j) {
        if (in_tree[j]) continue;
        const double reduced = at(row - 1, j - 1) - u[row] - v[j];
        if (reduced < slack[j]) {
          slack[j] = reduced;
          via[j] = col;
        }
        if (slack[j] < delta) {
          delta = slack[j];
          next = j;
        }
      }
      // Shift potentials: tree rows up, tree columns down, others' slack shrinks.
      for (int64_t j = 0; j <= m; ++j) {
        if (in_tree[j]) {
          u[row_of[j]] += delta;
          v[j] -= delta;
        } else {
          slack[j] -= delta;
        }
      }
      col = next;
    } while (row_of[col] != 0);
    // Flip the augmenting path ending at the free column `col`.
    while (col != 0) {
      const int64_t previous = via[col];
      row_of[col] = row_of[previous];
      col = previous;
    }
  }

  std::vector<int64_t> col_of_row(n, -1);
  for (int64_t j = 1; j <= m; ++j) {
    if (row_of[j] != 0) col_of_row[row_of[j] - 1] = j - 1;
  }
  return col_of_row;
}

}  // namespace

std::vector<Assignment> solve_assignment(const double* cost, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) {
    throw std::invalid_argument("solve_assignment: negative size " + std::to_string(rows) +
                                " x " + std::to_string(cols));
  }
  std::vector<Assignment> pairs;
  if (rows == 0 || cols == 0) return pairs;
  for (int64_t k = 0; k < rows * cols; ++k) {
    if (!std::isfinite(cost[k])) {
      throw std::invalid_argument("solve_assignment: cost[" + std::to_string(k / cols) + ", " +
                                  std::to_string(k % cols) + "] is " + std::to_string(cost[k]) +
                                  "; costs must be finite");
    }
  }
  pairs.reserve(static_cast<size_t>(std::min(rows, cols)));
  if (rows <= cols) {
    auto col_of_row = solve_wide(rows, cols, [&](int64_t i, int64_t j) { return cost[i * cols + j]; });
    for (int64_t i = 0; i < rows; ++i) pairs.push_back({i, col_of_row[i]});
  } else {
    // Transposed: the solver's rows are our columns.
    auto row_of_col = solve_wide(cols, rows, [&](int64_t i, int64_t j) { return cost[j * cols + i]; });
    std::vector<int64_t> col_of_row(rows, -1);
    for (int64_t j = 0; j < cols; ++j) col_of_row[row_of_col[j]] = j;
    for (int64_t i = 0; i < rows; ++i) {
      if (col_of_row[i] >= 0) pairs.push_back({i, col_of_row[i]});
    }
  }
  return pairs;
}

double assignment_cost(const double* cost, int64_t cols, const std::vector<Assignment>& pairs) {
  double total = 0.0;
  for (const auto& p : pairs) total += cost[p.row * cols + p.col];
  return total;
}

}  // namespace unitrain::nn

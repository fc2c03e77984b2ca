// Rules that resolve conflicts between task gradients on the shared values: PCGrad
// (Yu et al. 2020) and CAGrad (Liu et al. 2021). Both are computed on the Gram matrix:
// every projection keeps the gradient a combination of the task gradients.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "gradient_rules.h"

namespace unitrain::combine {
namespace {

using json = nlohmann::json;
using Matrix = std::vector<std::vector<double>>;

// x^T A y
double form(const std::vector<double>& x, const Matrix& a, const std::vector<double>& y) {
  double total = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    for (size_t j = 0; j < y.size(); ++j) total += x[i] * a[i][j] * y[j];
  }
  return total;
}

// Euclidean projection onto the probability simplex (sort-based, Duchi et al. 2008).
std::vector<double> onto_simplex(const std::vector<double>& v) {
  std::vector<double> u = v;
  std::sort(u.begin(), u.end(), std::greater<double>());
  double sum = 0, theta = 0;
  for (size_t j = 0; j < u.size(); ++j) {
    sum += u[j];
    const double t = (sum - 1.0) / static_cast<double>(j + 1);
    if (u[j] - t > 0) theta = t;
  }
  std::vector<double> w(v.size());
  for (size_t i = 0; i < v.size(); ++i) w[i] = std::max(v[i] - theta, 0.0);
  return w;
}

// For each task i, in turn: start from g_i and, for every other task j in a random order,
// remove the component along g_j whenever the current vector conflicts with g_j (negative
// dot product). The update is the sum of the projected gradients. Tracked as coefficients
// over the original gradients: (sum_m a_m g_m) . g_j = sum_m a_m G[m][j].
class PcGrad : public Rule {
 public:
  Weights weigh(const StepStats& s, const std::function<double()>& uniform) override {
    const size_t k = s.tasks.size();
    std::vector<double> total(k, 0.0);
    projections_ = 0;
    for (size_t i = 0; i < k; ++i) {
      std::vector<size_t> others;
      for (size_t j = 0; j < k; ++j) {
        if (j != i) others.push_back(j);
      }
      // Fisher-Yates from the back, on the trainer's engine.
      for (size_t n = others.size(); n > 1; --n) {
        const auto pick = std::min(n - 1, static_cast<size_t>(uniform() * static_cast<double>(n)));
        std::swap(others[n - 1], others[pick]);
      }
      std::vector<double> a(k, 0.0);
      a[i] = 1.0;
      for (size_t j : others) {
        double dot = 0;
        for (size_t m = 0; m < k; ++m) dot += a[m] * s.gram[m][j];
        if (dot < 0 && s.gram[j][j] > 0) {
          a[j] -= dot / s.gram[j][j];
          ++projections_;
        }
      }
      for (size_t m = 0; m < k; ++m) total[m] += a[m];
    }
    return {total, std::vector<double>(k, 1.0)};
  }
  json diagnostics() const override { return {{"projections", projections_}}; }

 private:
  int64_t projections_ = 0;
};

// Conflict-averse gradient descent: with g0 the mean gradient and c = alpha |g0|,
// w* = argmin over the simplex of  g_w . g0 + c |g_w|  (g_w = sum_i w_i g_i), and the
// update d = g0 + (c / |g_w*|) g_w*, divided by 1 + alpha^2 (rescale 1), 1 + alpha
// (rescale 2) or not (rescale 0), as the authors' code does. The small problem over w
// is solved by projected gradient descent with backtracking, in double precision.
class CaGrad : public Rule {
 public:
  // NOTE: checked here, with messages that predate the option set (tested).
  explicit CaGrad(const CaGradOptions& o) : alpha_(o.alpha()), rescale_(o.rescale()) {
    if (alpha_ < 0) throw std::invalid_argument("alpha must be >= 0");
    if (rescale_ < 0 || rescale_ > 2) throw std::invalid_argument("rescale must be 0, 1 or 2");
  }
  Weights weigh(const StepStats& s, const std::function<double()>&) override {
    const size_t k = s.tasks.size();
    const Matrix& a = s.gram;
    const std::vector<double> mean(k, 1.0 / static_cast<double>(k));
    double gram_mean = 0;
    for (const auto& row : a) gram_mean += std::accumulate(row.begin(), row.end(), 0.0);
    gram_mean /= static_cast<double>(k * k);
    const double c = alpha_ * std::sqrt(std::max(gram_mean, 0.0) + 1e-8) + 1e-8;
    const std::vector<double> ab = matvec(a, mean);
    auto objective = [&](const std::vector<double>& w) {
      double linear = 0;
      for (size_t i = 0; i < k; ++i) linear += w[i] * ab[i];
      return linear + c * std::sqrt(std::max(form(w, a, w), 0.0) + 1e-8);
    };
    std::vector<double> w = mean;
    double f = objective(w);
    double trace = 0;
    for (size_t i = 0; i < k; ++i) trace += a[i][i];
    double t = trace > 0 ? 1.0 / trace : 1.0;
    for (int iteration = 0; iteration < 2000; ++iteration) {
      const std::vector<double> aw = matvec(a, w);
      const double norm = std::sqrt(std::max(form(w, a, w), 0.0) + 1e-8);
      std::vector<double> grad(k);
      for (size_t i = 0; i < k; ++i) grad[i] = ab[i] + c * aw[i] / norm;
      bool moved = false;
      for (int halvings = 0; halvings < 60; ++halvings) {
        std::vector<double> trial(k);
        for (size_t i = 0; i < k; ++i) trial[i] = w[i] - t * grad[i];
        trial = onto_simplex(trial);
        double decrease = 0, distance = 0;
        for (size_t i = 0; i < k; ++i) {
          decrease += grad[i] * (w[i] - trial[i]);
          distance += (w[i] - trial[i]) * (w[i] - trial[i]);
        }
        const double ft = objective(trial);
        if (ft <= f - 0.5 * decrease || distance == 0) {
          moved = distance > 1e-30;
          w = trial;
          f = std::min(f, ft);
          t *= 2;
          break;
        }
        t /= 2;
      }
      if (!moved) break;
    }
    weights_ = w;
    const double gw_norm = std::sqrt(std::max(form(w, a, w), 0.0));
    const double lambda = c / (gw_norm + 1e-8);
    const double scale = rescale_ == 1 ? 1.0 / (1.0 + alpha_ * alpha_) : rescale_ == 2 ? 1.0 / (1.0 + alpha_) : 1.0;
    std::vector<double> coefficients(k);
    for (size_t i = 0; i < k; ++i) coefficients[i] = (mean[i] + lambda * w[i]) * scale;
    return {coefficients, std::vector<double>(k, 1.0)};
  }
  json diagnostics() const override { return {{"simplex_weights", weights_}}; }

 private:
  static std::vector<double> matvec(const Matrix& a, const std::vector<double>& x) {
    std::vector<double> y(x.size(), 0.0);
    for (size_t i = 0; i < x.size(); ++i) {
      for (size_t j = 0; j < x.size(); ++j) y[i] += a[i][j] * x[j];
    }
    return y;
  }
  double alpha_;
  int64_t rescale_;
  std::vector<double> weights_;
};

}  // namespace

std::unique_ptr<Rule> make_pcgrad(const json&) { return std::make_unique<PcGrad>(); }
std::unique_ptr<Rule> make_cagrad(const json& o) {
  return std::make_unique<CaGrad>(cagrad_option_set().parse(o));
}

const options::OptionSet<CaGradOptions>& cagrad_option_set() {
  static const auto set =
      options::OptionSet<CaGradOptions>()
          .add(UNITRAIN_OPTION(alpha), "radius of the ball around g0 (>= 0)")
          .add(UNITRAIN_OPTION(rescale), "divide by 1 + alpha^2 (1), 1 + alpha (2) or nothing (0)");
  return set;
}

}  // namespace unitrain::combine

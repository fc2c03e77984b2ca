// Rules that weight whole task gradients by what the losses and gradient norms say:
// sum, uncertainty weighting (Kendall et al. 2018), GradNorm (Chen et al. 2018) and
// FAMO (Liu et al. 2023).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "gradient_rules.h"

namespace unitrain::combine {
namespace {

using json = nlohmann::json;

std::vector<double> step_values(const std::vector<double>& all, const StepStats& s) {
  std::vector<double> out;
  for (size_t t : s.tasks) out.push_back(all.at(t));
  return out;
}

json by_name(const std::vector<std::string>& names, const std::vector<double>& values,
             const std::vector<size_t>& which) {
  json out = json::object();
  for (size_t i = 0; i < which.size(); ++i) out[names.at(which[i])] = values.at(i);
  return out;
}

// Every gradient as it is: the same update as accumulating the tasks' batches.
class Sum : public Rule {
 public:
  Weights weigh(const StepStats& s, const std::function<double()>&) override {
    return {std::vector<double>(s.tasks.size(), 1.0), std::vector<double>(s.tasks.size(), 1.0)};
  }
};

// Kendall, Gal & Cipolla: minimise sum_i exp(-s_i) L_i + s_i with a learned log variance
// s_i per task. The model's gradient is sum_i exp(-s_i) g_i; s moves by Adam on
// d/ds_i = 1 - exp(-s_i) L_i, after the weights of this update are taken.
class UncertaintyWeighting : public Rule {
 public:
  // NOTE: the rules check their options in their constructors, with messages that
  // predate the option sets (tested); the sets declare types, defaults and meanings.
  explicit UncertaintyWeighting(const UncertaintyWeightingOptions& o)
      : lr_(o.lr()), init_(o.init()) {
    if (!(lr_ > 0)) throw std::invalid_argument("lr must be > 0");
  }
  void setup(const std::vector<std::string>& names) override {
    Rule::setup(names);
    log_variance_.assign(names.size(), init_);
    adam_ = std::make_unique<ScalarAdam>(lr_, 0.0, names.size());
  }
  Weights weigh(const StepStats& s, const std::function<double()>&) override {
    std::vector<double> w, grads;
    for (size_t i = 0; i < s.tasks.size(); ++i) {
      w.push_back(std::exp(-log_variance_.at(s.tasks[i])));
      grads.push_back(1.0 - w.back() * s.losses[i]);
    }
    last_ = by_name(names_, w, s.tasks);
    adam_->step(log_variance_, s.tasks, grads);
    return {w, w};
  }
  json diagnostics() const override {
    return {{"weights", last_}, {"log_variance", by_name(names_, log_variance_, all())}};
  }
  json state() const override { return {{"log_variance", log_variance_}, {"adam", adam_->state()}}; }
  void load_state(const json& s) override {
    log_variance_ = s.at("log_variance").get<std::vector<double>>();
    adam_->load_state(s.at("adam"));
  }

 private:
  std::vector<size_t> all() const {
    std::vector<size_t> i(names_.size());
    std::iota(i.begin(), i.end(), 0);
    return i;
  }
  double lr_, init_;
  std::vector<double> log_variance_;
  std::unique_ptr<ScalarAdam> adam_;
  json last_ = json::object();
};

// Chen et al.: task weights w_i (start 1) learned so that the weighted gradient norms
// G_i = w_i |g_i| approach mean(G) * r_i^alpha, r_i = (L_i / L_i(0)) / mean_j(L_j / L_j(0))
// (a task that has learned less gets a larger share). The norms are taken over every
// shared value (the paper uses the last shared layer). Adam on d/dw_i = sign(G_i - target_i)
// |g_i| with the target held fixed, then the update's weights are renormalised to sum k.
class GradNorm : public Rule {
 public:
  explicit GradNorm(const GradNormOptions& o) : alpha_(o.alpha()), lr_(o.lr()) {
    if (!(lr_ > 0)) throw std::invalid_argument("lr must be > 0");
  }
  void setup(const std::vector<std::string>& names) override {
    Rule::setup(names);
    weights_.assign(names.size(), 1.0);
    initial_loss_.assign(names.size(), -1.0);
    adam_ = std::make_unique<ScalarAdam>(lr_, 0.0, names.size());
  }
  Weights weigh(const StepStats& s, const std::function<double()>&) override {
    const size_t k = s.tasks.size();
    std::vector<double> w = step_values(weights_, s), norms(k), g(k), ratio(k);
    for (size_t i = 0; i < k; ++i) {
      double& first = initial_loss_.at(s.tasks[i]);
      if (first < 0) first = s.losses[i];
      norms[i] = std::sqrt(std::max(0.0, s.gram[i][i]));
      g[i] = w[i] * norms[i];
      ratio[i] = first > 0 ? s.losses[i] / first : 1.0;
    }
    const double mean_g = std::accumulate(g.begin(), g.end(), 0.0) / k;
    const double mean_ratio = std::accumulate(ratio.begin(), ratio.end(), 0.0) / k;
    std::vector<double> grads(k);
    for (size_t i = 0; i < k; ++i) {
      const double r = mean_ratio > 0 ? ratio[i] / mean_ratio : 1.0;
      const double diff = g[i] - mean_g * std::pow(r, alpha_);
      grads[i] = (diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0) * norms[i];
    }
    last_ = by_name(names_, w, s.tasks);
    adam_->step(weights_, s.tasks, grads);
    double total = 0;
    for (size_t t : s.tasks) total += weights_[t] = std::max(weights_[t], 0.0);
    for (size_t t : s.tasks) weights_[t] = total > 0 ? weights_[t] * k / total : 1.0;
    return {w, w};
  }
  json diagnostics() const override { return {{"weights", last_}}; }
  json state() const override {
    return {{"weights", weights_}, {"initial_loss", initial_loss_}, {"adam", adam_->state()}};
  }
  void load_state(const json& s) override {
    weights_ = s.at("weights").get<std::vector<double>>();
    initial_loss_ = s.at("initial_loss").get<std::vector<double>>();
    adam_->load_state(s.at("adam"));
  }

 private:
  double alpha_, lr_;
  std::vector<double> weights_, initial_loss_;
  std::unique_ptr<ScalarAdam> adam_;
  json last_ = json::object();
};

// Liu et al. (FAMO): logits xi, z = softmax(xi) over the update's tasks, and the update
// sum_i c_i g_i with c_i = (z_i / D_i) / sum_j (z_j / D_j), D_i = L_i - min_loss + 1e-8
// (the gradient of sum_i z_i log D_i, normalised). xi learns from each task's log-loss
// decrease delta_i = log D_i(previous update) - log D_i(this update): Adam on
// d/dxi = J_softmax^T delta plus weight_decay * xi. NOTE: the paper measures the
// decrease on the same batch after the update, which costs a second forward pass; here
// it is measured between consecutive updates (O(1) extra cost, a noisier signal).
class Famo : public Rule {
 public:
  explicit Famo(const FamoOptions& o)
      : lr_(o.lr()), weight_decay_(o.weight_decay()), min_loss_(o.min_loss()) {
    if (!(lr_ > 0)) throw std::invalid_argument("lr must be > 0");
  }
  void setup(const std::vector<std::string>& names) override {
    Rule::setup(names);
    logits_.assign(names.size(), 0.0);
    previous_.assign(names.size(), -1.0);
    adam_ = std::make_unique<ScalarAdam>(lr_, weight_decay_, names.size());
  }
  Weights weigh(const StepStats& s, const std::function<double()>&) override {
    const size_t k = s.tasks.size();
    std::vector<double> d(k);
    for (size_t i = 0; i < k; ++i) d[i] = std::max(s.losses[i] - min_loss_, 0.0) + 1e-8;
    bool any_previous = false;
    std::vector<double> delta(k, 0.0);
    for (size_t i = 0; i < k; ++i) {
      const double before = previous_.at(s.tasks[i]);
      if (before < 0) continue;
      delta[i] = std::log(before) - std::log(d[i]);
      any_previous = true;
    }
    if (any_previous) {
      const auto z = softmax(s);
      double mean = 0;
      for (size_t i = 0; i < k; ++i) mean += z[i] * delta[i];
      std::vector<double> grads(k);
      for (size_t i = 0; i < k; ++i) grads[i] = z[i] * (delta[i] - mean);
      adam_->step(logits_, s.tasks, grads);
    }
    std::fill(previous_.begin(), previous_.end(), -1.0);
    for (size_t i = 0; i < k; ++i) previous_[s.tasks[i]] = d[i];
    const auto z = softmax(s);
    double total = 0;
    std::vector<double> c(k);
    for (size_t i = 0; i < k; ++i) total += c[i] = z[i] / d[i];
    for (double& v : c) v /= total;
    last_ = by_name(names_, z, s.tasks);
    return {c, c};
  }
  json diagnostics() const override { return {{"weights", last_}}; }
  json state() const override {
    return {{"logits", logits_}, {"previous", previous_}, {"adam", adam_->state()}};
  }
  void load_state(const json& s) override {
    logits_ = s.at("logits").get<std::vector<double>>();
    previous_ = s.at("previous").get<std::vector<double>>();
    adam_->load_state(s.at("adam"));
  }

 private:
  std::vector<double> softmax(const StepStats& s) const {
    double top = -INFINITY;
    for (size_t t : s.tasks) top = std::max(top, logits_.at(t));
    std::vector<double> z;
    double total = 0;
    for (size_t t : s.tasks) total += z.emplace_back(std::exp(logits_.at(t) - top));
    for (double& v : z) v /= total;
    return z;
  }
  double lr_, weight_decay_, min_loss_;
  std::vector<double> logits_, previous_;  // previous_: D of the last update, -1 = absent
  std::unique_ptr<ScalarAdam> adam_;
  json last_ = json::object();
};

}  // namespace

void ScalarAdam::step(std::vector<double>& values, const std::vector<size_t>& which,
                      const std::vector<double>& grads) {
  for (size_t n = 0; n < which.size(); ++n) {
    const size_t i = which[n];
    const double g = grads[n] + weight_decay_ * values.at(i);
    const auto t = static_cast<double>(++steps_.at(i));
    m_[i] = beta1_ * m_[i] + (1 - beta1_) * g;
    v_[i] = beta2_ * v_[i] + (1 - beta2_) * g * g;
    const double denom = std::sqrt(v_[i]) / std::sqrt(1 - std::pow(beta2_, t)) + eps_;
    values[i] -= lr_ / (1 - std::pow(beta1_, t)) * m_[i] / denom;
  }
}

json ScalarAdam::state() const { return {{"m", m_}, {"v", v_}, {"steps", steps_}}; }

void ScalarAdam::load_state(const json& s) {
  m_ = s.at("m").get<std::vector<double>>();
  v_ = s.at("v").get<std::vector<double>>();
  steps_ = s.at("steps").get<std::vector<int64_t>>();
}

std::unique_ptr<Rule> make_sum(const json&) { return std::make_unique<Sum>(); }
std::unique_ptr<Rule> make_uncertainty_weighting(const json& o) {
  return std::make_unique<UncertaintyWeighting>(uncertainty_weighting_option_set().parse(o));
}
std::unique_ptr<Rule> make_gradnorm(const json& o) {
  return std::make_unique<GradNorm>(gradnorm_option_set().parse(o));
}
std::unique_ptr<Rule> make_famo(const json& o) {
  return std::make_unique<Famo>(famo_option_set().parse(o));
}

const options::OptionSet<UncertaintyWeightingOptions>& uncertainty_weighting_option_set() {
  static const auto set = options::OptionSet<UncertaintyWeightingOptions>()
                              .add(UNITRAIN_OPTION(lr), "Adam's step for v (> 0)")
                              .add(UNITRAIN_OPTION(init), "v at the start");
  return set;
}

const options::OptionSet<GradNormOptions>& gradnorm_option_set() {
  static const auto set = options::OptionSet<GradNormOptions>()
                              .add(UNITRAIN_OPTION(alpha), "restoring force")
                              .add(UNITRAIN_OPTION(lr), "Adam's step for w (> 0)");
  return set;
}

const options::OptionSet<FamoOptions>& famo_option_set() {
  static const auto set = options::OptionSet<FamoOptions>()
                              .add(UNITRAIN_OPTION(lr), "Adam's step for xi (> 0)")
                              .add(UNITRAIN_OPTION(weight_decay), "weight decay of xi")
                              .add(UNITRAIN_OPTION(min_loss), "the losses' lower bound");
  return set;
}

}  // namespace unitrain::combine

// The built-in combine rules, written on the k x k Gram matrix of the update's task
// gradients: each rule's update is a weighted sum of the task gradients, so it needs
// only their dot products (k <= the number of tasks) and never touches a P-long vector.
// plugin.cpp turns a Rule into a GradientCombiner. Formulas: README.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/arg.h>

#include "unitrain/options.h"

namespace unitrain::combine {

// The options of the rules that have any. JSON keys are the field names; each option is
// declared once in its rule's option set (README.md's tables come from it).
struct UncertaintyWeightingOptions {
  TORCH_ARG(double, lr) = 0.001;  // Default: 0.001.
  TORCH_ARG(double, init) = 0.0;  // Default: 0.
};
struct GradNormOptions {
  TORCH_ARG(double, alpha) = 1.5;  // Default: 1.5.
  TORCH_ARG(double, lr) = 0.025;   // Default: 0.025.
};
struct CaGradOptions {
  TORCH_ARG(double, alpha) = 0.5;    // Default: 0.5.
  TORCH_ARG(int64_t, rescale) = 1;   // Default: 1.
};
struct FamoOptions {
  TORCH_ARG(double, lr) = 0.025;           // Default: 0.025.
  TORCH_ARG(double, weight_decay) = 0.01;  // Default: 0.01.
  TORCH_ARG(double, min_loss) = 0.0;       // Default: 0.
};

// loss_weighting.cpp
const options::OptionSet<UncertaintyWeightingOptions>& uncertainty_weighting_option_set();
const options::OptionSet<GradNormOptions>& gradnorm_option_set();
const options::OptionSet<FamoOptions>& famo_option_set();
// conflict.cpp
const options::OptionSet<CaGradOptions>& cagrad_option_set();

// One update, as the rules see it. Row i is the i-th task of the update.
struct StepStats {
  std::vector<size_t> tasks;         // [k] index into the run's tasks
  std::vector<double> losses;        // [k] loss_weight * loss
  std::vector<std::vector<double>> gram;  // [k][k] g_i . g_j on the shared values
  int64_t step = 0;
};

// The update: shared gradient = sum_i coefficients[i] * g_i; each task's own parameters
// get task_scale[i] times its gradient.
struct Weights {
  std::vector<double> coefficients;
  std::vector<double> task_scale;
};

class Rule {
 public:
  virtual ~Rule() = default;
  virtual void setup(const std::vector<std::string>& task_names) { names_ = task_names; }
  // `uniform` draws from the trainer's task engine, in [0, 1).
  virtual Weights weigh(const StepStats& step, const std::function<double()>& uniform) = 0;
  virtual nlohmann::json diagnostics() const { return nlohmann::json::object(); }
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void load_state(const nlohmann::json& /*state*/) {}

 protected:
  std::vector<std::string> names_;
};

// Adam (Kingma & Ba) on a few scalars, in double, as torch.optim.Adam computes it
// (weight_decay added to the gradient, bias-corrected moments). For the weights some
// rules learn alongside the model.
class ScalarAdam {
 public:
  ScalarAdam(double lr, double weight_decay, size_t size)
      : lr_(lr), weight_decay_(weight_decay), m_(size, 0.0), v_(size, 0.0), steps_(size, 0) {}
  // One step on the entries `which` of `values`, with their gradients `grads`.
  void step(std::vector<double>& values, const std::vector<size_t>& which,
            const std::vector<double>& grads);
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  double lr_, weight_decay_;
  double beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8;
  std::vector<double> m_, v_;
  std::vector<int64_t> steps_;  // per entry: tasks absent from an update do not step
};

std::unique_ptr<Rule> make_sum(const nlohmann::json& options);
std::unique_ptr<Rule> make_uncertainty_weighting(const nlohmann::json& options);
std::unique_ptr<Rule> make_gradnorm(const nlohmann::json& options);
std::unique_ptr<Rule> make_famo(const nlohmann::json& options);
std::unique_ptr<Rule> make_pcgrad(const nlohmann::json& options);
std::unique_ptr<Rule> make_cagrad(const nlohmann::json& options);

}  // namespace unitrain::combine

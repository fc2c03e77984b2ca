// The plugin entry: each Rule as a GradientCombiner (Gram matrix in, weighted sum of the
// task gradients out) and the descriptors of the six rules.
#include <stdexcept>

#include <fmt/format.h>

#include "gradient_rules.h"
#include "unitrain/combine.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace unitrain::combine {
namespace {

using json = nlohmann::json;

class RuleCombiner : public GradientCombiner {
 public:
  explicit RuleCombiner(std::unique_ptr<Rule> rule) : rule_(std::move(rule)) {}

  void setup(const std::vector<std::string>& task_names) override {
    names_ = task_names;
    rule_->setup(task_names);
  }

  CombinedGradient combine(const TaskGradients& step, TaskRng& rng) override {
    const torch::Tensor& g = step.shared;
    const auto k = static_cast<int64_t>(step.tasks.size());
    TORCH_CHECK(g.dim() == 2 && g.size(0) == k, "combine: expected shared gradients [", k,
                ", P], got ", g.sizes());
    TORCH_CHECK(static_cast<int64_t>(step.losses.size()) == k, "combine: ", step.losses.size(),
                " losses for ", k, " tasks");
    // NOTE: the Gram matrix is accumulated in the gradients' own precision (a float64
    // copy of k x P values would double the memory of the largest tensors of the step).
    const torch::Tensor gram = g.mm(g.t()).to(torch::kCPU, torch::kFloat64).contiguous();
    StepStats stats;
    stats.tasks = step.tasks;
    stats.losses = step.losses;
    stats.step = step.step;
    const double* values = gram.data_ptr<double>();
    for (int64_t i = 0; i < k; ++i) stats.gram.emplace_back(values + i * k, values + (i + 1) * k);
    const Weights weights = rule_->weigh(stats, [&rng] { return rng.uniform(); });
    const torch::Tensor c = torch::tensor(weights.coefficients, torch::kFloat64)
                                .to(g.device(), g.scalar_type());
    return {c.unsqueeze(0).mm(g).squeeze(0), weights.task_scale};
  }

  json diagnostics() const override { return rule_->diagnostics(); }
  json state() const override { return {{"tasks", names_}, {"rule", rule_->state()}}; }
  void load_state(const json& state) override {
    const auto tasks = state.at("tasks").get<std::vector<std::string>>();
    if (tasks != names_) {
      throw std::invalid_argument(fmt::format("the combine rule's saved state is for the tasks "
                                              "[{}], this run has [{}]",
                                              fmt::join(tasks, ", "), fmt::join(names_, ", ")));
    }
    rule_->load_state(state.at("rule"));
  }

 private:
  std::unique_ptr<Rule> rule_;
  std::vector<std::string> names_;
};

template <std::unique_ptr<Rule> (*Make)(const json&)>
std::shared_ptr<GradientCombiner> make(const json& options) {
  return std::make_shared<RuleCombiner>(Make(options));
}

}  // namespace
}  // namespace unitrain::combine

using unitrain::GradientCombiner;
using namespace unitrain::combine;
UNITRAIN_PLUGIN(kSum, GradientCombiner, "combine", "sum", "1.0.0",
                "The sum of the task gradients (each with its loss_weight)", "{}", kReadme,
                make<make_sum>);
UNITRAIN_PLUGIN(kUncertainty, GradientCombiner, "combine", "uncertainty_weighting", "1.0.0",
                "Learned log-variance per task: exp(-s) L + s (Kendall et al. 2018)",
                uncertainty_weighting_option_set().defaults_json().c_str(), kReadme,
                make<make_uncertainty_weighting>);
UNITRAIN_PLUGIN(kGradNorm, GradientCombiner, "combine", "gradnorm", "1.0.0",
                "Task weights that balance gradient norms by training rate (Chen et al. 2018)",
                gradnorm_option_set().defaults_json().c_str(), kReadme, make<make_gradnorm>);
UNITRAIN_PLUGIN(kPcGrad, GradientCombiner, "combine", "pcgrad", "1.0.0",
                "Project away conflicting task gradients (Yu et al. 2020)", "{}", kReadme,
                make<make_pcgrad>);
UNITRAIN_PLUGIN(kCaGrad, GradientCombiner, "combine", "cagrad", "1.0.0",
                "Conflict-averse gradient in a ball around the mean (Liu et al. 2021)",
                cagrad_option_set().defaults_json().c_str(), kReadme, make<make_cagrad>);
UNITRAIN_PLUGIN(kFamo, GradientCombiner, "combine", "famo", "1.0.0",
                "Fast adaptive multitask optimization, balanced loss decrease (Liu et al. 2023)",
                famo_option_set().defaults_json().c_str(), kReadme, make<make_famo>);
UNITRAIN_EXPORT_PLUGINS(&kSum, &kUncertainty, &kGradNorm, &kPcGrad, &kCaGrad, &kFamo);
UNITRAIN_EXPORT_OPTION_TABLES(
    UNITRAIN_OPTION_TABLE("combine", "uncertainty_weighting", &uncertainty_weighting_option_set),
    UNITRAIN_OPTION_TABLE("combine", "gradnorm", &gradnorm_option_set),
    UNITRAIN_OPTION_TABLE("combine", "cagrad", &cagrad_option_set),
    UNITRAIN_OPTION_TABLE("combine", "famo", &famo_option_set));

// A task scheduler that listens to training, written against the installed SDK: each
// task is drawn with probability proportional to its last loss (raised to 1/T), with a
// floor, so that tasks still far from fitted train more. Shows the scheduler contract:
// draws only from the shared TaskRng, feedback through SchedulerFeedback, and every
// learned value in state() for exact resume.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <unitrain/scheduler.h>

#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace loss_proportional {

using json = nlohmann::json;

struct LossProportionalOptions {
  double temperature = 1.0;  // T: 1 = proportional to the loss, larger = flatter
  double min_share = 0.05;   // every task keeps at least this share / N
};

LossProportionalOptions options_from_json(const json& j) {
  LossProportionalOptions o;
  o.temperature = j.at("temperature").get<double>();
  o.min_share = j.at("min_share").get<double>();
  if (!(o.temperature > 0)) throw std::invalid_argument("/temperature: expected a number > 0");
  if (!(o.min_share >= 0 && o.min_share <= 1)) {
    throw std::invalid_argument("/min_share: expected a number in [0, 1]");
  }
  return o;
}

class LossProportional : public unitrain::TaskScheduler, public unitrain::SchedulerFeedback {
 public:
  explicit LossProportional(LossProportionalOptions o) : o_(o) {}

  void setup(const std::vector<unitrain::SchedulerTask>& tasks) override {
    losses_.assign(tasks.size(), 0.0);  // 0: not seen yet
  }
  size_t next(unitrain::TaskRng& rng) override {
    return unitrain::sample_index(probabilities(), rng.uniform());
  }
  // Tasks not seen yet count as the largest loss seen (1 before any).
  std::vector<double> probabilities() const override {
    const double top = *std::max_element(losses_.begin(), losses_.end());
    std::vector<double> p(losses_.size());
    double sum = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      const double loss = losses_[i] > 0 ? losses_[i] : (top > 0 ? top : 1.0);
      p[i] = std::pow(loss, 1.0 / o_.temperature);
      sum += p[i];
    }
    const double n = static_cast<double>(p.size());
    for (auto& v : p) v = (1 - o_.min_share) * v / sum + o_.min_share / n;
    return p;
  }
  void observe_loss(size_t task, double loss) override {
    if (std::isfinite(loss) && loss > 0) losses_.at(task) = loss;
  }
  void observe_evaluation(int64_t /*step*/, const json& /*metrics*/) override {}

  json state() const override { return {{"losses", losses_}}; }
  void load_state(const json& state) override {
    losses_ = state.at("losses").get<std::vector<double>>();
  }

 private:
  LossProportionalOptions o_;
  std::vector<double> losses_;
};

std::shared_ptr<unitrain::TaskScheduler> make(const json& options) {
  return std::make_shared<LossProportional>(options_from_json(options));
}

}  // namespace loss_proportional

UNITRAIN_PLUGIN(kLossProportional, unitrain::TaskScheduler, "scheduler", "loss_proportional",
                "1.0.0", "p_i proportional to each task's last loss^(1/T), with a floor",
                R"({"temperature": 1.0, "min_share": 0.05})", kReadme, loss_proportional::make);
UNITRAIN_EXPORT_PLUGINS(&kLossProportional);

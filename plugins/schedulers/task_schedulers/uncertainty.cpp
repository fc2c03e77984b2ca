// CA-MTL's uncertainty sampling (Pilault et al. 2020) with one task per update. The
// paper scores every example of a candidate batch of each task by its normalized
// entropy H / log C, weights it by its task's mean entropy over the largest task mean,
// and trains on the b most uncertain examples of all tasks together. Here an update
// trains one task's head, so the task is drawn with probability proportional to that
// weight (mean_t / max_s mean_s), or taken as the largest with "greedy", and the update
// trains on the `keep` most uncertain share of its candidates. Drawing instead of taking
// the largest keeps every task training when one stays the most uncertain for long.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "schedulers.h"

namespace unitrain::schedulers {
namespace {

using json = nlohmann::json;

class Uncertainty : public TaskScheduler, public UncertaintySampling {
 public:
  explicit Uncertainty(const UncertaintyOptions& o) : keep_(o.keep()), greedy_(o.greedy()) {}

  void setup(const std::vector<SchedulerTask>& tasks) override {
    if (tasks.empty()) throw std::invalid_argument("no tasks to schedule");
    weights_.assign(tasks.size(), 1.0 / static_cast<double>(tasks.size()));
  }

  // Multi-task updates draw their tasks here: uniformly.
  size_t next(TaskRng& rng) override {
    return sample_index(std::vector<double>(weights_.size(), 1.0), rng.uniform());
  }

  // The last update's task distribution.
  std::vector<double> probabilities() const override { return weights_; }

  Choice choose(const std::vector<double>& mean_entropy, const std::vector<std::vector<double>>& entropy,
                TaskRng& rng) override {
    const double top = *std::max_element(mean_entropy.begin(), mean_entropy.end());
    std::vector<double> w(mean_entropy.size(), 1.0);
    if (top > 0) {
      for (size_t t = 0; t < w.size(); ++t) w[t] = std::max(mean_entropy[t], 0.0) / top;
    }
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (size_t t = 0; t < w.size(); ++t) weights_[t] = w[t] / total;
    Choice choice;
    choice.task = greedy_ ? static_cast<size_t>(std::max_element(w.begin(), w.end()) - w.begin())
                          : sample_index(w, rng.uniform());
    const std::vector<double>& scores = entropy.at(choice.task);
    std::vector<int64_t> rows(scores.size());
    std::iota(rows.begin(), rows.end(), 0);
    std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
    const auto kept = std::max<size_t>(1, static_cast<size_t>(std::ceil(keep_ * scores.size())));
    rows.resize(std::min(kept, rows.size()));
    std::sort(rows.begin(), rows.end());
    choice.examples = rows;
    return choice;
  }

 private:
  double keep_;
  bool greedy_;
  std::vector<double> weights_;
};

}  // namespace

const options::OptionSet<UncertaintyOptions>& uncertainty_option_set() {
  static const auto set =
      options::OptionSet<UncertaintyOptions>()
          .add(UNITRAIN_OPTION(keep),
               "share of the task's candidates the update trains on, the most uncertain first",
               options::above_up_to(0, 1))
          .add(UNITRAIN_OPTION(greedy), "take the most uncertain task instead of drawing it");
  return set;
}

std::shared_ptr<TaskScheduler> make_uncertainty(const json& o) {
  return std::make_shared<Uncertainty>(uncertainty_option_set().parse(o));
}

}  // namespace unitrain::schedulers

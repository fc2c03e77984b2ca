// The fixed-distribution task schedulers (their formulas: README.md); the plugin entry
// is plugin.cpp.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "schedulers.h"
#include "unitrain/scheduler.h"

namespace unitrain::schedulers {
namespace {

using json = nlohmann::json;

std::vector<double> normalized(std::vector<double> weights) {
  double total = 0;
  for (double w : weights) total += w;
  if (!(total > 0)) throw std::invalid_argument("every task has weight 0: nothing to sample");
  for (double& w : weights) w /= total;
  return weights;
}

// Base for strategies whose distribution is fixed after setup.
class FixedScheduler : public TaskScheduler {
 public:
  void setup(const std::vector<SchedulerTask>& tasks) override {
    if (tasks.empty()) throw std::invalid_argument("no tasks to schedule");
    tasks_ = tasks;
    probabilities_ = normalized(weights(tasks));
  }
  size_t next(TaskRng& rng) override { return sample_index(probabilities_, rng.uniform()); }
  std::vector<double> probabilities() const override { return probabilities_; }

 protected:
  virtual std::vector<double> weights(const std::vector<SchedulerTask>& tasks) const = 0;
  std::vector<SchedulerTask> tasks_;
  std::vector<double> probabilities_;
};

// p_i = r_i / sum r (UniT's ratios).
class Ratios : public FixedScheduler {
  std::vector<double> weights(const std::vector<SchedulerTask>& tasks) const override {
    std::vector<double> w;
    for (const auto& t : tasks) w.push_back(t.ratio);
    return w;
  }
};

class Uniform : public FixedScheduler {
  std::vector<double> weights(const std::vector<SchedulerTask>& tasks) const override {
    return std::vector<double>(tasks.size(), 1.0);
  }
};

// p_i ∝ (min(n_i, K) / sum)^(1/T): T = 1 proportional, T -> inf uniform.
class Temperature : public FixedScheduler {
 public:
  explicit Temperature(const TemperatureOptions& o)
      : temperature_(o.temperature()), cap_(o.size_cap()) {}

 private:
  std::vector<double> weights(const std::vector<SchedulerTask>& tasks) const override {
    std::vector<double> sizes;
    for (const auto& t : tasks) {
      sizes.push_back(static_cast<double>(cap_ > 0 ? std::min(t.num_samples, cap_) : t.num_samples));
    }
    sizes = normalized(sizes);
    for (double& s : sizes) s = std::pow(s, 1.0 / temperature_);
    return sizes;
  }
  double temperature_;
  int64_t cap_;
};

// Cycles through the tasks in order.
class RoundRobin : public TaskScheduler {
 public:
  void setup(const std::vector<SchedulerTask>& tasks) override {
    if (tasks.empty()) throw std::invalid_argument("no tasks to schedule");
    count_ = tasks.size();
  }
  size_t next(TaskRng&) override { return position_++ % count_; }
  std::vector<double> probabilities() const override {
    return std::vector<double>(count_, 1.0 / static_cast<double>(count_));
  }
  json state() const override { return {{"position", position_}}; }
  void load_state(const json& s) override { position_ = s.at("position").get<size_t>(); }

 private:
  size_t count_ = 0;
  size_t position_ = 0;
};

// p_i ∝ n_i over the tasks not yet exhausted in this epoch (MMF): a task whose batches
// of the epoch are all drawn waits until every task is done, then all restart.
class SizeProportional : public TaskScheduler {
 public:
  void setup(const std::vector<SchedulerTask>& tasks) override {
    if (tasks.empty()) throw std::invalid_argument("no tasks to schedule");
    tasks_ = tasks;
    drawn_.assign(tasks.size(), 0);
  }
  size_t next(TaskRng& rng) override {
    auto p = probabilities();
    size_t i = sample_index(p, rng.uniform());
    if (++drawn_[i] >= std::max<int64_t>(1, tasks_[i].batches_per_epoch)) {
      bool all_done = true;
      for (size_t j = 0; j < tasks_.size(); ++j) {
        all_done = all_done && drawn_[j] >= std::max<int64_t>(1, tasks_[j].batches_per_epoch);
      }
      if (all_done) {
        std::fill(drawn_.begin(), drawn_.end(), 0);
        ++epoch_;
      }
    }
    return i;
  }
  std::vector<double> probabilities() const override {
    std::vector<double> w;
    for (size_t i = 0; i < tasks_.size(); ++i) {
      bool done = drawn_[i] >= std::max<int64_t>(1, tasks_[i].batches_per_epoch);
      w.push_back(done ? 0.0 : static_cast<double>(tasks_[i].num_samples));
    }
    return normalized(w);
  }
  json state() const override { return {{"drawn", drawn_}, {"epoch", epoch_}}; }
  void load_state(const json& s) override {
    drawn_ = s.at("drawn").get<std::vector<int64_t>>();
    epoch_ = s.at("epoch").get<int64_t>();
    if (drawn_.size() != tasks_.size()) throw std::invalid_argument("scheduler state has another number of tasks");
  }

 private:
  std::vector<SchedulerTask> tasks_;
  std::vector<int64_t> drawn_;
  int64_t epoch_ = 0;
};

// Stickland & Murray: p_i ∝ n_i^α, α = 1 − 0.8·e/(E−1) for epoch e = 0..E−1, where an
// epoch is sum_i batches_per_epoch_i iterations.
class Annealed : public TaskScheduler {
 public:
  explicit Annealed(const AnnealedOptions& o) : num_epochs_(o.num_epochs()) {}
  void setup(const std::vector<SchedulerTask>& tasks) override {
    if (tasks.empty()) throw std::invalid_argument("no tasks to schedule");
    tasks_ = tasks;
    steps_per_epoch_ = 0;
    for (const auto& t : tasks) steps_per_epoch_ += std::max<int64_t>(1, t.batches_per_epoch);
  }
  size_t next(TaskRng& rng) override {
    size_t i = sample_index(probabilities(), rng.uniform());
    ++step_;
    return i;
  }
  double alpha() const {
    int64_t epoch = std::min(step_ / steps_per_epoch_, num_epochs_ - 1);
    return num_epochs_ == 1 ? 1.0 : 1.0 - 0.8 * static_cast<double>(epoch) / static_cast<double>(num_epochs_ - 1);
  }
  std::vector<double> probabilities() const override {
    std::vector<double> w;
    for (const auto& t : tasks_) w.push_back(std::pow(static_cast<double>(t.num_samples), alpha()));
    return normalized(w);
  }
  json state() const override { return {{"step", step_}}; }
  void load_state(const json& s) override { step_ = s.at("step").get<int64_t>(); }

 private:
  std::vector<SchedulerTask> tasks_;
  int64_t num_epochs_;
  int64_t steps_per_epoch_ = 1;
  int64_t step_ = 0;
};

}  // namespace

const options::OptionSet<TemperatureOptions>& temperature_option_set() {
  static const auto set =
      options::OptionSet<TemperatureOptions>()
          .add(UNITRAIN_OPTION(temperature),
               "T: 1 samples by size, larger T flattens towards uniform", options::above(0))
          .add(UNITRAIN_OPTION(size_cap), "K, the size counted at most per task; 0 = no cap");
  return set;
}

const options::OptionSet<AnnealedOptions>& annealed_option_set() {
  static const auto set = options::OptionSet<AnnealedOptions>().add(
      UNITRAIN_OPTION(num_epochs), "E, the epochs over which α falls from 1 to 0.2",
      options::at_least(1));
  return set;
}

std::shared_ptr<TaskScheduler> make_ratios(const json&) { return std::make_shared<Ratios>(); }
std::shared_ptr<TaskScheduler> make_uniform(const json&) { return std::make_shared<Uniform>(); }
std::shared_ptr<TaskScheduler> make_round_robin(const json&) { return std::make_shared<RoundRobin>(); }
std::shared_ptr<TaskScheduler> make_size_proportional(const json&) {
  return std::make_shared<SizeProportional>();
}
std::shared_ptr<TaskScheduler> make_temperature(const json& o) {
  return std::make_shared<Temperature>(temperature_option_set().parse(o));
}
std::shared_ptr<TaskScheduler> make_annealed(const json& o) {
  return std::make_shared<Annealed>(annealed_option_set().parse(o));
}


}  // namespace unitrain::schedulers

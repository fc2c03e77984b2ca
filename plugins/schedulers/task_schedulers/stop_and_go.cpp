// 12-in-1's stop-and-go (Lu et al. 2020): tasks take turns (round robin); a task whose
// validation metric gained less than min_gain (relative) at `patience` evaluations in a
// row is stopped and then trains only at every stopped_every-th of its turns; it goes
// again when its metric falls more than resume_drop (relative) below its best.
#include <cmath>
#include <stdexcept>

#include "schedulers.h"

namespace unitrain::schedulers {
namespace {

using json = nlohmann::json;

class StopAndGo : public TaskScheduler, public SchedulerFeedback, public HeadlineMetrics {
 public:
  explicit StopAndGo(const StopAndGoOptions& o)
      : min_gain_(o.min_gain()),
        patience_(o.patience()),
        stopped_every_(o.stopped_every()),
        resume_drop_(o.resume_drop()) {
    // NOTE: checked here rather than by rules, whose messages differ from these (tested).
    if (patience_ < 1) throw std::invalid_argument("patience must be >= 1");
    if (stopped_every_ < 1) throw std::invalid_argument("stopped_every must be >= 1");
  }

  void setup(const std::vector<SchedulerTask>& tasks) override {
    if (tasks.empty()) throw std::invalid_argument("no tasks to schedule");
    names_.clear();
    for (const auto& t : tasks) names_.push_back(t.name);
    tasks_.assign(tasks.size(), TaskState{});
  }

  size_t next(TaskRng&) override {
    // Terminates: every stopped task trains at one of its stopped_every turns.
    while (true) {
      const size_t i = position_++ % tasks_.size();
      TaskState& t = tasks_[i];
      if (!t.stopped) return i;
      if (t.skipped_turns++ % stopped_every_ == stopped_every_ - 1) return i;
    }
  }

  std::vector<double> probabilities() const override {
    std::vector<double> w;
    double total = 0;
    for (const auto& t : tasks_) total += w.emplace_back(t.stopped ? 1.0 / stopped_every_ : 1.0);
    for (double& v : w) v /= total;
    return w;
  }

  void observe_loss(size_t, double) override {}

  void observe_headlines(const std::vector<std::string>& metric_of_task) override {
    headlines_ = metric_of_task;
  }

  void observe_evaluation(int64_t, const json& metrics) override {
    for (size_t i = 0; i < tasks_.size(); ++i) {
      if (!metrics.contains(names_[i]) || metrics[names_[i]].empty()) continue;
      // The task's headline metric (its evaluator's), else its first.
      const json& all = metrics[names_[i]];
      const bool named = i < headlines_.size() && all.contains(headlines_[i]);
      const double value = (named ? all.at(headlines_[i]) : all.begin().value()).get<double>();
      TaskState& t = tasks_[i];
      if (t.evaluations > 0) {
        const double gain = (value - t.last) / std::max(std::abs(t.last), 1e-12);
        t.flat = gain < min_gain_ ? t.flat + 1 : 0;
      }
      t.best = t.evaluations == 0 ? value : std::max(t.best, value);
      t.last = value;
      ++t.evaluations;
      if (!t.stopped && t.flat >= patience_) {
        t.stopped = true;
        t.skipped_turns = 0;
      } else if (t.stopped && value < t.best * (1.0 - resume_drop_)) {
        t.stopped = false;
        t.flat = 0;
      }
    }
  }

  json state() const override {
    json tasks = json::array();
    for (const auto& t : tasks_) {
      tasks.push_back({{"stopped", t.stopped}, {"best", t.best}, {"last", t.last},
                       {"flat", t.flat}, {"evaluations", t.evaluations},
                       {"skipped_turns", t.skipped_turns}});
    }
    return {{"position", position_}, {"tasks", tasks}};
  }
  void load_state(const json& s) override {
    position_ = s.at("position").get<size_t>();
    const json& tasks = s.at("tasks");
    if (tasks.size() != tasks_.size()) throw std::invalid_argument("scheduler state has another number of tasks");
    for (size_t i = 0; i < tasks_.size(); ++i) {
      TaskState& t = tasks_[i];
      t.stopped = tasks[i].at("stopped").get<bool>();
      t.best = tasks[i].at("best").get<double>();
      t.last = tasks[i].at("last").get<double>();
      t.flat = tasks[i].at("flat").get<int64_t>();
      t.evaluations = tasks[i].at("evaluations").get<int64_t>();
      t.skipped_turns = tasks[i].at("skipped_turns").get<int64_t>();
    }
  }

 private:
  struct TaskState {
    bool stopped = false;
    double best = 0, last = 0;
    int64_t flat = 0;           // evaluations in a row with a gain below min_gain
    int64_t evaluations = 0;
    int64_t skipped_turns = 0;  // turns since the task stopped
  };
  std::vector<std::string> headlines_;  // each task's headline metric (observe_headlines)
  double min_gain_;
  int64_t patience_, stopped_every_;
  double resume_drop_;
  std::vector<std::string> names_;
  std::vector<TaskState> tasks_;
  size_t position_ = 0;
};

}  // namespace

const options::OptionSet<StopAndGoOptions>& stop_and_go_option_set() {
  static const auto set =
      options::OptionSet<StopAndGoOptions>()
          .add(UNITRAIN_OPTION(min_gain),
               "relative gain of the headline metric below which an evaluation counts as flat")
          .add(UNITRAIN_OPTION(patience), "flat evaluations in a row that stop a task (>= 1)")
          .add(UNITRAIN_OPTION(stopped_every),
               "a stopped task trains at every `stopped_every`-th of its turns (>= 1)")
          .add(UNITRAIN_OPTION(resume_drop),
               "relative fall below its best metric that sets a stopped task going again");
  return set;
}

std::shared_ptr<TaskScheduler> make_stop_and_go(const json& o) {
  return std::make_shared<StopAndGo>(stop_and_go_option_set().parse(o));
}

}  // namespace unitrain::schedulers

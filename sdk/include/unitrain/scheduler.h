// Task scheduling: which task trains at each iteration (the strategies and their
// options: `unitrain plugins show ratios`). Strategies are
// plugins of kind "scheduler"; the trainer owns the random engine so that the task
// sequence depends only on the experiment seed and is saved in checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/plugin.h"

namespace unitrain {

// A 64-bit engine (xoshiro256**, seeded through splitmix64) with a portable state:
// the same seed gives the same sequence with every standard library.
class TaskRng {
 public:
  explicit TaskRng(uint64_t seed = 0);
  uint64_t next();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  uint64_t s_[4];
};

// Inverts the CDF of `probabilities` (non-negative, any positive sum) at u in [0, 1).
// Zero-probability entries are never chosen.
size_t sample_index(const std::vector<double>& probabilities, double u);

struct SchedulerTask {
  std::string name;
  int64_t num_samples = 0;        // records in the task's training split
  int64_t batches_per_epoch = 0;  // ceil(num_samples / batch_size)
  double ratio = 1.0;             // the task's "ratio" from the experiment
};

class TaskScheduler : public PluginObject {
 public:
  // Called once before the first draw, with the tasks in experiment order.
  virtual void setup(const std::vector<SchedulerTask>& tasks) = 0;
  // The index (into setup's list) of the task of the next iteration.
  virtual size_t next(TaskRng& rng) = 0;
  // The current sampling distribution (sums to 1), for logs and tests.
  virtual std::vector<double> probabilities() const = 0;
  // Counters the strategy keeps (positions, exhausted tasks, epochs) for checkpoints.
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void load_state(const nlohmann::json& /*state*/) {}
};

// What a strategy that adapts to training (to its tasks' losses, to their validation
// metrics) is told. A scheduler plugin that wants it also derives from this class; the
// trainer finds it with dynamic_cast, so schedulers built without it are unaffected.
// Every rank of a data-parallel run is told the same values (losses are means over the
// ranks, metrics are computed over every rank's predictions), so their draws stay the
// same as long as the strategy draws only from the TaskRng it is given. What a strategy
// has learned belongs in its state(), so that a resumed run goes on exactly.
class SchedulerFeedback {
 public:
  virtual ~SchedulerFeedback() = default;
  // After each optimizer update, once per micro-batch in draw order: the task drawn
  // (index into setup's list) and its loss (the sum of the head's losses before
  // loss_weight). Called before the next draw.
  virtual void observe_loss(size_t task, double loss) = 0;
  // After each evaluation (training.eval_every and the final one), with the number of
  // updates so far and {task: {metric: value}}. Which metric is a task's headline
  // (accuracy, VQA accuracy, COCO AP; higher is better) a strategy learns through
  // HeadlineMetrics below.
  virtual void observe_evaluation(int64_t step, const nlohmann::json& metrics) = 0;
};

// What a strategy that reads validation metrics is also told, when it derives from this
// class too (found with dynamic_cast): each task's headline metric, the name its
// evaluator gives (Evaluator::headline: "ap" for COCO, "vqa_accuracy" for VQAv2), in
// setup's order, right before each SchedulerFeedback::observe_evaluation.
class HeadlineMetrics {
 public:
  virtual ~HeadlineMetrics() = default;
  // metric_of_task[t]: the key of task t's headline in the metrics that follow; empty
  // when the task was not evaluated.
  virtual void observe_headlines(const std::vector<std::string>& metric_of_task) = 0;
};

// What a strategy that picks from the model's uncertainty is told (CA-MTL's uncertainty
// sampling, Pilault et al. 2020). Before each update the trainer draws a candidate batch
// of every task, predicts it (evaluation mode, no gradients) and scores each example by
// the normalized entropy of its prediction, from 0 (certain) to 1 (uniform); the
// strategy picks the task and the examples the update trains on, and the other
// candidates are dropped. A scheduler plugin that wants it also derives from this class
// (found with dynamic_cast); its next() is then used only by multi-task updates.
class UncertaintySampling {
 public:
  virtual ~UncertaintySampling() = default;
  struct Choice {
    size_t task = 0;                // index into setup's list
    std::vector<int64_t> examples;  // rows of that task's candidate batch, at least one
  };
  // mean_entropy[t]: the mean over task t's candidates (over every rank's candidates in
  // a data-parallel run: the same on every rank, so draw the task from it and `rng`
  // only); entropy[t]: this process's candidates of task t, one value per row.
  virtual Choice choose(const std::vector<double>& mean_entropy,
                        const std::vector<std::vector<double>>& entropy, TaskRng& rng) = 0;
};

}  // namespace unitrain

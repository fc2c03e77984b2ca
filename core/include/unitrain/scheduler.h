// Task scheduling: which task trains at each iteration (DESIGN.md §4). Strategies are
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

}  // namespace unitrain

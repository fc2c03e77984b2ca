// A dataset reader: one split of one dataset, read from its real on-disk format.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/batch.h"
#include "unitrain/plugin.h"

namespace unitrain {

// What a task predicts. `kind` is "classification", "vqa" or "detection".
struct LabelSpace {
  std::string kind;
  std::vector<std::string> names;  // label / answer / class names, by contiguous id
  int64_t num_attributes = 0;      // detection with attributes (Visual Genome)
};

// Accumulates predictions over an evaluation pass and computes the task's metrics.
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual void add(const Predictions& predictions, const Batch& batch) = 0;
  // {"metric": value, ...}, higher is better.
  virtual nlohmann::json compute() const = 0;
  // The metric of a compute() result that stands for the task (the evaluation table's
  // row). Default: the result's first key (keys are sorted by name).
  virtual std::string headline(const nlohmann::json& metrics) const {
    return metrics.empty() ? std::string() : metrics.begin().key();
  }
  // The headline metric's value for a uniform random guess over `labels` (the
  // evaluation table, the run's tasks.json). Default: 1 / the number of labels; 0 for
  // detection and for labels without names.
  virtual double chance_level(const LabelSpace& labels) const {
    return labels.kind == "detection" || labels.names.empty()
               ? 0.0
               : 1.0 / static_cast<double>(labels.names.size());
  }
  // Further metrics of a compute() result that the evaluation table shows under the
  // headline, each with its chance level (detection: AP50, chance 0). Default: none.
  virtual std::vector<std::pair<std::string, double>> table_rows(
      const nlohmann::json& metrics, const LabelSpace& labels) const {
    (void)metrics;
    (void)labels;
    return {};
  }
};

// One split of a dataset. Options carry the split name ("train", "val", ...); the
// experiment builder creates one instance per split it needs.
class Dataset : public PluginObject {
 public:
  virtual int64_t size() const = 0;
  // Decodes record `index`. `seed` drives random augmentation, so the sample depends
  // only on (seed, index), never on which worker thread reads it.
  virtual Sample get(int64_t index, uint64_t seed) const = 0;
  virtual LabelSpace labels() const = 0;
  // A fresh evaluator for this split's metrics.
  virtual std::unique_ptr<Evaluator> evaluator() const = 0;
  // Records skipped while loading, by reason (for `unitrain data stats`).
  virtual nlohmann::json skipped() const { return nlohmann::json::object(); }
};

}  // namespace unitrain

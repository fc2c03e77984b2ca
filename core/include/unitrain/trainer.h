// The multitask trainer: one task per iteration chosen by the task scheduler, AdamW
// with weight-decay groups and a separate backbone learning rate, warmup then cosine /
// linear decay, global-norm clipping, gradient accumulation, periodic evaluation,
// atomic checkpoints and exact resume (the "training" block: docs/experiments.md).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/batch.h"
#include "unitrain/config.h"
#include "unitrain/training_options.h"

namespace unitrain {

class Registry;
class ProcessGroup;

struct TrainerConfig {
  std::filesystem::path run_dir;  // where everything is written
  bool resume = false;            // continue from run_dir's last checkpoint
  // With resume: the checkpoint file or run folder to continue from; empty = run_dir.
  // A folder whose last.pt does not open falls back to its newest step file that does.
  std::filesystem::path resume_from;
  // A new run (not resume) in a run_dir that is not empty: false = TrainingError; true
  // = start over, deleting the files a run writes there (checkpoints/, metrics.jsonl,
  // eval.json, throughput.json, experiment.resolved.json) and keeping any other file.
  bool force = false;
  // Evaluation only (what `unitrain eval` does): no training split is opened and no
  // init_from file is read (the weights come from load_weights); train() refuses to run.
  bool evaluate_only = false;
  // The split evaluate() reads when given none; empty = each task's val_split. It is
  // opened, with the training split, when the trainer is built: a missing file stops
  // the run before its first step, not at its first evaluation.
  std::string eval_split;
  bool console = true;            // live progress line on stderr
  // List every name in the init_from reports printed at the start (else counts only).
  bool verbose = false;
  // When set, training batches come from here instead of the data loaders: called with
  // the drawn task once per micro-batch. For benchmarks and tests that feed fixed
  // batches; checkpoints still record the (unused) loader positions.
  std::function<Batch(const std::string& task)> batch_source;
  // Data-parallel training in a group of processes (docs/distributed.md): batch sizes
  // are per rank, gradients and losses are averaged over the ranks, evaluation is
  // sharded and gathered, and only rank 0 writes into run_dir. Null: one process.
  std::shared_ptr<ProcessGroup> group;
};

// Per-task results of an evaluation: {task: {metric: value}}.
using EvalResult = nlohmann::json;

class Trainer {
 public:
  // Builds the model, datasets, loaders, optimizer and scheduler from a validated
  // experiment; with config.resume, restores everything from the last checkpoint.
  Trainer(const Experiment& experiment, const Registry& registry, TrainerConfig config);
  ~Trainer();

  // Trains until training.max_steps; returns the final evaluation. The writing process
  // locks run_dir meanwhile and refuses an old run's files (see TrainerConfig::force).
  // A step whose gradient is not finite (with a finite loss) stops with a TrainingError
  // naming the step, task and first such parameter, before any update.
  EvalResult train();
  // One evaluation pass over every task's `split` (val_split when empty).
  EvalResult evaluate(const std::string& split = "", int64_t max_batches = 0);

  // Loss of each optimizer update so far in this process, for tests: (step, task, loss).
  struct StepRecord {
    int64_t step;
    std::string task;
    double loss;
  };
  const std::vector<StepRecord>& history() const;
  int64_t step() const;
  torch::nn::Module& model();

  // A table of every task's headline metric (Evaluator::headline) next to its chance
  // level (Evaluator::chance_level: by default 1 / number of labels; 0 for detection AP).
  std::string eval_table(const EvalResult& result) const;

  // Training throughput of this process per task, from the optimizer updates whose
  // batch came from it: {task: {steps, share, samples, seconds, it_per_s,
  // samples_per_s, phases: {data, forward, backward, update}}} plus "all"; seconds cover
  // waiting for the batch, forward with the loss, backward, clipping and the update
  // (evaluation and checkpoints excluded) and `phases` splits them (seconds each; on CUDA
  // the split is approximate: kernels run asynchronously until the loss and the
  // gradient norm are read). train() also writes it to RUN_DIR/throughput.json.
  // Counters start at zero in a resumed process.
  nlohmann::json throughput() const;
  // The same as a table, one row per task and one for all.
  std::string throughput_table() const;

  // Loads model weights only (for `unitrain eval` / `predict`).
  void load_weights(const std::filesystem::path& checkpoint);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A fresh run folder, created here so that no other run gets it:
// runs/<name>-<YYYYmmdd-HHMMSS>, with -2, -3... when a run started in the same second.
std::filesystem::path default_run_dir(const Experiment& experiment);

}  // namespace unitrain

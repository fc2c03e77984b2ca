// Building a run from its validated experiment: the RunSetup that training and
// evaluation share (seed, device, model, process group, each task's datasets), and the
// optimizer and task scheduler that only training needs.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/adamw.h"
#include "unitrain/combine.h"
#include "unitrain/config.h"
#include "unitrain/data/loader.h"
#include "unitrain/dataset.h"
#include "unitrain/model.h"
#include "unitrain/scheduler.h"
#include "unitrain/training_options.h"
#include "train/data_parallel.h"

namespace unitrain {
class Registry;
class ProcessGroup;
}  // namespace unitrain

namespace unitrain::train {

// One task of the run (tasks.<name>): its datasets, its training loader and, for the
// throughput report, its counters.
struct TaskData {
  std::string name;
  nlohmann::json spec;  // tasks.<name>
  double loss_weight = 1.0;
  int64_t batch_size = 1;
  int64_t eval_batch_size = 1;
  std::shared_ptr<const Dataset> train;  // null when the run only evaluates
  // The split evaluation reads by default (TrainerConfig::eval_split, else val_split),
  // opened with the training split so that a missing file stops the run at its start.
  std::string eval_split;
  std::shared_ptr<const Dataset> eval;
  std::unique_ptr<data::DataLoader> loader;  // training batches; set when training starts
  double last_loss = NAN;
  // Throughput of this process (not restored on resume): optimizer updates whose last
  // micro-batch came from this task, samples of every micro-batch, and the wall time of
  // its steps, `seconds`, split into waiting for the batch (data_s), forward with the
  // loss (forward_s), backward (backward_s) and clipping + optimizer step (update_s).
  // collectives_s: the part of `seconds` spent in data-parallel collectives (transfers
  // and waits for the slower ranks), whichever phase held them.
  int64_t steps = 0;
  int64_t samples = 0;
  double seconds = 0;
  double data_s = 0, forward_s = 0, backward_s = 0, update_s = 0;
  double collectives_s = 0;
};

struct RunSetupOptions {
  // Read the model's init_from files (false when a checkpoint's weights replace them:
  // a resumed run, an evaluation).
  bool load_init_from = true;
  // Open each task's training split (false: evaluation only).
  bool open_training_splits = true;
  // The split evaluation reads when given none; empty = each task's val_split.
  std::string eval_split;
  bool console = true;   // print the init_from reports on stderr
  bool verbose = false;  // ...listing every name (else counts only)
  // Data parallelism when it has more than one process; null: one process.
  std::shared_ptr<ProcessGroup> group;
};

// What training and evaluation share, built in this order from a validated experiment:
// seed and threads set, the model built and moved to its device, the process group
// checked and the model broadcast from rank 0, every task's splits opened and checked
// against the model (ConfigError / DataError naming the experiment's JSON pointer).
struct RunSetup {
  RunSetup(const Experiment& experiment, const Registry& registry, RunSetupOptions options);

  // The task's dataset for `split`, created from its experiment block.
  std::shared_ptr<const Dataset> make_dataset(const std::string& task,
                                              const std::string& split) const;
  data::LoaderOptions loader_options(const TaskData& t, bool training) const;

  Experiment experiment;
  const Registry& registry;
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;
  int64_t workers = 1;
  int64_t prefetch = 4;
  int64_t worker_nice = 0;  // data.worker_nice
  std::shared_ptr<data::QueueBudget> queue_budget;  // shared by every loader of the run
  UnitModel model{nullptr};
  // Data parallelism (null in one process); only rank 0 (the writer) writes files.
  std::unique_ptr<DataParallel> parallel;
  bool writer = true;
  std::vector<TaskData> tasks;  // in experiment order
};

// The optimizer over the model's trainable parameters, in four groups: {backbone, rest}
// x {decay, no decay}. Biases and norm weights (1-D) get no weight decay; parameters
// under a "backbone" module get backbone_lr.
struct Optimization {
  std::unique_ptr<FlatAdamW> optimizer;
  std::vector<double> group_base_lr;         // peak lr of each parameter group
  std::vector<torch::Tensor> parameters;     // every trainable one
  std::vector<std::string> parameter_names;  // of `parameters`, for messages
};
Optimization build_optimizer(UnitModelImpl& model, const TrainingOptions& options);

// The "scheduler" block's plugin, set up with every task's training split.
std::shared_ptr<TaskScheduler> build_scheduler(const RunSetup& setup);

// The /step/combine block's plugin (not yet set up).
std::shared_ptr<GradientCombiner> build_combiner(const RunSetup& setup);

// The run's task names, in experiment order.
std::vector<std::string> task_names(const RunSetup& setup);

}  // namespace unitrain::train

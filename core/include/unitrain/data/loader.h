// A multi-threaded prefetching loader over one Dataset.
//
// Batches are produced by worker threads into a bounded queue and delivered strictly in
// order, so the batches of a seed are identical whatever the number of workers. Each
// epoch's order is a permutation drawn from (seed, task, epoch); the sample at position
// p of epoch e is decoded with a seed drawn from (seed, task, epoch, index), so random
// augmentation does not depend on threads either. Training iteration is infinite
// (epoch after epoch); evaluation iterates one epoch in file order.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "unitrain/batch.h"
#include "unitrain/data/worker_budget.h"
#include "unitrain/dataset.h"

namespace unitrain::data {

struct LoaderOptions {
  // Samples per batch. Default 8.
  int64_t batch_size = 8;
  // Worker threads; 0 loads in the calling thread. Default: the cores available to the
  // process (available_cores(); a run splits them over its tasks, see loader_budget()).
  // At most `prefetch` are started: a thread beyond that would have no batch to decode.
  // Results do not depend on it.
  int64_t num_workers = available_cores();
  // Batches decoded ahead of the consumer (bounded queue, queued plus in progress), at
  // least 1. Default 4. More hides decoding spikes and lets more workers decode at
  // once, at the cost of memory (a 800x1333 batch of 8 is ~100 MB).
  int64_t prefetch = 4;
  // Shuffle each epoch (training). Default true. When false, file order.
  bool shuffle = true;
  // Repeat epochs forever (training). Default true. When false, next() returns nullopt
  // after one epoch (evaluation).
  bool infinite = true;
  // Drop an epoch's last incomplete batch. Default false.
  bool drop_last = false;
  // The experiment seed; the task name is mixed in. Default 0.
  uint64_t seed = 0;
  // Task name: stamped on batches and mixed into the seed.
  std::string task;
  // Device the batches are delivered on. For CUDA the workers pin host memory and the
  // copy is non-blocking. Default CPU.
  torch::Device device = torch::kCPU;
  // Data parallelism: batch b of an epoch is the global batch of batch_size x
  // world_size consecutive positions of the epoch's order, and this loader delivers its
  // rank's slice of it (positions b G + rank B ... + B), so the ranks read disjoint
  // samples and together the same ones as one process with batch G. In training a slice
  // that runs past the epoch's end wraps around to its start, so every rank's batch is
  // full; in evaluation a rank gets no batch where its slice is empty. Defaults 0 and 1.
  int64_t rank = 0;
  int64_t world_size = 1;
  // Bytes of queued batches, shared with the run's other loaders (see QueueBudget).
  // Default none: only `prefetch` bounds the queue.
  std::shared_ptr<QueueBudget> queue_budget;
  // Worker threads run this much lower in the kernel's scheduling priority (nice, 0-19)
  // than the thread that starts them, so that the training thread preempts decoding and
  // decoding fills its waits (on collectives, on the device). 0 = the same priority.
  // Results do not depend on it.
  int64_t worker_nice = 0;
};

// Where a loader stands, for checkpoints: `position` samples of epoch `epoch` have
// been delivered (position is a multiple of the global batch size, batch_size x
// world_size, or 0; every rank of a group stands at the same place).
struct LoaderState {
  int64_t epoch = 0;
  int64_t position = 0;
};

// A record the dataset found bad when it was read (BadRecordError under "on_bad_record":
// "skip"): the loader leaves it out from then on (see BadRecordError for how).
struct SkippedRecord {
  int64_t index = 0;    // dataset index
  std::string reason;   // "corrupt_image", "truncated_image", ...
  std::string message;  // the dataset's message, naming the file
};

class DataLoader {
 public:
  // Starts the workers at `start` (a state saved by state()). ConfigError on invalid
  // options; DataError when the threads cannot be started (the ones already started are
  // stopped and joined first).
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options,
             LoaderState start = {});
  ~DataLoader();  // stops and joins the workers
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch, on options.device. Blocks until it is ready. Rethrows a worker's
  // failure as DataError (the loader then stays failed). nullopt at the end of the
  // epoch when not infinite.
  std::optional<Batch> next();

  // Records left out at read time so far, by reason ({"corrupt_image": 2}); each record
  // counts once however often it was drawn.
  nlohmann::json skipped() const;
  // The records left out since the previous call, in the order they were found (the
  // trainer prints them once).
  std::vector<SkippedRecord> take_new_skips();

  // The position after the last batch next() returned.
  LoaderState state() const;
  // Global batches in an epoch: ceil(size / (batch_size x world_size)) (floor with
  // drop_last).
  int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // The dataset indices of batch `batch` of `epoch` (deterministic; used by workers
  // and tests).
  std::vector<int64_t> batch_indices(int64_t epoch, int64_t batch) const;
  // The seed passed to Dataset::get for `index` in `epoch`.
  uint64_t sample_seed(int64_t epoch, int64_t index) const;

 private:
  struct Work {
    int64_t sequence;
    int64_t epoch;
    int64_t batch;  // within the epoch
  };
  struct Result {
    std::optional<Batch> batch;
    std::exception_ptr error;
    int64_t bytes = 0;  // of the batch's tensors, counted in the queue budget
  };

  // The next work item, if any and the queue has room; sets budget_blocked_ when only
  // the shared queue budget stands in the way.
  std::optional<Work> claim_locked();
  // An empty batch (no error) when every record of an evaluation batch was left out.
  Result produce(const Work& work) const;
  // Sample `index` of `epoch`, or nullopt when the dataset finds it bad under "skip"
  // (then remembered, so it is not decoded again). Other errors propagate.
  std::optional<Sample> read(int64_t epoch, int64_t index) const;
  // Training: the sample for position `index`, else the next readable record after it
  // (index + 1, + 2, ... modulo the size). DataError when none is readable.
  Sample read_or_substitute(int64_t epoch, int64_t index) const;
  void worker_loop();
  void start_workers(int64_t count);  // DataError (after stopping the started ones)
  void stop_workers();                // stops and joins them
  std::shared_ptr<const std::vector<int64_t>> permutation(int64_t epoch) const;
  // Batches this loader delivers in one epoch: every global batch in training, those
  // where this rank's slice is not empty in evaluation.
  int64_t own_batches_per_epoch() const;

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  uint64_t task_seed_;
  int64_t size_;
  int64_t global_batch_;  // batch_size x world_size
  int64_t batches_per_epoch_;
  LoaderState start_;

  mutable std::mutex mutex_;
  std::condition_variable work_ready_;    // workers wait for room in the queue
  std::condition_variable result_ready_;  // the consumer waits for its batch
  int64_t next_claim_ = 0;                // sequence number of the next batch to produce
  int64_t next_deliver_ = 0;              // sequence number next() returns next
  std::map<int64_t, Result> results_;
  std::exception_ptr failure_;
  bool stopping_ = false;
  bool budget_blocked_ = false;
  mutable std::mutex permutation_mutex_;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> permutations_;
  std::vector<std::thread> workers_;
  mutable std::mutex skipped_mutex_;
  mutable std::map<int64_t, SkippedRecord> skipped_;  // by dataset index
  mutable std::vector<SkippedRecord> new_skips_;
};

}  // namespace unitrain::data

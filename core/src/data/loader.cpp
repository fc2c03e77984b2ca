#include "unitrain/data/loader.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <numeric>
#include <system_error>

#include <fmt/format.h>

#include "unitrain/data/random.h"
#include "unitrain/data/records.h"
#include "unitrain/errors.h"

namespace unitrain::data {
namespace {

// Bytes held by a batch's tensors (what it costs in a queue).
int64_t batch_bytes(const Batch& b) {
  int64_t bytes = 0;
  auto add = [&bytes](const torch::Tensor& t) {
    if (t.defined()) bytes += static_cast<int64_t>(t.nbytes());
  };
  for (const auto* t : {&b.image, &b.image_mask, &b.image_size, &b.orig_size, &b.image_id,
                        &b.input_ids, &b.text_mask, &b.segment_ids, &b.labels, &b.soft_labels}) {
    add(*t);
  }
  for (const auto* list : {&b.boxes, &b.classes, &b.attributes}) {
    for (const auto& t : *list) add(t);
  }
  return bytes;
}

}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options,
                       LoaderState start)
    : dataset_(std::move(dataset)), options_(std::move(options)), start_(start) {
  if (!dataset_) throw DataError("DataLoader: no dataset");
  const std::string task = options_.task.empty() ? "?" : options_.task;
  if (options_.batch_size <= 0) {
    throw ConfigError(fmt::format("task '{}': batch_size must be > 0, found {}", task,
                                  options_.batch_size));
  }
  if (options_.num_workers < 0) {
    throw ConfigError(fmt::format("task '{}': num_workers must be >= 0, found {}", task,
                                  options_.num_workers));
  }
  if (options_.prefetch < 1) {
    throw ConfigError(fmt::format("task '{}': prefetch must be >= 1, found {}", task,
                                  options_.prefetch));
  }
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    throw ConfigError(fmt::format("task '{}': rank {} outside a world of {}", task,
                                  options_.rank, options_.world_size));
  }
  size_ = dataset_->size();
  if (size_ <= 0) throw DataError(fmt::format("task '{}': the dataset has no records", task));
  global_batch_ = options_.batch_size * options_.world_size;
  batches_per_epoch_ = options_.drop_last ? size_ / global_batch_
                                          : (size_ + global_batch_ - 1) / global_batch_;
  if (batches_per_epoch_ == 0) {
    throw DataError(fmt::format(
        "task '{}': {} records make no full batch of {} with drop_last", task, size_,
        global_batch_));
  }
  if (start_.epoch < 0 || start_.position < 0 || start_.position % global_batch_ != 0 ||
      start_.position / global_batch_ >= batches_per_epoch_) {
    throw DataError(fmt::format(
        "task '{}': cannot resume at epoch {} position {} (global batch size {}, {} batches "
        "an epoch): the position must be a multiple of the global batch size inside the epoch",
        task, start_.epoch, start_.position, global_batch_, batches_per_epoch_));
  }
  task_seed_ = combine_seeds(options_.seed, hash_string(options_.task));

  start_workers(std::min(options_.num_workers, options_.prefetch));
}

void DataLoader::start_workers(int64_t count) {
  try {
    workers_.reserve(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) workers_.emplace_back([this] { worker_loop(); });
  } catch (const std::exception& e) {  // std::system_error from std::thread
    // The destructor does not run for a throwing constructor, and a joinable thread's
    // destructor calls std::terminate: stop the started ones here.
    const auto started = workers_.size();
    stop_workers();
    throw DataError(fmt::format(
        "task '{}': could not start loader thread {} of {}: {} (a process or pids limit, "
        "e.g. ulimit -u or a container's pids.max, is reached); lower data.workers",
        options_.task.empty() ? "?" : options_.task, started + 1, count, e.what()));
  }
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

DataLoader::~DataLoader() {
  stop_workers();
  // Batches never taken (an evaluation cut short by eval_max_batches) give their bytes
  // back to the run's shared budget.
  if (options_.queue_budget) {
    for (const auto& [sequence, result] : results_) options_.queue_budget->release(result.bytes);
  }
}

std::shared_ptr<const std::vector<int64_t>> DataLoader::permutation(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(permutation_mutex_);
  auto it = permutations_.find(epoch);
  if (it != permutations_.end()) return it->second;
  auto order = std::make_shared<std::vector<int64_t>>(size_);
  std::iota(order->begin(), order->end(), 0);
  if (options_.shuffle) {
    Rng rng(combine_seeds(task_seed_, static_cast<uint64_t>(epoch)));
    shuffle(*order, rng);
  }
  // Workers only ever need the current and the next epoch.
  while (!permutations_.empty() && permutations_.begin()->first < epoch - 1) {
    permutations_.erase(permutations_.begin());
  }
  permutations_[epoch] = order;
  return order;
}

std::vector<int64_t> DataLoader::batch_indices(int64_t epoch, int64_t batch) const {
  const auto order = permutation(epoch);
  const int64_t begin = batch * global_batch_ + options_.rank * options_.batch_size;
  if (options_.world_size > 1 && options_.infinite) {
    // Full slices for every rank: wrap around to the epoch's start (as PyTorch's
    // DistributedSampler pads), so that no rank waits on a short or empty batch.
    std::vector<int64_t> indices;
    for (int64_t i = 0; i < options_.batch_size; ++i) indices.push_back((*order)[(begin + i) % size_]);
    return indices;
  }
  const int64_t end = std::min(begin + options_.batch_size, size_);
  if (begin >= end) return {};
  return {order->begin() + begin, order->begin() + end};
}

int64_t DataLoader::own_batches_per_epoch() const {
  if (options_.infinite || options_.world_size == 1) return batches_per_epoch_;
  const int64_t offset = options_.rank * options_.batch_size;
  if (offset >= size_) return 0;
  return std::min(batches_per_epoch_, (size_ - offset + global_batch_ - 1) / global_batch_);
}

uint64_t DataLoader::sample_seed(int64_t epoch, int64_t index) const {
  return combine_seeds(combine_seeds(task_seed_, static_cast<uint64_t>(epoch)),
                       static_cast<uint64_t>(index));
}

std::optional<DataLoader::Work> DataLoader::claim_locked() {
  const int64_t first = start_.position / global_batch_;
  const int64_t total = own_batches_per_epoch() - first;  // batches when not infinite
  budget_blocked_ = false;
  if (!options_.infinite && next_claim_ >= total) return std::nullopt;
  if (next_claim_ >= next_deliver_ + options_.prefetch) return std::nullopt;
  // One batch queued or in progress is always allowed, so the consumer never waits on
  // another loader's queue.
  if (options_.queue_budget && next_claim_ > next_deliver_ && options_.queue_budget->full()) {
    budget_blocked_ = true;
    return std::nullopt;
  }
  const int64_t global = first + next_claim_;
  Work work{next_claim_, start_.epoch + global / batches_per_epoch_, global % batches_per_epoch_};
  ++next_claim_;
  return work;
}

std::optional<Sample> DataLoader::read(int64_t epoch, int64_t index) const {
  {
    std::lock_guard<std::mutex> lock(skipped_mutex_);
    if (skipped_.count(index)) return std::nullopt;
  }
  try {
    return dataset_->get(index, sample_seed(epoch, index));
  } catch (const BadRecordError& e) {
    if (!e.skip()) throw;
    std::lock_guard<std::mutex> lock(skipped_mutex_);
    if (skipped_.emplace(index, SkippedRecord{index, e.reason(), e.what()}).second) {
      new_skips_.push_back(skipped_.at(index));
    }
    return std::nullopt;
  }
}

Sample DataLoader::read_or_substitute(int64_t epoch, int64_t index) const {
  for (int64_t k = 0; k < size_; ++k) {
    if (auto sample = read(epoch, (index + k) % size_)) return std::move(*sample);
  }
  std::lock_guard<std::mutex> lock(skipped_mutex_);
  throw DataError(fmt::format(
      "every one of the {} records was left out as unreadable (on_bad_record \"skip\"; "
      "first: {}); check the dataset's image folder",
      size_, skipped_.begin()->second.message));
}

DataLoader::Result DataLoader::produce(const Work& work) const {
  Result result;
  int64_t current = -1;
  try {
    std::vector<Sample> samples;
    for (int64_t index : batch_indices(work.epoch, work.batch)) {
      current = index;
      if (options_.infinite) {
        samples.push_back(read_or_substitute(work.epoch, index));
      } else if (auto sample = read(work.epoch, index)) {
        samples.push_back(std::move(*sample));
      }
    }
    current = -1;
    if (samples.empty()) return result;  // an evaluation batch whose records were all left out
    Batch batch = collate(samples, options_.task);
    if (options_.device.is_cuda()) batch = batch.pin_memory();
    result.batch = std::move(batch);
  } catch (const std::exception& e) {
    const std::string where =
        current >= 0 ? fmt::format("task '{}', epoch {}, record {}", options_.task, work.epoch,
                                   current)
                     : fmt::format("task '{}', epoch {}, batch {}", options_.task, work.epoch,
                                   work.batch);
    result.error = std::make_exception_ptr(DataError(fmt::format("{}: {}", where, e.what())));
  } catch (...) {
    result.error = std::make_exception_ptr(
        DataError(fmt::format("task '{}': unknown exception while loading", options_.task)));
  }
  return result;
}

void DataLoader::worker_loop() {
  if (options_.worker_nice > 0) {
    // Per thread on Linux; lowering one's own priority needs no privilege. A failure
    // (another kernel) leaves the thread at its priority, which changes no result.
    const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    errno = 0;
    const int now = ::getpriority(PRIO_PROCESS, tid);
    if (errno == 0) {
      ::setpriority(PRIO_PROCESS, tid, static_cast<int>(std::min<int64_t>(19, now + options_.worker_nice)));
    }
  }
  while (true) {
    std::optional<Work> work;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!stopping_ && !(work = claim_locked())) {
        // Room in the shared budget is made by other loaders' consumers, which do not
        // notify this loader: look again shortly.
        if (budget_blocked_) {
          work_ready_.wait_for(lock, std::chrono::milliseconds(5));
        } else {
          work_ready_.wait(lock);
        }
      }
      if (stopping_) return;
    }
    Result result = produce(*work);
    if (result.batch && options_.queue_budget) {
      result.bytes = batch_bytes(*result.batch);
      options_.queue_budget->add(result.bytes);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      results_.emplace(work->sequence, std::move(result));
    }
    result_ready_.notify_all();
  }
}

std::optional<Batch> DataLoader::next() {
  Result result;
  while (!result.batch) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (failure_) std::rethrow_exception(failure_);
      if (workers_.empty()) {
        // Loading in the calling thread: claim and produce right here.
        auto work = claim_locked();
        if (!work) return std::nullopt;
        lock.unlock();
        result = produce(*work);
        lock.lock();
      } else {
        const int64_t first = start_.position / global_batch_;
        if (!options_.infinite && next_deliver_ >= own_batches_per_epoch() - first) {
          return std::nullopt;
        }
        result_ready_.wait(lock, [&] { return results_.count(next_deliver_) > 0; });
        auto node = results_.extract(next_deliver_);
        result = std::move(node.mapped());
        if (options_.queue_budget) options_.queue_budget->release(result.bytes);
      }
      ++next_deliver_;
      if (result.error) {
        failure_ = result.error;
        stopping_ = true;
      }
    }
    work_ready_.notify_all();
    if (result.error) std::rethrow_exception(result.error);
    // No batch and no error: every record of an evaluation batch was left out.
  }
  if (options_.device.is_cpu()) return std::move(result.batch);
  return result.batch->to(options_.device, /*non_blocking=*/options_.device.is_cuda());
}

nlohmann::json DataLoader::skipped() const {
  std::lock_guard<std::mutex> lock(skipped_mutex_);
  nlohmann::json counts = nlohmann::json::object();
  for (const auto& [index, record] : skipped_) {
    counts[record.reason] = counts.value(record.reason, int64_t{0}) + 1;
  }
  return counts;
}

std::vector<SkippedRecord> DataLoader::take_new_skips() {
  std::lock_guard<std::mutex> lock(skipped_mutex_);
  std::vector<SkippedRecord> out;
  out.swap(new_skips_);
  return out;
}

LoaderState DataLoader::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t global = start_.position / global_batch_ + next_deliver_;
  return {start_.epoch + global / batches_per_epoch_,
          (global % batches_per_epoch_) * global_batch_};
}

}  // namespace unitrain::data

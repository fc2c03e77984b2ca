// How many loader threads a run starts: one budget for all of a run's tasks.
//
// Each task has its own DataLoader, so "one worker per core" per task multiplies by the
// number of tasks (8 UniT tasks on 64 cores: 512 threads). The budget instead splits the
// cores this process may actually use (its CPU affinity, capped by a container's cgroup
// CPU quota) over the tasks.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace unitrain::data {

// Cores this process may run on: the CPUs of its affinity mask (sched_getaffinity),
// capped by the cgroup CPU quota when one is set (v2 `cpu.max`, v1 `cpu.cfs_quota_us`
// / `cpu.cfs_period_us`, of the process's cgroup or any ancestor), rounded up; then,
// for one of LOCAL_WORLD_SIZE processes on this host (torchrun's contract,
// `--nproc-per-node`), its share of them (local_share). At least 1.
int64_t available_cores();

// The cores of one of `local_processes` processes on a host that share `cores`. When
// the process is bound to fewer CPUs than the host has online (`affinity` < `online`:
// the launcher already gave each process its own), `cores` is its share already.
int64_t local_share(int64_t cores, int64_t local_processes, int64_t affinity, int64_t online);

// The CPU quota in cores (quota / period) of the cgroup described by `self_cgroup` (the
// text of /proc/self/cgroup) under the cgroupfs mounted at `cgroup_root`, or nullopt
// when no quota is set or none can be read. The tightest limit on the path wins.
std::optional<double> cgroup_cpu_limit(const std::filesystem::path& cgroup_root,
                                       const std::string& self_cgroup);

// The bytes of decoded batches a run's loaders may hold queued (produced by their
// workers, not yet taken by the trainer), one budget shared by all of them: a detection
// task's batches (a batch of 8 images at 800x1333 is ~100 MB) then cannot crowd the
// memory while text tasks' batches are a few KB. A loader may always hold one batch, so
// no task waits on another's queue; beyond that its workers wait while the total is at
// the limit. The queued total stays below the limit plus one batch per loader thread.
class QueueBudget {
 public:
  explicit QueueBudget(int64_t limit_bytes) : limit_(limit_bytes) {}
  int64_t limit() const { return limit_; }
  int64_t used() const { return used_.load(); }
  bool full() const { return used_.load() >= limit_; }
  void add(int64_t bytes) { used_ += bytes; }
  void release(int64_t bytes) { used_ -= bytes; }

 private:
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
};

// The limit for `data.max_queued_mb: 0`: an eighth of the memory this process may use
// (physical memory, or a lower cgroup memory limit), between 256 MiB and 4 GiB.
int64_t default_queue_bytes();

struct LoaderBudget {
  int64_t workers = 1;   // threads per task's loader
  int64_t prefetch = 4;  // batches decoded ahead per task's loader
};

// The experiment's `data.workers` and `data.prefetch` for `tasks` loaders running at
// once. workers > 0 is taken as given (threads per task). workers == 0 splits `cores`
// over the tasks, at least 1 each, and starts no more than `prefetch` per task: at most
// `prefetch` batches are decoded ahead, so further threads would have nothing to do.
// Raising `prefetch` is what buys more parallel decoding, at the cost of memory.
LoaderBudget loader_budget(int64_t workers, int64_t prefetch, int64_t tasks,
                           int64_t cores = available_cores());

}  // namespace unitrain::data

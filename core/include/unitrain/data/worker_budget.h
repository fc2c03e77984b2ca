// How many loader threads a run starts: one budget for all of a run's tasks.
//
// Each task has its own DataLoader, so "one worker per core" per task multiplies by the
// number of tasks (8 UniT tasks on 64 cores: 512 threads). The budget instead splits the
// cores this process may actually use (its CPU affinity, capped by a container's cgroup
// CPU quota) over the tasks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace unitrain::data {

// Cores this process may run on: the CPUs of its affinity mask (sched_getaffinity),
// capped by the cgroup CPU quota when one is set (v2 `cpu.max`, v1 `cpu.cfs_quota_us`
// / `cpu.cfs_period_us`, of the process's cgroup or any ancestor), rounded up. At
// least 1.
int64_t available_cores();

// The CPU quota in cores (quota / period) of the cgroup described by `self_cgroup` (the
// text of /proc/self/cgroup) under the cgroupfs mounted at `cgroup_root`, or nullopt
// when no quota is set or none can be read. The tightest limit on the path wins.
std::optional<double> cgroup_cpu_limit(const std::filesystem::path& cgroup_root,
                                       const std::string& self_cgroup);

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

#include "unitrain/data/worker_budget.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace unitrain::data {
namespace fs = std::filesystem;

namespace {

std::optional<std::string> read_first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

// "max 100000" (v2: no quota) or "200000 100000".
std::optional<double> v2_limit(const fs::path& dir) {
  const auto line = read_first_line(dir / "cpu.max");
  if (!line) return std::nullopt;
  std::istringstream in(*line);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
  try {
    const double q = std::stod(quota);
    return q > 0 ? std::optional<double>(q / period) : std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// cpu.cfs_quota_us is -1 when unlimited.
std::optional<double> v1_limit(const fs::path& dir) {
  const auto quota = read_first_line(dir / "cpu.cfs_quota_us");
  const auto period = read_first_line(dir / "cpu.cfs_period_us");
  if (!quota || !period) return std::nullopt;
  try {
    const double q = std::stod(*quota), p = std::stod(*period);
    return q > 0 && p > 0 ? std::optional<double>(q / p) : std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void tighten(std::optional<double>& limit, std::optional<double> other) {
  if (other && (!limit || *other < *limit)) limit = other;
}

// The quota on `cgroup` (a path inside the hierarchy mounted at `mount`) and every
// ancestor. NOTE: inside a container the cgroup namespace usually makes the path "/",
// but without one it names the host's hierarchy, which the container may not see;
// then only the mount's own files are read.
template <typename Read>
std::optional<double> path_limit(const fs::path& mount, const std::string& cgroup, Read read) {
  std::optional<double> limit;
  fs::path dir = fs::path(cgroup).relative_path();
  while (true) {
    tighten(limit, read(mount / dir));
    if (dir.empty()) break;
    dir = dir.parent_path();
  }
  return limit;
}

}  // namespace

std::optional<double> cgroup_cpu_limit(const fs::path& cgroup_root, const std::string& self_cgroup) {
  std::optional<double> limit;
  std::istringstream lines(self_cgroup);
  std::string line;
  // Lines are "id:controllers:path"; v2's is "0::path".
  while (std::getline(lines, line)) {
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers.empty()) {
      tighten(limit, path_limit(cgroup_root, path, v2_limit));
      continue;
    }
    std::vector<std::string> names;
    std::istringstream list(controllers);
    for (std::string name; std::getline(list, name, ',');) names.push_back(name);
    if (std::find(names.begin(), names.end(), "cpu") == names.end()) continue;
    // v1 mounts the cpu controller as "cpu", "cpu,cpuacct" or both (one a symlink).
    for (const fs::path mount : {cgroup_root / controllers, cgroup_root / "cpu"}) {
      tighten(limit, path_limit(mount, path, v1_limit));
    }
  }
  return limit;
}

int64_t local_share(int64_t cores, int64_t local_processes, int64_t affinity, int64_t online) {
  cores = std::max<int64_t>(cores, 1);
  if (local_processes <= 1 || (affinity > 0 && online > 0 && affinity < online)) return cores;
  return std::max<int64_t>(cores / local_processes, 1);
}

int64_t available_cores() {
  int64_t affinity = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) affinity = CPU_COUNT(&set);
  const auto online = static_cast<int64_t>(std::thread::hardware_concurrency());
  int64_t cores = affinity > 0 ? affinity : online;
  std::ifstream in("/proc/self/cgroup");
  std::stringstream text;
  text << in.rdbuf();
  if (const auto limit = cgroup_cpu_limit("/sys/fs/cgroup", text.str())) {
    cores = std::min<int64_t>(cores, static_cast<int64_t>(std::ceil(*limit)));
  }
  int64_t local_processes = 1;
  if (const char* env = std::getenv("LOCAL_WORLD_SIZE")) {
    char* end = nullptr;
    const long long n = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && n > 0) local_processes = n;
  }
  return local_share(cores, local_processes, affinity, online);
}

int64_t default_queue_bytes() {
  int64_t memory = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  // cgroup v2 memory.max of this process's cgroup ("max" when unlimited).
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) != 0) continue;
    std::ifstream limit("/sys/fs/cgroup" + line.substr(3) + "/memory.max");
    long long bytes = 0;
    if (limit >> bytes && bytes > 0) memory = std::min<int64_t>(memory, bytes);
  }
  constexpr int64_t kMiB = int64_t{1} << 20;
  return std::clamp<int64_t>(memory / 8, 256 * kMiB, 4096 * kMiB);
}

LoaderBudget loader_budget(int64_t workers, int64_t prefetch, int64_t tasks, int64_t cores) {
  LoaderBudget budget;
  budget.prefetch = prefetch;
  if (workers > 0) {
    budget.workers = workers;
  } else {
    const int64_t share = std::max<int64_t>(cores, 1) / std::max<int64_t>(tasks, 1);
    budget.workers = std::clamp<int64_t>(share, 1, std::max<int64_t>(prefetch, 1));
  }
  return budget;
}

}  // namespace unitrain::data

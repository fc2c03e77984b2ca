// The loaders' thread budget: cores from affinity and cgroup quotas, split over tasks.
#include "unitrain/data/worker_budget.h"

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "test_util.h"

namespace unitrain::data {
namespace {

TEST(AvailableCores, AtLeastOneAndNoMoreThanTheHardware) {
  const int64_t cores = available_cores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, std::max<int64_t>(1, std::thread::hardware_concurrency()));
}

TEST(AvailableCores, LocalProcessesShareTheHostsCores) {
  // --nproc-per-node 4 on 16 cores: 4 each; unbound processes only.
  EXPECT_EQ(local_share(16, 4, 16, 16), 4);
  EXPECT_EQ(local_share(16, 3, 16, 16), 5);
  EXPECT_EQ(local_share(2, 4, 2, 2), 1);  // never 0
  EXPECT_EQ(local_share(16, 1, 16, 16), 16);
  // A launcher that binds each process to its CPUs has shared them already.
  EXPECT_EQ(local_share(4, 4, 4, 16), 4);
  // A cgroup quota (6 of 16) is shared too when the affinity spans the host.
  EXPECT_EQ(local_share(6, 2, 16, 16), 3);

  // Through the environment, as a rank started by the launcher sees it.
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int64_t affinity = CPU_COUNT(&set);
  const auto online = static_cast<int64_t>(std::thread::hardware_concurrency());
  const int64_t alone = available_cores();
  setenv("LOCAL_WORLD_SIZE", "2", 1);
  const int64_t shared = available_cores();
  unsetenv("LOCAL_WORLD_SIZE");
  EXPECT_EQ(shared, local_share(alone, 2, affinity, online));
  if (affinity == online) EXPECT_EQ(shared, std::max<int64_t>(alone / 2, 1));
  EXPECT_EQ(available_cores(), alone);
}

TEST(QueueBudget, DefaultIsAnEighthOfTheMemoryWithinBounds) {
  const int64_t bytes = default_queue_bytes();
  const int64_t memory = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  EXPECT_GE(bytes, int64_t{256} << 20);
  EXPECT_LE(bytes, int64_t{4096} << 20);
  EXPECT_LE(bytes, std::max<int64_t>(memory / 8, int64_t{256} << 20));
  QueueBudget budget(100);
  budget.add(60);
  EXPECT_FALSE(budget.full());
  budget.add(40);
  EXPECT_TRUE(budget.full());
  budget.release(100);
  EXPECT_EQ(budget.used(), 0);
}

TEST(CgroupCpuLimit, V2QuotaOfTheProcessCgroupOrAnAncestorTightestWins) {
  test::TempDir root;
  EXPECT_EQ(cgroup_cpu_limit(root.path(), "0::/job/step\n"), std::nullopt);  // no files
  test::write_file(root / "job/step/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(root.path(), "0::/job/step\n"), std::nullopt);  // unlimited
  test::write_file(root / "job/cpu.max", "250000 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(root.path(), "0::/job/step\n"), 2.5);
  test::write_file(root / "job/step/cpu.max", "150000 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(root.path(), "0::/job/step\n"), 1.5);
  // A container's namespace shows its own cgroup as "/": the mount's files.
  test::write_file(root / "cpu.max", "400000 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(root.path(), "0::/\n"), 4.0);
}

TEST(CgroupCpuLimit, V1CfsQuotaOnTheCpuController) {
  test::TempDir root;
  const std::string self = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n";
  test::write_file(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  test::write_file(root / "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_limit(root.path(), self), std::nullopt);
  test::write_file(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
  EXPECT_EQ(cgroup_cpu_limit(root.path(), self), 3.0);
  // The memory controller's files are not read.
  test::write_file(root / "memory/docker/abc/cpu.max", "100000 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(root.path(), self), 3.0);
}

TEST(LoaderBudget, ZeroSplitsTheCoresOverTheTasksAtLeastOneAndAtMostPrefetch) {
  // 16 cores, 8 tasks: 2 threads each, not 16.
  EXPECT_EQ(loader_budget(0, 4, 8, 16).workers, 2);
  // More tasks than cores: still one each.
  EXPECT_EQ(loader_budget(0, 4, 8, 2).workers, 1);
  // One task on 64 cores: no more than prefetch could ever work at once.
  EXPECT_EQ(loader_budget(0, 4, 1, 64).workers, 4);
  EXPECT_EQ(loader_budget(0, 16, 1, 64).workers, 16);
  // An explicit count is per task, and prefetch is kept as given.
  const auto explicit_budget = loader_budget(3, 2, 8, 64);
  EXPECT_EQ(explicit_budget.workers, 3);
  EXPECT_EQ(explicit_budget.prefetch, 2);
}

}  // namespace
}  // namespace unitrain::data

// One gradient all-reduce between 2 processes on loopback (c10d Gloo, as training does
// it: float32 buckets of at most 32 MB), for the toy model's and UniT's parameter
// counts, against the memory-bandwidth bound of moving that many bytes (a memcpy of
// the same size in one process). Prints a table and the ratios.
//
//   allreduce_bench [toy_parameters=1092006] [unit_parameters=200907824] [repeats=3]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "unitrain/distributed.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kBucket = int64_t{8} << 20;  // elements, as the trainer's buckets

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Median seconds of an all-reduce of `n` floats in buckets, on this rank.
double time_allreduce(unitrain::ProcessGroup& group, int64_t n, int repeats) {
  std::vector<torch::Tensor> buckets;
  for (int64_t left = n; left > 0; left -= kBucket) {
    buckets.push_back(torch::ones({std::min(left, kBucket)}));
  }
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {
    group.barrier("bench");
    const auto start = Clock::now();
    for (auto& b : buckets) {
      std::vector<torch::Tensor> one{b};
      group.all_reduce_sum(one, "bench");
    }
    if (r > 0) times.push_back(seconds_since(start));  // the first is a warm-up
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double time_memcpy(int64_t n, int repeats) {
  std::vector<float> a(static_cast<size_t>(n), 1.0f), b(static_cast<size_t>(n));
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {
    const auto start = Clock::now();
    std::memcpy(b.data(), a.data(), a.size() * sizeof(float));
    if (r > 0) times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t toy = argc > 1 ? std::stoll(argv[1]) : 1092006;
  const int64_t unit = argc > 2 ? std::stoll(argv[2]) : 200907824;
  const int repeats = argc > 3 ? std::stoi(argv[3]) : 3;
  torch::set_num_threads(1);
  unitrain::StoreServer store("127.0.0.1", 0, 60);
  const int64_t port = store.port();
  std::vector<pid_t> ranks;
  for (int64_t rank = 0; rank < 2; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) {
      unitrain::RankInfo info;
      info.rank = rank;
      info.world_size = 2;
      info.master_port = port;
      info.agent_store = true;
      unitrain::DistributedOptions options;
      options.timeout_s = 120;
      auto group = unitrain::ProcessGroup::join(info, options, torch::kCPU);
      std::vector<double> seconds;
      for (int64_t n : {toy, unit}) seconds.push_back(time_allreduce(*group, n, repeats));
      if (rank == 0) {
        std::printf("2 ranks, Gloo on loopback, float32 buckets of %lld MB, median of %d\n",
                    static_cast<long long>(kBucket * 4 >> 20), repeats);
        std::printf("%-14s %12s %10s %12s %12s %8s\n", "model", "parameters", "MB",
                    "allreduce ms", "memcpy ms", "ratio");
        const char* names[] = {"toy (unit_toy8)", "UniT (8 task)"};
        int64_t sizes[] = {toy, unit};
        for (int i = 0; i < 2; ++i) {
          const double copy = time_memcpy(sizes[i], repeats);
          std::printf("%-14s %12lld %10.1f %12.2f %12.2f %8.1f\n", names[i],
                      static_cast<long long>(sizes[i]), sizes[i] * 4.0 / 1e6, seconds[i] * 1e3,
                      copy * 1e3, seconds[i] / copy);
        }
        std::printf("ratio: all-reduce time / memcpy of the same bytes (the bandwidth bound "
                    "of reading and writing them once)\n");
      }
      group->barrier("bench end");
      std::fflush(stdout);
      _exit(0);
    }
    ranks.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : ranks) {
    int status = 0;
    waitpid(pid, &status, 0);
    failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  return failed == 0 ? 0 : 1;
}

#include "dist/launcher.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "unitrain/distributed.h"
#include "unitrain/errors.h"

extern char** environ;

namespace unitrain::dist {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_forward_signal{0};

void remember_signal(int signal) { g_forward_signal = signal; }

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    const char* name = sigabbrev_np(s);
    return fmt::format("was killed by SIG{} ({})", name ? name : "?", s);
  }
  return fmt::format("ended with wait status {}", status);
}

// An environment block for one rank, built before fork(): the child only calls execve
// (allocating between fork and exec can deadlock in a threaded process).
struct RankEnvironment {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
};

RankEnvironment rank_environment(int64_t rank, int64_t world, int64_t port) {
  static const char* kOwn[] = {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=",
                               "MASTER_ADDR=", "MASTER_PORT=", "TORCHELASTIC_USE_AGENT_STORE="};
  RankEnvironment env;
  for (char** e = environ; *e != nullptr; ++e) {
    bool own = false;
    for (const char* prefix : kOwn) own = own || std::strncmp(*e, prefix, std::strlen(prefix)) == 0;
    if (!own) env.strings.emplace_back(*e);
  }
  env.strings.push_back(fmt::format("RANK={}", rank));
  env.strings.push_back(fmt::format("WORLD_SIZE={}", world));
  env.strings.push_back(fmt::format("LOCAL_RANK={}", rank));
  env.strings.push_back(fmt::format("LOCAL_WORLD_SIZE={}", world));
  env.strings.push_back("MASTER_ADDR=127.0.0.1");
  env.strings.push_back(fmt::format("MASTER_PORT={}", port));
  env.strings.push_back("TORCHELASTIC_USE_AGENT_STORE=True");
  // As torchrun: one OpenMP thread per rank unless the user chose, so that N ranks'
  // BLAS pools do not spin against each other on the same cores.
  if (std::getenv("OMP_NUM_THREADS") == nullptr) env.strings.push_back("OMP_NUM_THREADS=1");
  for (auto& s : env.strings) env.pointers.push_back(s.data());
  env.pointers.push_back(nullptr);
  return env;
}

}  // namespace

std::vector<std::string> without_launch_flags(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--nproc-per-node" || a == "--master-port") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--nproc-per-node=", 0) == 0 || a.rfind("--master-port=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

int launch_local_ranks(const LaunchOptions& options, const std::vector<std::string>& argv) {
  StoreServer store("127.0.0.1", options.master_port, options.timeout_s);
  const int64_t port = store.port();

  std::vector<std::string> args = argv;
  std::vector<char*> arg_pointers;
  for (auto& a : args) arg_pointers.push_back(a.data());
  arg_pointers.push_back(nullptr);
  std::vector<RankEnvironment> environments;
  for (int64_t r = 0; r < options.nproc; ++r) {
    environments.push_back(rank_environment(r, options.nproc, port));
  }

  struct sigaction forward {};
  forward.sa_handler = remember_signal;
  sigemptyset(&forward.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &forward, &old_int);
  sigaction(SIGTERM, &forward, &old_term);

  const pid_t launcher = getpid();
  std::map<pid_t, int64_t> running;  // pid -> rank
  for (int64_t r = 0; r < options.nproc; ++r) {
    const pid_t pid = fork();
    if (pid < 0) {
      for (const auto& [p, rank] : running) kill(p, SIGKILL);
      throw TrainingError(fmt::format("cannot start rank {}: fork failed: {}", r,
                                      std::strerror(errno)));
    }
    if (pid == 0) {
      // Die with the launcher, whatever kills it.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != launcher) _exit(1);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      execve("/proc/self/exe", arg_pointers.data(), environments[r].pointers.data());
      _exit(127);
    }
    running[pid] = r;
  }
  std::cerr << fmt::format("launched {} ranks on 127.0.0.1:{}\n", options.nproc, port);

  int result = 0;
  bool stopping = false;
  Clock::time_point term_at{}, kill_at{};
  bool termed = false;
  auto stop_all = [&](Clock::time_point now) {
    if (stopping) return;
    stopping = true;
    term_at = now + std::chrono::milliseconds(static_cast<int64_t>(options.grace_s * 1000));
    kill_at = term_at + std::chrono::milliseconds(static_cast<int64_t>(options.grace_s * 1000));
  };
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    const auto now = Clock::now();
    if (pid > 0 && running.count(pid)) {
      const int64_t rank = running[pid];
      running.erase(pid);
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && result == 0) {
        // A rank killed by a signal is usually why the others failed: once one rank
        // lost its peer, collect whoever else has ended by now before naming the cause.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        std::vector<std::pair<pid_t, int>> ended{{pid, status}};
        pid_t other = 0;
        while ((other = waitpid(-1, &status, WNOHANG)) > 0) {
          if (running.count(other)) ended.emplace_back(other, status);
        }
        std::stable_partition(ended.begin(), ended.end(),
                              [](const auto& e) { return WIFSIGNALED(e.second); });
        std::map<pid_t, int64_t> ranks = running;
        ranks[pid] = rank;
        for (const auto& [p, st] : ended) running.erase(p);
        std::cerr << fmt::format("error: rank {} (pid {}) {}; stopping the other {} rank(s)\n",
                                 ranks[ended[0].first], ended[0].first, describe(ended[0].second),
                                 running.size());
        for (size_t i = 1; i < ended.size(); ++i) {
          if (WIFEXITED(ended[i].second) && WEXITSTATUS(ended[i].second) == 0) continue;
          std::cerr << fmt::format("rank {} (pid {}) {}\n", ranks[ended[i].first],
                                   ended[i].first, describe(ended[i].second));
        }
        result = 1;
        stop_all(now);
      } else if (!ok) {
        std::cerr << fmt::format("rank {} (pid {}) {}\n", rank, pid, describe(status));
      }
      continue;
    }
    if (const int s = g_forward_signal.exchange(0); s != 0) {
      for (const auto& [p, rank] : running) kill(p, s);
      if (result == 0) result = 128 + s;
      stop_all(now);
    }
    if (stopping && !termed && now >= term_at) {
      for (const auto& [p, rank] : running) kill(p, SIGTERM);
      termed = true;
    }
    if (stopping && now >= kill_at) {
      for (const auto& [p, rank] : running) kill(p, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace unitrain::dist

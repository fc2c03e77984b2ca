// `unitrain train --nproc-per-node N`: start N ranks of one group on this host and watch
// them, as torchrun --standalone does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unitrain::dist {

struct LaunchOptions {
  int64_t nproc = 1;
  // Port of the rendezvous store on 127.0.0.1; 0 = a free one.
  int64_t master_port = 0;
  // The experiment's distributed.timeout_s, for the store's own waits.
  double timeout_s = 1800;
  // Seconds the other ranks get to stop on their own after one failed, before SIGTERM;
  // as many again before SIGKILL.
  double grace_s = 5;
};

// Hosts the TCPStore, then runs this executable (/proc/self/exe) with `argv` (argv[0]
// first, the launch flags already removed) once per rank with RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// TORCHELASTIC_USE_AGENT_STORE set (and OMP_NUM_THREADS=1 unless set, as torchrun
// does). Waits for every rank. When one fails, prints
// "rank R (pid P) exited with status S" (or "was killed by SIGNAME") on stderr, stops
// the others and returns non-zero; ranks die with the launcher (PR_SET_PDEATHSIG), so
// none is left behind. SIGINT / SIGTERM to the launcher are passed on to the ranks.
// Returns 0 when every rank exited 0. TrainingError when the store cannot be hosted.
int launch_local_ranks(const LaunchOptions& options, const std::vector<std::string>& argv);

// `argv` without the launcher's own flags (--nproc-per-node N, --master-port P, also in
// the --flag=value form).
std::vector<std::string> without_launch_flags(const std::vector<std::string>& argv);

}  // namespace unitrain::dist

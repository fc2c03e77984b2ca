// Data-parallel training across processes and machines through LibTorch's c10d
// (TCPStore for the rendezvous, ProcessGroupGloo on the CPU, ProcessGroupNCCL where the
// LibTorch has CUDA). docs/distributed.md describes the launch, the semantics and the
// failure behaviour.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/config.h"

namespace unitrain {

// The experiment's "distributed" block (docs/experiments.md).
struct DistributedOptions {
  // "auto" (NCCL for a CUDA device where this LibTorch has it, else Gloo), "gloo" or
  // "nccl". Default: "auto".
  std::string backend = "auto";
  // Seconds a rendezvous or a collective may wait for the other ranks before the run
  // stops with an error naming them. Default: 1800 (PyTorch's).
  double timeout_s = 1800;
  // Steps between the checks that every rank drew the same task sequence and touched the
  // same parameters (one all-gather of two numbers). 0 = never. Default: 100.
  int64_t check_every = 100;
};

// Every key of the block with its default.
nlohmann::json distributed_defaults();
// Reads a validated block; ConfigError at `experiment`'s /distributed/<key> otherwise.
DistributedOptions distributed_options_from_json(const nlohmann::json& j,
                                                 const Experiment& experiment);

// Where this process stands in its group: torchrun's environment contract.
struct RankInfo {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  // The launcher (`--nproc-per-node`) hosts the TCPStore itself and every rank is a
  // client (torchrun's TORCHELASTIC_USE_AGENT_STORE); otherwise rank 0 hosts it.
  bool agent_store = false;
};

// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and
// TORCHELASTIC_USE_AGENT_STORE). nullopt when WORLD_SIZE is unset: one process.
// ConfigError naming the variable for a malformed or inconsistent value.
std::optional<RankInfo> rank_info_from_environment();

// A joined process group. Every collective is called by every rank in the same order
// with tensors of the same shapes; a rank that died, threw or timed out makes the
// others' collective throw TrainingError "lost the process group during <what>: ...".
class ProcessGroup {
 public:
  // Rendezvous with the other ranks (the TCPStore at master_addr:master_port) and
  // create the backend. `device` picks "auto". TrainingError for a port in use, an
  // unreachable master, a timeout, or a backend this LibTorch lacks.
  static std::shared_ptr<ProcessGroup> join(const RankInfo& info,
                                            const DistributedOptions& options,
                                            const torch::Device& device);
  ~ProcessGroup();

  int64_t rank() const;
  int64_t world_size() const;
  const std::string& backend() const;
  // Wall time spent in this group's collectives so far: the transfers and the waits for
  // slower ranks (what data-parallel training costs over one process).
  double seconds_in_collectives() const;

  // Sums every tensor over the ranks, in place; `what` names the step in messages.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what);
  // Every rank's `values` (the same count on every rank), rank after rank.
  std::vector<int64_t> all_gather(const std::vector<int64_t>& values, const std::string& what);
  // Every rank's bytes, in rank order (lengths may differ).
  std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& what);
  // Rank `root`'s values of every tensor into every rank's, in place.
  void broadcast(std::vector<torch::Tensor>& tensors, int64_t root, const std::string& what);
  void barrier(const std::string& what);

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A TCPStore server on `host` for a launcher that hosts the rendezvous; port 0 picks a
// free port. TrainingError when the port is taken.
class StoreServer {
 public:
  StoreServer(const std::string& host, int64_t port, double timeout_s);
  ~StoreServer();
  int64_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace unitrain

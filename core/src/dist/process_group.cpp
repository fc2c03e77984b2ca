// ProcessGroup and StoreServer over LibTorch's c10d: a TCPStore rendezvous, then
// ProcessGroupGloo (or ProcessGroupNCCL in CUDA builds of LibTorch).
#include "unitrain/distributed.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "unitrain/errors.h"

namespace unitrain {
namespace {

std::chrono::milliseconds milliseconds(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// c10d's messages carry a C++ backtrace after the first line in some builds.
std::string first_line(const std::string& text) {
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

std::string error_text(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
    return first_line(c10->what_without_backtrace());
  }
  return first_line(e.what());
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// The interface gloo binds to: GLOO_SOCKET_IFNAME as in PyTorch, loopback for a local
// group, else the address this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (is_loopback(master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

struct ProcessGroup::Impl {
  int64_t rank = 0;
  int64_t world_size = 1;
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  double seconds = 0;  // in collectives, waits for the other ranks included

  // Runs one collective; any c10d failure becomes a TrainingError naming this rank.
  template <typename F>
  void run(const std::string& what, F&& collective) {
    const auto start = std::chrono::steady_clock::now();
    try {
      collective()->wait();
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } catch (const std::exception& e) {
      throw TrainingError(fmt::format(
          "lost the process group during {}: {} (another rank stopped, failed or timed "
          "out; its own message says why)",
          what, error_text(e)));
    }
  }
};

std::shared_ptr<ProcessGroup> ProcessGroup::join(const RankInfo& info,
                                                 const DistributedOptions& options,
                                                 const torch::Device& device) {
  auto impl = std::make_unique<Impl>();
  impl->rank = info.rank;
  impl->world_size = info.world_size;
  std::string backend = options.backend;
  if (backend == "auto") {
#ifdef USE_C10D_NCCL
    backend = device.is_cuda() ? "nccl" : "gloo";
#else
    backend = "gloo";
#endif
  }
  impl->backend = backend;
  const std::string where = fmt::format("group of {} (master {}:{})", info.world_size,
                                        info.master_addr, info.master_port);
  if (backend == "nccl") {
#ifndef USE_C10D_NCCL
    throw TrainingError(fmt::format(
        "{}: distributed.backend \"nccl\" needs a LibTorch built with CUDA and NCCL; this one "
        "({}) has neither; use \"gloo\" (or \"auto\")",
        where, TORCH_VERSION));
#endif
  }
  const auto timeout = milliseconds(options.timeout_s);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(info.master_port);
    store_options.isServer = info.rank == 0 && !info.agent_store;
    if (store_options.isServer) store_options.numWorkers = info.world_size;
    // The group's rendezvous below waits for the others, with a clear timeout.
    store_options.waitWorkers = false;
    store_options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(info.master_addr, store_options);
    impl->store = c10::make_intrusive<c10d::PrefixStore>("unitrain/", tcp);
  } catch (const std::exception& e) {
    throw TrainingError(fmt::format(
        "{}: cannot {} the rendezvous store: {}{}", where,
        info.rank == 0 && !info.agent_store ? "host" : "reach", error_text(e),
        info.rank == 0 && !info.agent_store
            ? " (is the port taken? pick another with MASTER_PORT or --master-port)"
            : " (is rank 0 running, and MASTER_ADDR / MASTER_PORT right?)"));
  }
  try {
    if (backend == "gloo") {
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
      gloo_options->devices.push_back(gloo_device(info.master_addr));
      impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
          impl->store, static_cast<int>(info.rank), static_cast<int>(info.world_size),
          gloo_options);
    } else {
#ifdef USE_C10D_NCCL
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      impl->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          impl->store, static_cast<int>(info.rank), static_cast<int>(info.world_size),
          nccl_options);
#endif
    }
  } catch (const std::exception& e) {
    throw TrainingError(fmt::format(
        "{}: the {} rendezvous failed within distributed.timeout_s = {} s: {} (did every "
        "rank start, with the same WORLD_SIZE?)",
        where, backend, options.timeout_s, error_text(e)));
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

int64_t ProcessGroup::rank() const { return impl_->rank; }
int64_t ProcessGroup::world_size() const { return impl_->world_size; }
const std::string& ProcessGroup::backend() const { return impl_->backend; }
double ProcessGroup::seconds_in_collectives() const { return impl_->seconds; }

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what) {
  // One tensor a call: c10d reads a vector as one tensor per device of this process.
  for (auto& t : tensors) {
    std::vector<torch::Tensor> one{t};
    impl_->run(what, [&] { return impl_->group->allreduce(one); });
  }
}

std::vector<int64_t> ProcessGroup::all_gather(const std::vector<int64_t>& values,
                                              const std::string& what) {
  const auto n = static_cast<int64_t>(values.size());
  std::vector<torch::Tensor> input{torch::tensor(values, torch::kLong)};
  if (impl_->backend == "nccl") input[0] = input[0].cuda();
  std::vector<std::vector<torch::Tensor>> output(1);
  for (int64_t r = 0; r < impl_->world_size; ++r) output[0].push_back(torch::empty_like(input[0]));
  impl_->run(what, [&] { return impl_->group->allgather(output, input); });
  std::vector<int64_t> all;
  all.reserve(static_cast<size_t>(n * impl_->world_size));
  for (const auto& t : output[0]) {
    auto cpu = t.to(torch::kCPU).contiguous();
    all.insert(all.end(), cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + n);
  }
  return all;
}

std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& bytes,
                                                        const std::string& what) {
  const auto lengths = all_gather({static_cast<int64_t>(bytes.size())}, what);
  const int64_t longest = std::max<int64_t>(1, *std::max_element(lengths.begin(), lengths.end()));
  auto padded = torch::zeros({longest}, torch::kUInt8);
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(padded.data_ptr<uint8_t>()));
  std::vector<torch::Tensor> input{impl_->backend == "nccl" ? padded.cuda() : padded};
  std::vector<std::vector<torch::Tensor>> output(1);
  for (int64_t r = 0; r < impl_->world_size; ++r) output[0].push_back(torch::empty_like(input[0]));
  impl_->run(what, [&] { return impl_->group->allgather(output, input); });
  std::vector<std::string> all;
  for (int64_t r = 0; r < impl_->world_size; ++r) {
    auto cpu = output[0][r].to(torch::kCPU).contiguous();
    const char* data = reinterpret_cast<const char*>(cpu.data_ptr<uint8_t>());
    all.emplace_back(data, data + lengths[r]);
  }
  return all;
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int64_t root,
                             const std::string& what) {
  c10d::BroadcastOptions options;
  options.rootRank = root;
  for (auto& t : tensors) {
    std::vector<torch::Tensor> one{t};
    impl_->run(what, [&] { return impl_->group->broadcast(one, options); });
  }
}

void ProcessGroup::barrier(const std::string& what) {
  impl_->run(what, [&] { return impl_->group->barrier(); });
}

struct StoreServer::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
};

StoreServer::StoreServer(const std::string& host, int64_t port, double timeout_s)
    : impl_(std::make_unique<Impl>()) {
  // The ranks' own rendezvous (the process group) counts them; the store only serves.
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(port);
    options.isServer = true;
    options.waitWorkers = false;
    options.timeout = milliseconds(timeout_s);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(host, options);
  } catch (const std::exception& e) {
    throw TrainingError(fmt::format("cannot host the rendezvous on {}:{}: {}{}", host, port,
                                    error_text(e),
                                    port != 0 ? " (pick a free port with --master-port, or "
                                                "leave it out to have one chosen)"
                                              : ""));
  }
}

StoreServer::~StoreServer() = default;

int64_t StoreServer::port() const { return impl_->store->getPort(); }

}  // namespace unitrain

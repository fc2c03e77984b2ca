// Process-wide runtime settings: threads, device, version.
#pragma once

#include <string>

#include <torch/torch.h>

namespace unitrain {

// Sets LibTorch's intra-op threads; 0 means the cores available to the process
// (data::available_cores(): affinity and cgroup quota; LibTorch's own default here is 1,
// which halves training speed on two cores).
void configure_threads(int64_t threads);

// Keeps freed tensor memory in the process instead of returning it to the kernel after
// every step: glibc otherwise serves each large tensor with a fresh mmap and unmaps it
// on free, and the page faults and zeroing cost 10-20 % of a toy training step on two
// cores. Sets M_MMAP_THRESHOLD to 32 MiB and M_TRIM_THRESHOLD to 1 GiB unless the user
// set either through GLIBC_TUNABLES or MALLOC_*_ in the environment. No-op elsewhere.
void tune_allocator();

// "cpu", "cuda" or "cuda:N". Throws TrainingError when CUDA is asked for but this
// LibTorch has no CUDA or no GPU is visible; `where` prefixes the message.
torch::Device parse_device(const std::string& text, const std::string& where);

// "unitrain 0.1.0 (LibTorch 1.13.0, plugin ABI 2.0)".
std::string version_string();

}  // namespace unitrain

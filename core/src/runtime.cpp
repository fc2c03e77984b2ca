#include "unitrain/runtime.h"

#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <fmt/format.h>

#include "unitrain/data/worker_budget.h"
#include "unitrain/errors.h"
#include "unitrain/plugin_abi.h"

namespace unitrain {

void configure_threads(int64_t threads) {
  if (threads <= 0) threads = data::available_cores();
  torch::set_num_threads(static_cast<int>(threads));
}

void tune_allocator() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const bool user_set = (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) ||
                        std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr ||
                        std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr;
  if (user_set) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's upper bound on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

torch::Device parse_device(const std::string& text, const std::string& where) {
  if (text == "cpu") return torch::kCPU;
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw TrainingError(fmt::format(
          "{}: device '{}' requested, but CUDA is not available (no CUDA support in this "
          "LibTorch, or no GPU visible); use \"device\": \"cpu\" or build against a CUDA "
          "LibTorch",
          where, text));
    }
    try {
      torch::Device device(text);
      if (device.index() >= static_cast<int>(torch::cuda::device_count())) {
        throw TrainingError(fmt::format("{}: device '{}' requested, but only {} CUDA device(s) exist",
                                        where, text, torch::cuda::device_count()));
      }
      return device;
    } catch (const c10::Error&) {
      throw TrainingError(fmt::format("{}: malformed device '{}'", where, text));
    }
  }
  throw TrainingError(
      fmt::format("{}: unknown device '{}'; expected \"cpu\", \"cuda\" or \"cuda:N\"", where, text));
}

std::string version_string() {
  return fmt::format("unitrain {} (LibTorch {}.{}.{}, plugin ABI {}.{})", UNITRAIN_VERSION,
                     TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH,
                     UNITRAIN_ABI_MAJOR, UNITRAIN_ABI_MINOR);
}

}  // namespace unitrain

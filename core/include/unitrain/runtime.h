// Process-wide runtime settings: threads, device, version.
#pragma once

#include <string>

#include <torch/torch.h>

namespace unitrain {

// Sets LibTorch's intra-op threads; 0 means the number of hardware cores (LibTorch's
// own default here is 1, which halves training speed on two cores).
void configure_threads(int64_t threads);

// "cpu", "cuda" or "cuda:N". Throws TrainingError when CUDA is asked for but this
// LibTorch has no CUDA or no GPU is visible; `where` prefixes the message.
torch::Device parse_device(const std::string& text, const std::string& where);

// "unitrain 0.1.0 (LibTorch 1.13.0, plugin ABI 1.0)".
std::string version_string();

}  // namespace unitrain

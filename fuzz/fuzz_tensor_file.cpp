// The weight readers: torch.save (zip and legacy pickles), safetensors and unitrain
// archives, told apart by their first bytes. Input: the file.
#include "fuzz_input.h"
#include "unitrain/weights/tensor_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  const auto file = fuzz::write("weights", std::string(reinterpret_cast<const char*>(data), size));
  try {
    weights::read_tensor_file(file);
  } catch (const Error&) {
  }
  return 0;
}

// Helpers shared by the datasets' result writers (unitrain/results.h).
#include "unitrain/results.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "unitrain/errors.h"

namespace unitrain {

void write_result_file(const std::filesystem::path& file, const std::string& text) {
  const std::filesystem::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw DataError(fmt::format("cannot write '{}': {}", file.string(), std::strerror(errno)));
    }
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out) {
      throw DataError(fmt::format("cannot write '{}': {}", file.string(), std::strerror(errno)));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) throw DataError(fmt::format("cannot write '{}': {}", file.string(), ec.message()));
}

std::vector<std::pair<int64_t, int64_t>> predicted_labels(const Predictions& predictions,
                                                          const Batch& batch) {
  if (!predictions.labels.defined()) {
    throw TrainingError(fmt::format("task '{}': the head gave no labels to write", batch.task));
  }
  const torch::Tensor labels = predictions.labels.to(torch::kCPU, torch::kInt64).reshape({-1}).contiguous();
  if (labels.size(0) != static_cast<int64_t>(batch.record_ids.size())) {
    throw TrainingError(fmt::format("task '{}': {} predicted labels for {} records", batch.task,
                                    labels.size(0), batch.record_ids.size()));
  }
  std::vector<std::pair<int64_t, int64_t>> out;
  const int64_t* p = labels.data_ptr<int64_t>();
  for (size_t i = 0; i < batch.record_ids.size(); ++i) out.emplace_back(batch.record_ids[i], p[i]);
  return out;
}

}  // namespace unitrain

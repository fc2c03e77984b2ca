// Picks a reader by the file's first bytes; see readers.h for the readers.
#include "unitrain/weights/tensor_file.h"

#include <fmt/format.h>

#include <fstream>

#include "readers.h"
#include "unitrain/errors.h"

namespace unitrain::weights {

namespace fs = std::filesystem;

namespace {

// Enough for the pickled legacy magic number, with a protocol 4 FRAME before it.
constexpr size_t kHeadBytes = 64;
constexpr size_t kShownBytes = 16;

}  // namespace

const char* format_name(FileFormat format) {
  switch (format) {
    case FileFormat::kTorchZip: return "torch.save (zip)";
    case FileFormat::kTorchLegacy: return "torch.save (legacy)";
    case FileFormat::kSafetensors: return "safetensors";
    case FileFormat::kUnitrain: return "unitrain";
  }
  return "?";
}

FileFormat detect_format(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) throw CheckpointError(fmt::format("{}: no such file", file.string()));
  if (!fs::is_regular_file(file, ec))
    throw CheckpointError(fmt::format("{}: not a regular file", file.string()));
  std::ifstream in(file, std::ios::binary);
  char head[kHeadBytes] = {};
  in.read(head, kHeadBytes);
  const auto size = static_cast<size_t>(in.gcount());
  if (!in && !in.eof()) throw CheckpointError(fmt::format("{}: cannot read", file.string()));
  if (size >= 4 && std::string(head, 4) == "PK\x03\x04") {
    return detail::is_torchscript_zip(file) ? FileFormat::kUnitrain : FileFormat::kTorchZip;
  }
  // safetensors: u64 header length, then the JSON object's '{'.
  if (size >= 9 && head[8] == '{') return FileFormat::kSafetensors;
  if (detail::starts_with_legacy_magic(head, size)) return FileFormat::kTorchLegacy;
  std::string hex;
  for (size_t i = 0; i < std::min(size, kShownBytes); ++i) {
    hex += fmt::format("{}{:02x}", i == 0 ? "" : " ", static_cast<unsigned char>(head[i]));
  }
  throw CheckpointError(
      fmt::format("{}: not a weights file (expected a torch.save zip or legacy file, safetensors "
                  "or a unitrain archive); {}",
                  file.string(), size == 0 ? std::string("it is empty") : "it starts with " + hex));
}

TensorFile read_tensor_file(const fs::path& file) {
  switch (detect_format(file)) {
    case FileFormat::kTorchZip: return detail::read_torch_zip(file);
    case FileFormat::kTorchLegacy: return detail::read_torch_legacy(file);
    case FileFormat::kSafetensors: return detail::read_safetensors(file);
    case FileFormat::kUnitrain: return detail::read_unitrain_archive(file);
  }
  throw CheckpointError(fmt::format("{}: unknown format", file.string()));
}

}  // namespace unitrain::weights

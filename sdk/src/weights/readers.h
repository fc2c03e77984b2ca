// The per-format readers behind read_tensor_file (tensor_file.cpp picks one by the
// file's first bytes). Each throws CheckpointError "FILE: ...".
#pragma once

#include <cstddef>
#include <filesystem>

#include "unitrain/weights/tensor_file.h"

namespace unitrain::weights::detail {

// torch.save zip archives, and unitrain's own torch::serialize archives (zip files with
// a constants.pkl record); torch_file.cpp.
TensorFile read_torch_zip(const std::filesystem::path& file);
TensorFile read_unitrain_archive(const std::filesystem::path& file);
// Whether a zip holds a constants.pkl record (a TorchScript / torch::serialize archive).
bool is_torchscript_zip(const std::filesystem::path& file);

// torch.save(..., _use_new_zipfile_serialization=False); torch_file.cpp.
TensorFile read_torch_legacy(const std::filesystem::path& file);
// Whether `head` (the file's first bytes) starts with the pickled legacy magic number.
bool starts_with_legacy_magic(const char* head, size_t size);

// safetensors.cpp.
TensorFile read_safetensors(const std::filesystem::path& file);

}  // namespace unitrain::weights::detail

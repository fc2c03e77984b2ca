// Reading the weight files people have: PyTorch's torch.save (zip archives since
// PyTorch 1.6 and the older "legacy" stream), safetensors, and unitrain's own archives.
// The formats are described in docs/pretrained_weights.md.
//
// No Python is involved: torch.save files are unpickled by a restricted unpickler that,
// like torch.load(weights_only=True), builds only containers, numbers, strings and
// tensors; any other class in the pickle (argparse.Namespace in DETR checkpoints, an
// optimizer's objects) becomes an opaque value that is skipped, never executed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace unitrain::weights {

// How a file stores its tensors.
enum class FileFormat {
  kTorchZip,      // torch.save, PyTorch >= 1.6 (zip: <name>/data.pkl + <name>/data/<key>)
  kTorchLegacy,   // torch.save(..., _use_new_zipfile_serialization=False), PyTorch < 1.6
  kSafetensors,   // Hugging Face safetensors
  kUnitrain,      // a unitrain checkpoint or exported component (torch::serialize archive)
};
// "torch.save (zip)", "torch.save (legacy)", "safetensors", "unitrain".
const char* format_name(FileFormat format);

// The tensors of a file under flat dotted names, in the file's order. Nested string-keyed
// dicts are joined with '.': DETR's {"model": {"backbone.0.body.conv1.weight": T}} gives
// "model.backbone.0.body.conv1.weight"; int keys are written in decimal ("state.0.exp_avg");
// list and tuple elements are numbered ("param_groups.0.lr"); a file holding a single
// tensor names it "". Two entries with the same flat name are an error.
// Every tensor is a contiguous CPU tensor of the file's dtype holding only its own
// elements: a tensor that is a whole storage of the file is that storage's memory (no
// copy; two such tensors of one storage share it), a part of a storage is copied out.
struct TensorFile {
  std::filesystem::path file;
  FileFormat format = FileFormat::kTorchZip;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  // Non-tensor leaves by flat name: numbers, strings, bools, null; an opaque object
  // (a class the unpickler does not build) is {"__class__": "module.Name"}.
  // safetensors: the "__metadata__" entries.
  nlohmann::json values = nlohmann::json::object();
};

// Reads every tensor of `file`, recognising the format by its first bytes (not its
// name). Throws CheckpointError "FILE: ..." for a missing or unreadable file, an unknown
// format, and every inconsistency found (truncated data, a safetensors header whose
// offsets, shapes or dtypes do not fit the file, a pickle that is not a torch.save
// pickle), naming what was expected.
TensorFile read_tensor_file(const std::filesystem::path& file);

// The format of `file` from its first bytes; CheckpointError when it is none of them.
FileFormat detect_format(const std::filesystem::path& file);

// Writes `tensors` (any CPU dtype among F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL) as a
// safetensors file, with `metadata` (string values) as "__metadata__".
void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace unitrain::weights

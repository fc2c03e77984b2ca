// Starting a component from weights written by other code: the interface a plugin
// implements to say how (WeightImporter), the "init_from" block, and the import itself
// with its report. See docs/pretrained_weights.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/weights/tensor_file.h"
#include "unitrain/weights/weight_map.h"

namespace unitrain::weights {

// What a map may depend on besides the format.
struct ImportContext {
  std::string format;     // "torchvision_resnet", "detr", "hf_bert", "mmf_unit"
  std::string component;  // "encoders/image", "decoder", "decoders/coco", "heads/coco"
  // The experiment's tasks in order: a task's position is the task_index the encoders'
  // task tokens receive.
  std::vector<std::string> tasks;
  // The tasks this component serves: a head's or an unshared decoder's own task; every
  // task for a shared decoder and for encoders.
  std::vector<std::string> component_tasks;
  // Our task -> the file's name for it (mmf_unit: MMF's dataset names, "detection_coco").
  std::map<std::string, std::string> task_names;
  // Our task -> the file's row in its task-embedding tables (mmf_unit: MMF's task_idx).
  std::map<std::string, int64_t> task_indices;
};

// Implemented (besides Encoder / Decoder / Head) by components that can read weights of
// other formats than unitrain's own.
class WeightImporter {
 public:
  virtual ~WeightImporter() = default;
  // The formats weight_map() accepts, e.g. {"torchvision_resnet", "detr", "mmf_unit"}.
  virtual std::vector<std::string> weight_formats() const = 0;
  // The map for context.format (one of weight_formats()), from the file's names onto this
  // component's state-dict names.
  virtual WeightMap weight_map(const ImportContext& context) const = 0;
};

// Every format "init_from" knows: "unitrain" (an exported component) and those of the
// importers.
const std::vector<std::string>& known_formats();

// A block's "init_from": a string (a unitrain component file, as `unitrain export`
// writes) or {"file": ..., "format": "unitrain"|"torchvision_resnet"|"detr"|"hf_bert"|
// "mmf_unit", "strict": true, "skip": [globs], "tasks": {our task: file's name or
// {"name": ..., "index": ...}}}.
struct InitFrom {
  std::string file;
  std::string format = "unitrain";
  bool strict = true;
  std::vector<std::string> skip;
  nlohmann::json tasks = nlohmann::json::object();
};
// Throws ConfigError "<where>/<key>: ..." (where = "file:/pointer/init_from").
InitFrom init_from_json(const nlohmann::json& value, const std::string& where);

// The state a map reads from a file: a nested checkpoint's "model" entry (DETR, MMF)
// or "state_dict" entry when present, else every tensor; a "module." prefix shared by
// every name (a DistributedDataParallel model saved as is) is dropped. `*taken` says
// which, for the report ("the 'model' entry").
std::vector<std::pair<std::string, torch::Tensor>> state_of(const TensorFile& file,
                                                            std::string* taken = nullptr);

// The name layout a state looks like (after state_of): "mmf_unit" (unit_base_model.*),
// "detr" (backbone.0.body.* with transformer.*), "hf_bert" ([bert.]embeddings.
// word_embeddings.weight), "torchvision_resnet" (conv1.weight and layer1.0.conv1.weight at
// the top), "unitrain" (a unitrain file), or "" when none fits.
std::string guess_layout(const TensorFile& file);

// ImportContext::task_names / task_indices for `format` and the experiment's tasks:
// mmf_unit defaults to MMF's names and indices for UniT's datasets (coco ->
// detection_coco / 0, vg -> detection_visual_genome / 1, vqa2 / 3, snli_ve ->
// visual_entailment / 9, qnli -> glue_qnli / 5, mnli_mm -> glue_mnli_mismatched / 6,
// sst2 -> glue_sst2 / 7, qqp -> glue_qqp / 8), overridden by init_from.tasks.
void fill_task_names(const InitFrom& init, const std::vector<std::string>& tasks,
                     ImportContext* context, const std::string& where);

// A Combine for a task-embedding table [rows, D]: row task_index(t) of ours takes the
// file's row context.task_indices[t] for every task that has one; the other rows are the
// file's own rows when the tables have the same size, else they keep their values.
Combine task_rows(const ImportContext& context);

// MMF's task type of a dataset name: "detection" (detection_*), "glue" (glue_*), else "vl".
std::string mmf_task_type(const std::string& dataset);

// The outcome of importing one component (or, for mmf_unit on the model, all of them).
struct ImportReport {
  std::string component;  // "encoders/image", or "model"
  std::string file, format, taken;
  size_t loaded = 0, kept = 0, other = 0;
  size_t skipped = 0, skipped_file = 0;  // own tensors left as initialised, file tensors left out
  std::vector<std::string> loaded_names, kept_names, skipped_names, other_names;
  std::vector<std::string> missing, unexpected, mismatched;  // one line each
  // "encoders/image <- detr-r50.pth (detr, the 'model' entry): 265 loaded, 3 kept ...";
  // with `verbose`, every name under its heading.
  std::string summary(bool verbose) const;
  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

// Fills a report from a plan; `unexpected` are the file names to report as such (for one
// component: plan.known - consumed - ignored; the caller computes them for a model).
ImportReport make_report(const std::string& component, const InitFrom& init, const TensorFile& file,
                         const std::string& taken, const ImportPlan& plan,
                         const std::vector<std::string>& unexpected, size_t other);

// CheckpointError "<where>: 'FILE' (format, ...) does not fit ...: N missing, ..." with
// the first offenders of each kind and what the file holds, when the report is not clean.
void check_strict(const ImportReport& report, const TensorFile& file, const std::string& where);

// Copies plan.loaded into `module`'s parameters and buffers (on their device, in their
// dtype), without recording gradients.
void apply_plan(torch::nn::Module& module, const ImportPlan& plan);

}  // namespace unitrain::weights

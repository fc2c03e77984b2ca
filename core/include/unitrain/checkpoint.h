// Weights on disk: flat state dicts, exported components and whole-model state.
// The formats are described in docs/checkpoints.md.
//
// Files are torch archives (torch::serialize::OutputArchive). State is stored as one
// Dict[str, Tensor] of every parameter and buffer by dotted name ("fc1.weight"), on the
// CPU, so that loading can name a missing or differently shaped tensor instead of
// silently resizing it.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>

#include <map>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/dataset.h"

namespace unitrain {

class UnitModelImpl;

using StateDict = c10::Dict<std::string, torch::Tensor>;

// Every parameter and buffer of `module` by dotted name, detached, on the CPU.
StateDict state_dict(const torch::nn::Module& module);

// Copies `state` into the parameters and buffers of `module` (on their device). Throws
// CheckpointError, prefixed by `where`, listing every tensor that is missing from
// `state`, not in the module, or of another shape (with both shapes); nothing is
// copied then.
void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& where);

// An exported component: what `unitrain export` writes and "init_from" reads.
struct ComponentArchive {
  std::string component;    // name in the source model, e.g. "heads/vqa2"
  std::string kind;         // "encoder", "decoder" or "head"
  std::string type;         // plugin name
  nlohmann::json options;   // the options that built it (without "type"/"init_from")
  StateDict state;          // its parameters and buffers
};

constexpr const char* kComponentFormat = "unitrain.component.v1";
constexpr const char* kCheckpointFormat = "unitrain.checkpoint.v1";

void save_component(const ComponentArchive& component, const std::filesystem::path& file);
// Throws CheckpointError when the file cannot be read or is not a component archive.
ComponentArchive load_component(const std::filesystem::path& file);

// The archive of one component of a built model.
ComponentArchive export_component(const UnitModelImpl& model, const std::string& component);

// The archive of one component of a whole-model checkpoint (see docs/checkpoints.md),
// cut out of its "model" state by the component's submodule prefix; type and options
// come from the checkpoint's experiment. No plugin is needed.
ComponentArchive export_component(const std::filesystem::path& checkpoint,
                                  const std::string& component);

// Whole-model state under the key "model" of an archive (the trainer adds its own keys:
// optimizer, scheduler, step...), with "format" and the resolved "experiment".
void write_model_state(torch::serialize::OutputArchive& archive, const torch::nn::Module& model,
                       const nlohmann::json& experiment);
// Loads the "model" state of an archive into `model` (CheckpointError on mismatch).
void read_model_state(torch::serialize::InputArchive& archive, torch::nn::Module& model,
                      const std::string& where);
// Opens a checkpoint file written by the trainer; CheckpointError "FILE: not a readable
// checkpoint (truncated or not a torch archive): ..." when torch cannot read it.
torch::serialize::InputArchive open_checkpoint(const std::filesystem::path& file);
// find_checkpoint(run_or_checkpoint), then its "model" state into `model` (the other
// entries, e.g. optimizer state, are ignored). Returns the file read.
std::filesystem::path load_model_weights(const std::filesystem::path& run_or_checkpoint,
                                         torch::nn::Module& model);
// Every task's label space (kind, names, num_attributes), stored by the trainer under
// "labels" so that `predict` names its labels without opening a dataset.
void write_label_spaces(torch::serialize::OutputArchive& archive,
                        const std::map<std::string, LabelSpace>& labels);
// The label spaces stored in a checkpoint; empty for one written before they were
// stored. CheckpointError naming `where` when the entry is malformed.
std::map<std::string, LabelSpace> read_label_spaces(torch::serialize::InputArchive& archive,
                                                    const std::string& where);

// The resolved experiment stored in a checkpoint archive.
nlohmann::json read_checkpoint_experiment(torch::serialize::InputArchive& archive,
                                          const std::string& where);

// A run folder or checkpoint file -> the checkpoint file: a file is itself; a folder
// gives <dir>/checkpoints/last.pt, else the last *.pt (name order) in <dir>/checkpoints,
// else <dir>/last.pt. Throws CheckpointError when there is none.
std::filesystem::path find_checkpoint(const std::filesystem::path& run_or_checkpoint);

// The checkpoint a run resumes from, opened. A file is itself (no fallback: it was
// asked for). A run folder gives find_checkpoint's file; when that one does not open
// (truncated, torn by a crash), the newest <dir>/checkpoints/step_*.pt that does, with
// a line on `notes` naming the skipped file, why, and the file used instead. Throws the
// first file's CheckpointError when none opens.
struct OpenedCheckpoint {
  std::filesystem::path file;
  torch::serialize::InputArchive archive;
};
OpenedCheckpoint open_resume_checkpoint(const std::filesystem::path& run_or_checkpoint,
                                        std::ostream& notes);

}  // namespace unitrain

// UniT's model composition: the encoders, the decoder(s) and one head per task, built
// from a validated experiment. A task's forward pass encodes the batch with the task's
// encoders, concatenates their memories along the sequence, decodes the task's queries
// and runs the task's head.
//
// Components are named like the experiment's blocks: "encoders/<name>", "decoder"
// (shared) or "decoders/<task>" (share_decoders: false), "heads/<task>". Their
// submodule names, and so their state-dict prefixes, are "encoder_<name>", "decoder" /
// "decoder_<task>" and "head_<task>"; they depend only on the names in the JSON.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/batch.h"
#include "unitrain/config.h"
#include "unitrain/decoder.h"
#include "unitrain/encoder.h"
#include "unitrain/head.h"
#include "unitrain/weights/importer.h"

namespace unitrain {

class Registry;

// Creates a plugin object of `kind` ("encoder", "decoder", "head") named `type` from
// its options (the block without "type" and "init_from"); `where` is the block's
// "file:/pointer" for messages. The registry is the usual source; tests pass their own.
using ComponentFactory = std::function<std::shared_ptr<PluginObject>(
    const std::string& kind, const std::string& type, const nlohmann::json& options,
    const std::string& where)>;

ComponentFactory registry_factory(const Registry& registry);

// One component of the model, as its experiment block described it.
struct ComponentSpec {
  std::string name;         // "encoders/image", "decoder", "decoders/vqa2", "heads/vqa2"
  std::string kind;         // plugin kind: "encoder", "decoder", "head"
  std::string type;         // plugin name
  nlohmann::json options;   // the block without "type" and "init_from"
  std::string pointer;      // JSON pointer of the block, e.g. "/model/heads/vqa2"
  std::string module_name;  // submodule name, e.g. "head_vqa2"
  nlohmann::json init_from;  // the block's "init_from" (null when none)
};

// The submodule name of a component name ("heads/vqa2" -> "head_vqa2"). Throws
// ConfigError for a name that is not of the three forms.
std::string component_module_name(const std::string& component);

// The object positions of a task with objects_boxes, as in VQA models on detector
// features (LXMERT): (LayerNorm(W_f slot) + LayerNorm(W_b box)) / 2, where box is the
// source head's predicted (cx, cy, w, h) in [0, 1]. Trained by the reading task.
class ObjectEmbedImpl : public torch::nn::Module {
 public:
  explicit ObjectEmbedImpl(int64_t d_model);
  // slots [B, Q, D], boxes [B, Q, 4] -> [B, Q, D]
  torch::Tensor forward(const torch::Tensor& slots, const torch::Tensor& boxes);

 private:
  torch::nn::Linear feature_{nullptr}, box_{nullptr};
  torch::nn::LayerNorm feature_norm_{nullptr}, box_norm_{nullptr};
};
TORCH_MODULE(ObjectEmbed);

class UnitModelImpl : public torch::nn::Module {
 public:
  // `experiment.json` must be validated (validate_experiment): model.encoders,
  // model.decoder, model.share_decoders, model.heads, tasks.<task>.encoders and
  // tasks.<task>.num_queries are read. "init_from" weights are loaded after
  // construction unless `load_init_from` is false (the weights are about to be
  // overwritten by a checkpoint anyway): the model's own (model.init_from, a whole MMF
  // UniT or unitrain checkpoint) first, then each component's. Throws ConfigError
  // (dimensions, names), RegistryError (plugin creation) and CheckpointError (init_from).
  UnitModelImpl(const Experiment& experiment, const ComponentFactory& factory,
                bool load_init_from = true);

  // Encodes, decodes and runs the head of `task`; losses when `with_loss`.
  HeadOutput forward(const std::string& task, const Batch& batch, bool with_loss = true);
  // The head's decoded predictions for an output of forward().
  Predictions predict(const std::string& task, const HeadOutput& output, const Batch& batch);
  // The concatenated memory of the task's encoders, in tasks.<task>.encoders order:
  // memory [B, S1+S2+..., D], mask [B, S], pos [B, S, D]. With tasks.<task>.objects_from
  // = S, the last decoder layer's outputs of S's queries on this batch (S's encoders and
  // task index, no gradient) follow as Q_S more positions, unmasked, with zero pos;
  // with tasks.<task>.objects_boxes they pass through the task's ObjectEmbed with the
  // boxes S's head predicts for them (BoxOutput).
  EncoderOutput encode(const std::string& task, const Batch& batch);

  // Task names in the experiment's (sorted) order; a task's index in it is the
  // `task_index` the encoders receive (task tokens).
  const std::vector<std::string>& tasks() const { return tasks_; }
  int64_t task_index(const std::string& task) const;

  // Component names: encoders (sorted), decoder(s), heads (sorted by task).
  std::vector<std::string> component_names() const;
  const ComponentSpec& spec(const std::string& component) const;
  // The component's module; ConfigError listing the valid names for an unknown one.
  std::shared_ptr<torch::nn::Module> component(const std::string& component) const;
  std::shared_ptr<Encoder> encoder(const std::string& name) const;
  std::shared_ptr<Decoder> decoder(const std::string& task) const;
  std::shared_ptr<Head> head(const std::string& task) const;

  // Number of parameters of each component, and of the whole model.
  std::map<std::string, int64_t> parameter_counts() const;
  // Number of parameters of the model's modules that are not components (objects_<task>,
  // see tasks.<task>.objects_boxes), by submodule name. With parameter_counts() they sum
  // to parameter_count().
  std::map<std::string, int64_t> other_parameter_counts() const;
  int64_t parameter_count() const;

  // What each init_from load found, in load order (empty without init_from).
  const std::vector<weights::ImportReport>& import_reports() const { return import_reports_; }

 private:
  const std::string& check_task(const std::string& task) const;
  void load_component(const ComponentSpec& spec, const Experiment& experiment);
  // A component's init_from in another format than unitrain's, through its WeightImporter.
  void import_component(const ComponentSpec& spec, const weights::InitFrom& init,
                        const std::filesystem::path& file, const std::string& where);
  // model.init_from: every component from one file.
  void import_model(const Experiment& experiment);
  // The tasks a component serves (see weights::ImportContext::component_tasks).
  std::vector<std::string> component_tasks(const ComponentSpec& spec) const;

  std::vector<std::string> tasks_;
  std::map<std::string, ComponentSpec> specs_;
  std::map<std::string, std::shared_ptr<Encoder>> encoders_;
  std::map<std::string, std::shared_ptr<Decoder>> decoders_;  // by task (shared: same object)
  std::map<std::string, std::shared_ptr<Head>> heads_;
  std::map<std::string, std::vector<std::string>> task_encoders_;
  std::map<std::string, std::string> objects_from_;  // task -> the task whose outputs it reads
  std::map<std::string, ObjectEmbed> object_embeds_;  // by task, with objects_boxes
  std::vector<weights::ImportReport> import_reports_;

  // encode() without objects_from.
  EncoderOutput encode_own(const std::string& task, const Batch& batch);
};
TORCH_MODULE(UnitModel);

// Prints the module tree of `model` with parameter counts, `depth` levels below each
// component (0 = components only).
std::string model_summary(const UnitModelImpl& model, int depth = 1);

}  // namespace unitrain

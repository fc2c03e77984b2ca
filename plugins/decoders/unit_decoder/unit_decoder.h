// UniT's shared decoder: a DETR post-norm transformer decoder whose queries are one
// learned table per task. Target = zeros; the query table is added as query position.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/decoder.h"
#include "unitrain/nn/transformer.h"
#include "unitrain/options.h"
#include "unitrain/weights/importer.h"

namespace unitrain::decoders {

// Task -> the task whose queries it borrows (see borrow_queries).
using QueryBorrowing = std::map<std::string, std::string>;

// JSON keys are the field names. Defaults follow MMF's UniT (shared decoder).
struct UnitDecoderOptions {
  // Width of queries and memory. Default: 768.
  TORCH_ARG(int64_t, d_model) = 768;
  TORCH_ARG(int64_t, num_layers) = 6;          // Default: 6.
  TORCH_ARG(int64_t, num_heads) = 8;           // Default: 8.
  TORCH_ARG(int64_t, dim_feedforward) = 2048;  // Default: 2048.
  TORCH_ARG(double, dropout) = 0.1;            // Default: 0.1.
  // "relu" (DETR) or "gelu". Default: "relu".
  TORCH_ARG(std::string, activation) = "relu";
  // Return every layer's output (for auxiliary losses) or only the last ([1, B, Q, D]).
  // Default: true.
  TORCH_ARG(bool, return_intermediate) = true;
  // Task -> another task whose query table is appended, detached, after the task's own
  // queries when the task is decoded: {"vqa2": "coco"} lets VQA's queries read, through
  // self-attention, what the detection queries find. Needs a shared decoder. Default: {}.
  TORCH_ARG(QueryBorrowing, borrow_queries);
  // Post-norm encoder layers run over the memory of the tasks in fusion_tasks before it
  // is decoded, with the memory's position embedding added to queries and keys (DETR's
  // encoder layer). For a task whose memory joins image and text, every image position
  // can then attend to the words and every word to the image (single-stream fusion, as
  // in VisualBERT or ViLT). Shared by those tasks. Default: 0 (UniT: none).
  TORCH_ARG(int64_t, fusion_layers) = 0;
  // Tasks whose memory goes through the fusion layers. Default: [].
  TORCH_ARG(std::vector<std::string>, fusion_tasks);
};

// Every option declared once (key, meaning, rule; the default is the field's): the
// plugin's defaults JSON, the parsing below, to_json and the README's key table.
const options::OptionSet<UnitDecoderOptions>& unit_decoder_option_set();

// Throws ConfigError "<where>/<key>: ...".
UnitDecoderOptions unit_decoder_options_from_json(const nlohmann::json& j,
                                                  const std::string& where);
nlohmann::json to_json(const UnitDecoderOptions& options);

class UnitDecoderImpl : public torch::nn::Cloneable<UnitDecoderImpl>,
                        public Decoder,
                        public weights::WeightImporter {
 public:
  explicit UnitDecoderImpl(const UnitDecoderOptions& options);
  // detr (the decoder layers and norm; DETR's queries for the tasks init_from.tasks
  // names), mmf_unit (layers, norm and every task's queries). See decoder_weights.cpp.
  std::vector<std::string> weight_formats() const override;
  weights::WeightMap weight_map(const weights::ImportContext& context) const override;
  // Rebuilds the decoder and every query table added so far (used by clone()).
  void reset() override;

  int64_t d_model() const override { return options.d_model(); }
  // Registers "queries.<task>" = Embedding(num_queries, d_model), N(0, 1) as in
  // PyTorch. Adding a task twice with the same size is a no-op; another size, an empty
  // or dotted name throws ConfigError.
  void add_task(const std::string& task, int64_t num_queries) override;
  // memory.memory [B, S, D], memory.mask [B, S] (true at padding; none when
  // undefined), memory.pos [B, S, D] (zeros when undefined). Returns [L, B, Q, D]
  // (L = num_layers, or 1 without return_intermediate), after the final LayerNorm.
  // With borrow_queries, Q counts the task's own queries first, then the borrowed ones.
  // A task in fusion_tasks has its memory passed through the fusion layers first.
  torch::Tensor decode(const std::string& task, const EncoderOutput& memory) override;

  std::vector<std::string> tasks() const;

  UnitDecoderOptions options;
  unitrain::nn::TransformerDecoder decoder{nullptr};
  unitrain::nn::TransformerEncoder fusion{nullptr};  // null without fusion_layers
  torch::nn::ModuleDict queries{nullptr};

 private:
  std::vector<std::pair<std::string, int64_t>> tasks_;  // in add_task order
};
TORCH_MODULE(UnitDecoder);

}  // namespace unitrain::decoders

// The shared decoder: per-task learned queries attend to the concatenated memory of
// the encoders a task uses.
#pragma once

#include <string>

#include <torch/torch.h>

#include "unitrain/encoder.h"
#include "unitrain/plugin.h"

namespace unitrain {

class Decoder : public virtual torch::nn::Module, public PluginObject {
 public:
  // Width D of the decoder (and of the memory it expects).
  virtual int64_t d_model() const = 0;
  // Adds a learned query table of `num_queries` rows for `task`. Called for every task
  // before training or before loading weights; the order of calls is the order of the
  // state dict and must be stable.
  virtual void add_task(const std::string& task, int64_t num_queries) = 0;
  // memory: [B, S, D], mask [B, S], pos [B, S, D].
  // Returns every layer's output after the final norm: [L, B, Q, D].
  virtual torch::Tensor decode(const std::string& task, const EncoderOutput& memory) = 0;
};

}  // namespace unitrain

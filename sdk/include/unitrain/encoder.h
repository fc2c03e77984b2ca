// A per-modality encoder: turns one modality of a batch into a sequence of memory
// vectors for the decoder.
#pragma once

#include <string>

#include <torch/torch.h>

#include "unitrain/batch.h"
#include "unitrain/plugin.h"

namespace unitrain {

struct EncoderOutput {
  torch::Tensor memory;  // [B, S, D] D = the encoder's output_dim()
  torch::Tensor mask;    // [B, S] bool, true at padding
  torch::Tensor pos;     // [B, S, D] position embedding added in attention
};

// Interface classes derive `virtual torch::nn::Module` so a plugin's concrete module
// (itself a Module) shares one Module base, and parameters/state dicts work through
// the interface pointer.
class Encoder : public virtual torch::nn::Module, public PluginObject {
 public:
  // "image" or "text": which part of the Batch this encoder reads.
  virtual std::string modality() const = 0;
  // D of EncoderOutput::memory.
  virtual int64_t output_dim() const = 0;
  // `task_index` selects the task token when the encoder uses one (else ignored).
  virtual EncoderOutput encode(const Batch& batch, int64_t task_index) = 0;
};

}  // namespace unitrain

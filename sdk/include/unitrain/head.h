// A task head: reads the decoder's output, computes named losses against the batch's
// targets and decodes predictions.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "unitrain/batch.h"
#include "unitrain/plugin.h"

namespace unitrain {

struct HeadOutput {
  // Raw outputs by name, e.g. "logits" [B, C] or "pred_logits" [B, Q, C+1] and
  // "pred_boxes" [B, Q, 4] for the last layer.
  std::map<std::string, torch::Tensor> outputs;
  // Named scalar losses, already weighted; the trainer sums them.
  std::map<std::string, torch::Tensor> losses;
};

class Head : public virtual torch::nn::Module, public PluginObject {
 public:
  // decoder_out: [L, B, Q, D]. Losses are computed when `with_loss` (targets must then
  // be present in the batch).
  virtual HeadOutput run(const torch::Tensor& decoder_out, const Batch& batch,
                         bool with_loss) = 0;
  // Decodes outputs into predictions (labels / boxes in original image pixels).
  virtual Predictions predict(const HeadOutput& output, const Batch& batch) = 0;
};

// Heads that predict boxes (a mixin found by dynamic_cast, as LabelCount is): the boxes
// of the last decoder layer in an output of run(), [B, Q, 4] (cx, cy, w, h) normalized to
// [0, 1]. A task with `objects_boxes` reads them from its `objects_from` task's head; a
// head without the mixin outputs no boxes.
class BoxOutput {
 public:
  virtual ~BoxOutput() = default;
  virtual torch::Tensor boxes(const HeadOutput& output) const = 0;
};

}  // namespace unitrain

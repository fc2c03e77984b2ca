// The data that flows from datasets through the model: one sample, a collated batch,
// and decoded predictions. Padding masks follow DETR/PyTorch: true marks padding.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace unitrain {

// One record after decoding and transforms. Fields a task does not use stay undefined
// (tensors) or empty (vectors); `label` is -1 when absent.
struct Sample {
  std::string source;  // "file:record" (or "file:line"), for error messages

  // Image modality.
  torch::Tensor image;  // [3, H, W] float32, normalized, after transforms
  int64_t image_id = -1;
  int64_t orig_height = 0;  // size of the decoded file, before transforms
  int64_t orig_width = 0;

  // Text modality (already tokenized, [CLS] ... [SEP] included).
  std::vector<int64_t> input_ids;
  std::vector<int64_t> segment_ids;

  // Targets.
  int64_t label = -1;        // classification label id
  torch::Tensor soft_label;  // [C] float32 soft scores (VQA)
  torch::Tensor boxes;       // [N, 4] float32 cxcywh, normalized to the transformed image
  torch::Tensor classes;     // [N] int64 contiguous class ids
  torch::Tensor attributes;  // [N, 16] int64, -1 padded (Visual Genome)

  int64_t record_id = -1;  // dataset-specific id (question id, annotation index...)
};

// A batch of one task. Built by `collate()` (sdk/src/data/batch.cpp) on the CPU
// and moved to the training device with `to()`.
struct Batch {
  std::string task;
  int64_t size = 0;

  torch::Tensor image;       // [B, 3, H, W] float32, zero padded to the largest image
  torch::Tensor image_mask;  // [B, H, W] bool, true at padding
  torch::Tensor image_size;  // [B, 2] int64 (h, w) of each unpadded image
  torch::Tensor orig_size;   // [B, 2] int64 (h, w) of each decoded file
  torch::Tensor image_id;    // [B] int64

  torch::Tensor input_ids;    // [B, T] int64, 0 padded
  torch::Tensor text_mask;    // [B, T] bool, true at padding
  torch::Tensor segment_ids;  // [B, T] int64

  torch::Tensor labels;       // [B] int64
  torch::Tensor soft_labels;  // [B, C] float32
  std::vector<torch::Tensor> boxes;       // B x [N_i, 4] cxcywh normalized
  std::vector<torch::Tensor> classes;     // B x [N_i] int64
  std::vector<torch::Tensor> attributes;  // B x [N_i, 16] int64

  std::vector<int64_t> record_ids;
  std::vector<std::string> sources;

  // Data-parallel training: the mean of a tensor over the batches every rank trains on
  // in this step (an all-reduce; set by the trainer, unset in one process and in
  // evaluation). Heads that normalise a loss by a count over the whole batch (DETR's
  // number of boxes) divide by mean_over_ranks(count), so that the averaged gradient
  // equals that of one process with every rank's samples in one batch.
  std::function<torch::Tensor(const torch::Tensor&)> rank_mean;
  torch::Tensor mean_over_ranks(const torch::Tensor& t) const { return rank_mean ? rank_mean(t) : t; }

  bool has_image() const { return image.defined(); }
  bool has_text() const { return input_ids.defined(); }

  // A copy with every tensor on `device` (non_blocking when the source is pinned).
  Batch to(const torch::Device& device, bool non_blocking = false) const;
  // A copy with every tensor in pinned (page-locked) memory, for fast CUDA copies.
  Batch pin_memory() const;
};

// Pads and stacks samples of one task into a batch.
Batch collate(const std::vector<Sample>& samples, const std::string& task);

// The examples `rows` of a batch, in that order, with every per-example field. The
// padding stays as it was (a batch-invariant model predicts the same either way).
Batch select_rows(const Batch& batch, const std::vector<int64_t>& rows);

// One detected object in image pixels of the original file.
struct Detection {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  float score = 0;
  int64_t label = 0;
};

// A head's decoded predictions for one batch. Classification heads fill `labels` and
// `scores` (and `topk_*` when asked); detection heads fill `detections`.
struct Predictions {
  torch::Tensor labels;  // [B] int64 argmax label
  torch::Tensor scores;  // [B, C] float32 probabilities
  std::vector<std::vector<Detection>> detections;  // B x detections
};

}  // namespace unitrain

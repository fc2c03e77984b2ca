// Batches (unitrain/batch.h): collate() pads and stacks the samples of one task;
// Batch::to / pin_memory.
#include <algorithm>

#include <fmt/format.h>

#include "unitrain/batch.h"
#include "unitrain/errors.h"

namespace unitrain {
namespace {

// All samples must agree on whether a field is present; a mix means a reader bug or
// mixed splits, which padding would silently hide.
template <typename Has>
bool all_or_none(const std::vector<Sample>& samples, const char* field, Has has) {
  const bool first = has(samples.front());
  for (const auto& s : samples) {
    if (has(s) != first) {
      throw DataError(fmt::format(
          "collate: field '{}' is present in {} but not in {} (every sample of a batch "
          "must carry the same fields)",
          field, first ? samples.front().source : s.source,
          first ? s.source : samples.front().source));
    }
  }
  return first;
}

torch::Tensor defined_or(const torch::Tensor& t, torch::Tensor fallback) {
  return t.defined() ? t : fallback;
}

torch::Tensor move(const torch::Tensor& t, const torch::Device& device, bool non_blocking) {
  return t.defined() ? t.to(device, non_blocking) : t;
}

torch::Tensor pin(const torch::Tensor& t) { return t.defined() ? t.pin_memory() : t; }

template <typename F>
Batch map_tensors(const Batch& in, F f) {
  Batch out = in;
  for (auto* t : {&out.image, &out.image_mask, &out.image_size, &out.orig_size, &out.image_id,
                  &out.input_ids, &out.text_mask, &out.segment_ids, &out.labels,
                  &out.soft_labels}) {
    *t = f(*t);
  }
  for (auto* list : {&out.boxes, &out.classes, &out.attributes}) {
    for (auto& t : *list) t = f(t);
  }
  return out;
}

}  // namespace

Batch collate(const std::vector<Sample>& samples, const std::string& task) {
  if (samples.empty()) throw DataError(fmt::format("collate: empty batch for task '{}'", task));
  const auto n = static_cast<int64_t>(samples.size());
  Batch batch;
  batch.task = task;
  batch.size = n;
  for (const auto& s : samples) {
    batch.sources.push_back(s.source);
    batch.record_ids.push_back(s.record_id);
  }

  if (all_or_none(samples, "image", [](const Sample& s) { return s.image.defined(); })) {
    int64_t max_h = 0, max_w = 0;
    for (const auto& s : samples) {
      if (s.image.dim() != 3 || s.image.size(0) != 3) {
        throw DataError(fmt::format("collate: {}: image must be [3, H, W], found {}",
                                    s.source, fmt::join(s.image.sizes(), ", ")));
      }
      max_h = std::max(max_h, s.image.size(1));
      max_w = std::max(max_w, s.image.size(2));
    }
    batch.image = torch::zeros({n, 3, max_h, max_w}, torch::kFloat32);
    batch.image_mask = torch::ones({n, max_h, max_w}, torch::kBool);
    batch.image_size = torch::empty({n, 2}, torch::kInt64);
    batch.orig_size = torch::empty({n, 2}, torch::kInt64);
    batch.image_id = torch::empty({n}, torch::kInt64);
    auto size_a = batch.image_size.accessor<int64_t, 2>();
    auto orig_a = batch.orig_size.accessor<int64_t, 2>();
    auto id_a = batch.image_id.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) {
      const auto& img = samples[i].image;
      const int64_t h = img.size(1), w = img.size(2);
      batch.image[i].slice(1, 0, h).slice(2, 0, w).copy_(img);
      batch.image_mask[i].slice(0, 0, h).slice(1, 0, w).fill_(false);
      size_a[i][0] = h;
      size_a[i][1] = w;
      orig_a[i][0] = samples[i].orig_height;
      orig_a[i][1] = samples[i].orig_width;
      id_a[i] = samples[i].image_id;
    }
  }

  if (all_or_none(samples, "input_ids", [](const Sample& s) { return !s.input_ids.empty(); })) {
    size_t max_t = 0;
    for (const auto& s : samples) max_t = std::max(max_t, s.input_ids.size());
    const auto t = static_cast<int64_t>(max_t);
    batch.input_ids = torch::zeros({n, t}, torch::kInt64);
    batch.segment_ids = torch::zeros({n, t}, torch::kInt64);
    batch.text_mask = torch::ones({n, t}, torch::kBool);
    auto ids_a = batch.input_ids.accessor<int64_t, 2>();
    auto seg_a = batch.segment_ids.accessor<int64_t, 2>();
    auto mask_a = batch.text_mask.accessor<bool, 2>();
    for (int64_t i = 0; i < n; ++i) {
      const auto& s = samples[i];
      if (!s.segment_ids.empty() && s.segment_ids.size() != s.input_ids.size()) {
        throw DataError(fmt::format("collate: {}: {} segment ids for {} input ids", s.source,
                                    s.segment_ids.size(), s.input_ids.size()));
      }
      for (size_t j = 0; j < s.input_ids.size(); ++j) {
        ids_a[i][j] = s.input_ids[j];
        seg_a[i][j] = s.segment_ids.empty() ? 0 : s.segment_ids[j];
        mask_a[i][j] = false;
      }
    }
  }

  const bool any_label = std::any_of(samples.begin(), samples.end(),
                                     [](const Sample& s) { return s.label >= 0; });
  if (any_label) {
    batch.labels = torch::empty({n}, torch::kInt64);
    auto a = batch.labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) a[i] = samples[i].label;
  }

  if (all_or_none(samples, "soft_label", [](const Sample& s) { return s.soft_label.defined(); })) {
    std::vector<torch::Tensor> rows;
    for (const auto& s : samples) {
      if (s.soft_label.sizes() != samples.front().soft_label.sizes()) {
        throw DataError(fmt::format("collate: {}: soft_label has shape [{}], expected [{}]",
                                    s.source, fmt::join(s.soft_label.sizes(), ", "),
                                    fmt::join(samples.front().soft_label.sizes(), ", ")));
      }
      rows.push_back(s.soft_label);
    }
    batch.soft_labels = torch::stack(rows).to(torch::kFloat32);
  }

  // Detection targets: a sample without objects still gets empty tensors, so that
  // boxes[i] always belongs to image i.
  const bool any_boxes = std::any_of(samples.begin(), samples.end(),
                                     [](const Sample& s) { return s.boxes.defined(); });
  if (any_boxes) {
    const bool any_attributes = std::any_of(
        samples.begin(), samples.end(), [](const Sample& s) { return s.attributes.defined(); });
    for (const auto& s : samples) {
      batch.boxes.push_back(defined_or(s.boxes, torch::zeros({0, 4}, torch::kFloat32)));
      batch.classes.push_back(defined_or(s.classes, torch::zeros({0}, torch::kInt64)));
      if (any_attributes) {
        batch.attributes.push_back(
            defined_or(s.attributes, torch::full({0, 16}, -1, torch::kInt64)));
      }
    }
  }
  return batch;
}

Batch select_rows(const Batch& batch, const std::vector<int64_t>& rows) {
  for (int64_t r : rows) {
    if (r < 0 || r >= batch.size) {
      throw DataError(fmt::format("select_rows: row {} of a batch of {} (task '{}')", r, batch.size,
                                  batch.task));
    }
  }
  const torch::Tensor index = torch::tensor(rows, torch::kInt64);
  auto pick = [&](const torch::Tensor& t) {
    return t.defined() ? t.index_select(0, index.to(t.device())) : t;
  };
  auto pick_each = [&](const auto& items) {
    std::decay_t<decltype(items)> out;
    if (items.empty()) return out;
    for (int64_t r : rows) out.push_back(items[static_cast<size_t>(r)]);
    return out;
  };
  Batch out;
  out.task = batch.task;
  out.size = static_cast<int64_t>(rows.size());
  out.image = pick(batch.image);
  out.image_mask = pick(batch.image_mask);
  out.image_size = pick(batch.image_size);
  out.orig_size = pick(batch.orig_size);
  out.image_id = pick(batch.image_id);
  out.input_ids = pick(batch.input_ids);
  out.text_mask = pick(batch.text_mask);
  out.segment_ids = pick(batch.segment_ids);
  out.labels = pick(batch.labels);
  out.soft_labels = pick(batch.soft_labels);
  out.boxes = pick_each(batch.boxes);
  out.classes = pick_each(batch.classes);
  out.attributes = pick_each(batch.attributes);
  out.record_ids = pick_each(batch.record_ids);
  out.sources = pick_each(batch.sources);
  out.rank_mean = batch.rank_mean;
  return out;
}

Batch Batch::to(const torch::Device& device, bool non_blocking) const {
  return map_tensors(*this, [&](const torch::Tensor& t) { return move(t, device, non_blocking); });
}

Batch Batch::pin_memory() const { return map_tensors(*this, pin); }

}  // namespace unitrain

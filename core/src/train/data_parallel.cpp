#include "train/data_parallel.h"

#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/json_text.h"

namespace unitrain::train {
namespace {

using json = nlohmann::json;

// Gradient buckets of at most this many elements (32 MB of float32): one all-reduce
// each, so that a large model never needs a second full copy of its gradients.
constexpr int64_t kBucketElements = int64_t{8} << 20;

uint64_t mix(uint64_t h, uint64_t x) {
  // splitmix64's finaliser over the running value and the new one.
  uint64_t z = h ^ (x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string short_dump(const json& value) {
  std::string text = json_text(value);
  return shorten(text, 80);
}

}  // namespace

DataParallel::DataParallel(std::shared_ptr<ProcessGroup> group, DistributedOptions options,
                           std::vector<std::string> task_names)
    : group_(std::move(group)), options_(std::move(options)), task_names_(std::move(task_names)) {}

void DataParallel::check_same_setup(const json& setup) {
  const auto all = group_->all_gather_bytes(json_text(setup), "the check of the ranks' experiments");
  const json reference = json::parse(all[0]);
  for (int64_t r = 1; r < world_size(); ++r) {
    if (all[r] == all[0]) continue;
    const json other = json::parse(all[r]);
    const json patch = json::diff(reference, other);
    const std::string pointer = patch.empty() ? "/" : patch[0].at("path").get<std::string>();
    const json::json_pointer p(pointer);
    const std::string mine = reference.contains(p) ? short_dump(reference.at(p)) : "(absent)";
    const std::string theirs = other.contains(p) ? short_dump(other.at(p)) : "(absent)";
    throw TrainingError(fmt::format(
        "rank {}'s experiment or plugin set differs from rank 0's at {} (rank 0: {}, rank {}: "
        "{}); every rank must run the same resolved experiment with the same plugins",
        r, pointer, mine, r, theirs));
  }
}

void DataParallel::broadcast_model(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (const auto& p : model.parameters()) tensors.push_back(p);
  for (const auto& b : model.buffers()) tensors.push_back(b);
  group_->broadcast(tensors, 0, "the broadcast of rank 0's initial model");
}

void DataParallel::average(std::vector<double>& values, const std::string& what) {
  if (values.empty()) return;
  std::vector<torch::Tensor> buffer{torch::tensor(values, torch::kFloat64)};
  group_->all_reduce_sum(buffer, what);
  const torch::Tensor mean = buffer[0].to(torch::kCPU) / static_cast<double>(world_size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = mean[static_cast<int64_t>(i)].item<double>();
}

void DataParallel::attach(Batch& batch) const {
  auto group = group_;
  batch.rank_mean = [group](const torch::Tensor& t) {
    // NCCL reduces CUDA tensors only; the head gets the mean on its tensor's device.
    const bool to_cuda = group->backend() == "nccl" && !t.is_cuda();
    std::vector<torch::Tensor> one{to_cuda ? t.detach().cuda() : t.detach().clone().contiguous()};
    group->all_reduce_sum(one, "a loss normalizer's all-reduce");
    auto mean = one[0] / static_cast<double>(group->world_size());
    return to_cuda ? mean.to(t.device()) : mean;
  };
}

bool DataParallel::agree_everywhere(int64_t value, const std::string& what) {
  std::vector<torch::Tensor> sums{torch::tensor({value, value * value}, torch::kLong)};
  if (group_->backend() == "nccl") sums[0] = sums[0].cuda();
  group_->all_reduce_sum(sums, what);
  auto s = sums[0].to(torch::kCPU);
  return s[0].item<int64_t>() * s[0].item<int64_t>() == world_size() * s[1].item<int64_t>();
}

void DataParallel::check_task(int64_t step, size_t task) {
  if (agree_everywhere(static_cast<int64_t>(task) + 1,
                       fmt::format("step {}'s check of the ranks' tasks", step))) {
    return;
  }
  const auto all = group_->all_gather({static_cast<int64_t>(task)}, "the report of a task divergence");
  std::string ranks;
  for (int64_t r = 0; r < world_size(); ++r) {
    const auto t = static_cast<size_t>(all[r]);
    ranks += fmt::format("{}rank {}: task '{}'", r ? "; " : "", r,
                         t < task_names_.size() ? task_names_[t] : "?");
  }
  throw TrainingError(fmt::format(
      "step {}: the ranks diverged ({}); every rank must draw the same task from the "
      "trainer's task engine (a scheduler may not use its own randomness or the rank)",
      step, ranks));
}

void DataParallel::reduce_step(int64_t step, const std::vector<size_t>& tasks,
                               const std::vector<torch::Tensor>& parameters,
                               std::vector<double>& values) {
  std::vector<torch::Tensor> grads;
  int64_t elements = 0;
  uint64_t touched = 0;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& g = parameters[i].grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    elements += g.numel();
    touched = mix(touched, i);
  }
  uint64_t code = 0;
  for (size_t t : tasks) code = code * (task_names_.size() + 1) + t + 1;
  sequence_hash_ = mix(mix(sequence_hash_, code), touched);

  // (n, n^2) for the gradient size n: equal sums mean equal sizes on every rank (the
  // task was checked at the draw), so the buckets below line up.
  const int64_t small_size = elements % (1 << 20);
  if (!agree_everywhere(small_size, fmt::format("step {}'s check of the gradient sizes", step))) {
    const auto all = group_->all_gather({elements}, "the report of a gradient size divergence");
    throw TrainingError(fmt::format(
        "step {}: task '{}' gave gradients of {} values on the ranks; a task must touch the "
        "same parameters on every rank whatever its batch holds",
        step, task_names_.at(tasks.back()), fmt::join(all, " / ")));
  }
  const int64_t w = world_size();

  // Buckets: consecutive gradients up to kBucketElements, the logged values after the
  // last one.
  std::vector<std::vector<size_t>> buckets(1);
  int64_t filled = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (filled > 0 && filled + grads[i].numel() > kBucketElements) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += grads[i].numel();
  }
  const double scale = 1.0 / static_cast<double>(w);
  const auto options = grads.empty() ? torch::TensorOptions(torch::kFloat32)
                                     : grads.front().options();
  for (size_t b = 0; b < buckets.size(); ++b) {
    std::vector<torch::Tensor> flat;
    for (size_t i : buckets[b]) flat.push_back(grads[i].reshape({-1}).to(options.dtype()));
    const bool last = b + 1 == buckets.size();
    if (last) flat.push_back(torch::tensor(values, torch::kFloat64).to(options));
    std::vector<torch::Tensor> buffer{torch::cat(flat)};
    group_->all_reduce_sum(buffer, fmt::format("step {}'s gradient all-reduce", step));
    buffer[0].mul_(scale);
    int64_t offset = 0;
    for (size_t i : buckets[b]) {
      const int64_t n = grads[i].numel();
      grads[i].copy_(buffer[0].narrow(0, offset, n).view_as(grads[i]));
      offset += n;
    }
    if (last) {
      auto tail = buffer[0].narrow(0, offset, static_cast<int64_t>(values.size()))
                      .to(torch::kCPU, torch::kFloat64);
      for (size_t k = 0; k < values.size(); ++k) values[k] = tail[k].item<double>();
    }
  }
}

void DataParallel::check_sequence(int64_t step) {
  if (options_.check_every <= 0 || step % options_.check_every != 0) return;
  const auto all = group_->all_gather(
      {step, static_cast<int64_t>(sequence_hash_ >> 32), static_cast<int64_t>(sequence_hash_ & 0xffffffffULL)},
      fmt::format("step {}'s check of the task sequence", step));
  std::vector<int64_t> differ;
  for (int64_t r = 1; r < world_size(); ++r) {
    if (all[3 * r] != all[0] || all[3 * r + 1] != all[1] || all[3 * r + 2] != all[2]) {
      differ.push_back(r);
    }
  }
  if (!differ.empty()) {
    throw TrainingError(fmt::format(
        "step {}: the task sequence or the touched parameters of rank(s) {} differ from rank "
        "0's since the start (checked every distributed.check_every = {} steps)",
        step, fmt::join(differ, ", "), options_.check_every));
  }
}

std::vector<std::string> DataParallel::gather(const std::string& payload, const std::string& what) {
  return group_->all_gather_bytes(payload, what);
}

std::string DataParallel::share_from_rank0(const std::string& text, const std::string& what) {
  return group_->all_gather_bytes(rank() == 0 ? text : std::string(), what)[0];
}

// --- packing predictions for a gathered evaluation ---------------------------------------

namespace {

using Dict = c10::impl::GenericDict;

c10::IValue tensor_or_none(const torch::Tensor& t) {
  return t.defined() ? c10::IValue(t.to(torch::kCPU)) : c10::IValue();
}

torch::Tensor tensor_of(const Dict& d, const std::string& key) {
  auto v = d.at(key);
  return v.isNone() ? torch::Tensor() : v.toTensor();
}

c10::IValue tensor_list(const std::vector<torch::Tensor>& list) {
  c10::List<torch::Tensor> out;
  for (const auto& t : list) out.push_back(t.to(torch::kCPU));
  return out;
}

std::vector<torch::Tensor> tensors_of(const Dict& d, const std::string& key) {
  std::vector<torch::Tensor> out;
  for (const c10::IValue& t : d.at(key).toListRef()) out.push_back(t.toTensor());
  return out;
}

}  // namespace

std::string pack_for_evaluation(const Predictions& predictions, const Batch& batch) {
  Dict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("task", batch.task);
  d.insert("size", batch.size);
  d.insert("image_size", tensor_or_none(batch.image_size));
  d.insert("orig_size", tensor_or_none(batch.orig_size));
  d.insert("image_id", tensor_or_none(batch.image_id));
  d.insert("labels", tensor_or_none(batch.labels));
  d.insert("soft_labels", tensor_or_none(batch.soft_labels));
  d.insert("boxes", tensor_list(batch.boxes));
  d.insert("classes", tensor_list(batch.classes));
  d.insert("attributes", tensor_list(batch.attributes));
  d.insert("record_ids", c10::List<int64_t>(batch.record_ids));
  d.insert("sources", c10::List<std::string>(batch.sources));
  d.insert("pred_labels", tensor_or_none(predictions.labels));
  d.insert("pred_scores", tensor_or_none(predictions.scores));
  // Detections: per image [N, 5] (x0, y0, x1, y1, score) and [N] labels.
  std::vector<torch::Tensor> boxes, labels;
  for (const auto& image : predictions.detections) {
    auto b = torch::empty({static_cast<int64_t>(image.size()), 5}, torch::kFloat32);
    auto l = torch::empty({static_cast<int64_t>(image.size())}, torch::kLong);
    for (size_t k = 0; k < image.size(); ++k) {
      const auto& det = image[k];
      const float row[5] = {det.x0, det.y0, det.x1, det.y1, det.score};
      std::copy(row, row + 5, b.data_ptr<float>() + 5 * k);
      l.data_ptr<int64_t>()[k] = det.label;
    }
    boxes.push_back(b);
    labels.push_back(l);
  }
  d.insert("det_boxes", tensor_list(boxes));
  d.insert("det_labels", tensor_list(labels));
  const auto bytes = torch::pickle_save(c10::IValue(d));
  return std::string(bytes.begin(), bytes.end());
}

void unpack_for_evaluation(const std::string& bytes, Predictions* predictions, Batch* batch) {
  const std::vector<char> data(bytes.begin(), bytes.end());
  const Dict d = torch::pickle_load(data).toGenericDict();
  batch->task = d.at("task").toStringRef();
  batch->size = d.at("size").toInt();
  batch->image_size = tensor_of(d, "image_size");
  batch->orig_size = tensor_of(d, "orig_size");
  batch->image_id = tensor_of(d, "image_id");
  batch->labels = tensor_of(d, "labels");
  batch->soft_labels = tensor_of(d, "soft_labels");
  batch->boxes = tensors_of(d, "boxes");
  batch->classes = tensors_of(d, "classes");
  batch->attributes = tensors_of(d, "attributes");
  batch->record_ids.clear();
  for (const c10::IValue& id : d.at("record_ids").toListRef()) batch->record_ids.push_back(id.toInt());
  batch->sources.clear();
  for (const c10::IValue& s : d.at("sources").toListRef()) batch->sources.push_back(s.toStringRef());
  predictions->labels = tensor_of(d, "pred_labels");
  predictions->scores = tensor_of(d, "pred_scores");
  const auto boxes = tensors_of(d, "det_boxes");
  const auto labels = tensors_of(d, "det_labels");
  predictions->detections.assign(boxes.size(), {});
  for (size_t i = 0; i < boxes.size(); ++i) {
    const auto b = boxes[i].contiguous();
    const float* p = b.data_ptr<float>();
    for (int64_t k = 0; k < b.size(0); ++k) {
      predictions->detections[i].push_back(
          {p[5 * k], p[5 * k + 1], p[5 * k + 2], p[5 * k + 3], p[5 * k + 4],
           labels[i][k].item<int64_t>()});
    }
  }
}

}  // namespace unitrain::train

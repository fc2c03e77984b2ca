#include "infer/predictor.h"

#include <mutex>

#include <fmt/format.h>

#include "unitrain/checkpoint.h"
#include "unitrain/data/image_pipeline.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"
#include "unitrain/tokenizer.h"

namespace unitrain::infer {

namespace fs = std::filesystem;
using json = nlohmann::json;

// What a task needs to turn raw inputs into a sample, built once.
struct Predictor::TaskState {
  std::set<std::string> modalities;
  std::string where;  // "file:/tasks/T/dataset", for messages
  std::unique_ptr<data::ImageTransform> transform;  // null: the block has no "image"
  std::shared_ptr<const Tokenizer> tokenizer;       // null: the block has no "tokenizer"
  mutable std::once_flag labels_once;
  mutable LabelSpace labels;
};

namespace {

std::set<std::string> task_modalities(const UnitModelImpl& model, const json& tasks,
                                      const std::string& task) {
  std::set<std::string> out;
  for (const auto& name : tasks.at(task).at("encoders")) {
    out.insert(model.encoder(name.get<std::string>())->modality());
  }
  if (tasks.at(task).contains("objects_from")) {
    const auto source = tasks.at(task).at("objects_from").get<std::string>();
    for (const auto& name : tasks.at(source).at("encoders")) {
      out.insert(model.encoder(name.get<std::string>())->modality());
    }
  }
  return out;
}

// The label space of the task's val_split dataset (checkpoints without stored labels).
LabelSpace dataset_labels(const Experiment& experiment, const std::string& task) {
  const std::string pointer = pointer_join(pointer_join("/tasks", task), "dataset");
  json options = experiment.json.at(json::json_pointer(pointer));
  const std::string type = options.at("type").get<std::string>();
  options.erase("type");
  options.erase("init_from");
  options["split"] = experiment.json.at("tasks").at(task).at("val_split");
  return Registry::global()
      .create_as<Dataset>("dataset", type, options, experiment.where(pointer))
      ->labels();
}

}  // namespace

Predictor::Predictor(Experiment experiment, const fs::path& run_or_checkpoint)
    : experiment_(std::move(experiment)),
      checkpoint_(find_checkpoint(run_or_checkpoint)),
      device_(parse_device(experiment_.json.at("device").get<std::string>(), experiment_.where("/device"))),
      // Weights come from the checkpoint: init_from files are not read.
      model_(experiment_, registry_factory(Registry::global()), /*load_init_from=*/false) {
  torch::serialize::InputArchive archive = open_checkpoint(checkpoint_);
  read_model_state(archive, *model_, checkpoint_.string());
  const auto stored_labels = read_label_spaces(archive, checkpoint_.string());
  model_->to(device_);
  model_->eval();

  const json& tasks = experiment_.json.at("tasks");
  for (const auto& [name, spec] : tasks.items()) {
    auto state = std::make_unique<TaskState>();
    state->modalities = task_modalities(*model_, tasks, name);
    const std::string pointer = pointer_join(pointer_join("/tasks", name), "dataset");
    const json& block = experiment_.json.at(json::json_pointer(pointer));
    state->where = experiment_.where(pointer);
    if (state->modalities.count("image") && block.contains("image")) {
      data::ImageTransformOptions defaults;
      defaults.augment = false;
      auto options = data::image_transform_options_from_json(block.at("image"), defaults,
                                                             state->where + "/image");
      options.augment = false;  // evaluation preprocessing, whatever the training split says
      state->transform = std::make_unique<data::ImageTransform>(options);
    }
    if (state->modalities.count("text") && block.contains("tokenizer")) {
      auto options = tokenizer_options_from_json(block.at("tokenizer"), state->where + "/tokenizer");
      if (block.contains("max_length")) options.max_length = block.at("max_length").get<int64_t>();
      state->tokenizer = make_tokenizer(options);
    }
    if (auto it = stored_labels.find(name); it != stored_labels.end()) {
      state->labels = it->second;
      std::call_once(state->labels_once, [] {});
    }
    task_names_.push_back(name);
    tasks_.emplace(name, std::move(state));
  }
}

Predictor::~Predictor() = default;

void Predictor::check_task(const std::string& task, const std::string& what) const {
  if (has_task(task)) return;
  std::string names;
  for (const auto& name : task_names_) names += (names.empty() ? "" : ", ") + name;
  throw ConfigError(fmt::format("{} '{}': not a task of {}; tasks: {}", what, task,
                                experiment_.file.string(), names));
}

const Predictor::TaskState& Predictor::state(const std::string& task) const {
  check_task(task, "task");
  return *tasks_.at(task);
}

const std::set<std::string>& Predictor::modalities(const std::string& task) const {
  return state(task).modalities;
}

const LabelSpace& Predictor::labels(const std::string& task) const {
  const TaskState& s = state(task);
  std::call_once(s.labels_once, [&] { s.labels = dataset_labels(experiment_, task); });
  return s.labels;
}

void Predictor::check_request(const std::string& task, const Request& request,
                              const InputNames& names) const {
  const TaskState& s = state(task);
  if (s.modalities.count("image")) {
    if (!request.has_image()) {
      throw ConfigError(fmt::format("task '{}' reads an image: give {}", task, names.image));
    }
    if (!s.transform) {
      throw ConfigError(fmt::format("{}: the dataset block has no \"image\" transform, so task '{}' "
                                    "cannot prepare an image", s.where, task));
    }
  } else if (request.has_image()) {
    throw ConfigError(fmt::format("task '{}' reads no image; drop {}", task, names.image));
  }
  if (s.modalities.count("text")) {
    if (request.text.empty()) {
      throw ConfigError(fmt::format("task '{}' reads text: give {}", task, names.text));
    }
    if (!s.tokenizer) {
      throw ConfigError(fmt::format("{}: the dataset block has no \"tokenizer\", so task '{}' "
                                    "cannot tokenize text", s.where, task));
    }
  } else if (!request.text.empty() || !request.text_b.empty()) {
    throw ConfigError(fmt::format("task '{}' reads no text; drop {} / {}", task, names.text,
                                  names.text_b));
  }
}

Sample Predictor::sample(const std::string& task, const Request& request, const InputNames& names,
                         cv::Mat* rgb_out) const {
  check_request(task, request, names);
  const TaskState& s = state(task);
  Sample sample;
  sample.source = "predict";
  if (s.transform && request.has_image()) {
    cv::Mat rgb = request.rgb;
    if (rgb.empty()) {
      rgb = data::decode_image(request.image_file);
      sample.source = request.image_file;
    } else if (rgb.type() != CV_8UC3) {
      throw DataError(fmt::format("task '{}': a decoded image must be 8-bit RGB with 3 channels",
                                  task));
    }
    sample.image = s.transform->apply(rgb, torch::Tensor(), 0).image;
    sample.orig_height = rgb.rows;
    sample.orig_width = rgb.cols;
    sample.image_id = 0;
    if (rgb_out) *rgb_out = rgb;
  }
  if (s.tokenizer && !request.text.empty()) {
    const Encoding encoding = request.text_b.empty() ? s.tokenizer->encode(request.text)
                                                     : s.tokenizer->encode(request.text, &request.text_b);
    sample.input_ids = encoding.input_ids;
    sample.segment_ids = encoding.segment_ids;
  }
  return sample;
}

Predictions Predictor::predict(const std::string& task, const std::vector<Sample>& samples) const {
  check_task(task, "task");
  torch::NoGradGuard no_grad;
  const Batch batch = collate(samples, task).to(device_);
  const HeadOutput output = model_->forward(task, batch, /*with_loss=*/false);
  Predictions predictions = model_->predict(task, output, batch);
  if (predictions.labels.defined()) predictions.labels = predictions.labels.to(torch::kCPU);
  if (predictions.scores.defined()) predictions.scores = predictions.scores.to(torch::kCPU, torch::kFloat);
  if (predictions.detections.empty() && !predictions.scores.defined()) {
    throw TrainingError(fmt::format("the head of task '{}' returned neither scores nor detections",
                                    task));
  }
  return predictions;
}

}  // namespace unitrain::infer

#include "infer/predictor.h"

#include <mutex>

#include <fmt/format.h>

#include "unitrain/checkpoint.h"
#include "unitrain/data/image_pipeline.h"
#include "unitrain/errors.h"
#include "unitrain/prepare.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"

namespace unitrain::infer {

namespace fs = std::filesystem;
using json = nlohmann::json;

// What a task needs to turn raw inputs into a sample, built once.
struct Predictor::TaskState {
  std::set<std::string> modalities;
  std::string where;         // "file:/tasks/T/dataset", for messages
  std::string dataset_type;  // the dataset plugin's name
  // The dataset plugin's preparer (kind "preparer", the dataset's name); null when the
  // plugin registers none.
  std::shared_ptr<const InputPreparer> preparer;
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
    state->dataset_type = block.at("type").get<std::string>();
    if (Registry::global().contains("preparer", state->dataset_type)) {
      json options = block;
      options.erase("type");
      options.erase("init_from");
      state->preparer = Registry::global().create_as<InputPreparer>(
          "preparer", state->dataset_type, options, state->where);
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

const InputPreparer* Predictor::preparer(const std::string& task) const {
  return state(task).preparer.get();
}

const LabelSpace& Predictor::labels(const std::string& task) const {
  const TaskState& s = state(task);
  std::call_once(s.labels_once, [&] { s.labels = dataset_labels(experiment_, task); });
  return s.labels;
}

void Predictor::check_request(const std::string& task, const Request& request,
                              const InputNames& names) const {
  const TaskState& s = state(task);
  if (!s.preparer) {
    throw ConfigError(fmt::format("{}: dataset '{}' registers no preparer (a \"preparer\" plugin "
                                  "of the same name, unitrain/prepare.h), so task '{}' cannot "
                                  "prepare raw inputs",
                                  s.where, s.dataset_type, task));
  }
  if (s.modalities.count("image")) {
    if (!request.has_image()) {
      throw ConfigError(fmt::format("task '{}' reads an image: give {}", task, names.image));
    }
    if (!s.preparer->reads_image()) {
      throw ConfigError(fmt::format("{}: dataset '{}' prepares no image, so task '{}' cannot "
                                    "prepare one", s.where, s.dataset_type, task));
    }
  } else if (request.has_image()) {
    throw ConfigError(fmt::format("task '{}' reads no image; drop {}", task, names.image));
  }
  if (s.modalities.count("text")) {
    if (request.text.empty()) {
      throw ConfigError(fmt::format("task '{}' reads text: give {}", task, names.text));
    }
    if (!s.preparer->reads_text()) {
      throw ConfigError(fmt::format("{}: dataset '{}' prepares no text, so task '{}' cannot "
                                    "tokenize it", s.where, s.dataset_type, task));
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
  RawInput input;
  if (request.has_image()) {
    input.rgb = request.rgb;
    if (input.rgb.empty()) {
      input.rgb = data::decode_image(request.image_file);
      input.source = request.image_file;
    } else if (input.rgb.type() != CV_8UC3) {
      throw DataError(fmt::format("task '{}': a decoded image must be 8-bit RGB with 3 channels",
                                  task));
    }
    if (rgb_out) *rgb_out = input.rgb;
  }
  input.text = request.text;
  input.text_b = request.text_b;
  return s.preparer->prepare(input);
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

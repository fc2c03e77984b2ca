// `unitrain predict EXP.json --checkpoint PATH --task T [--image IMG] [--text "..."]
// [--text-b "..."] [--top-k K] [--threshold S] [--draw OUT.png]`: runs one task of a
// trained model on raw inputs, prepared exactly as the task's dataset prepares its
// evaluation records (the dataset block's "image" transform without augmentation, its
// "tokenizer" and "max_length"), and prints the prediction as JSON:
//   classification / VQA: {"task", "kind", "predictions": [{"label", "id", "score"}...]}
//   detection: {"task", "kind", "image": {...}, "detections": [{"label", "id", "score",
//               "box": [x0, y0, x1, y1]}...]}, boxes in pixels of the original image.
#include <iostream>
#include <set>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli/commands.h"
#include "unitrain/batch.h"
#include "unitrain/checkpoint.h"
#include "unitrain/config.h"
#include "unitrain/data/image_pipeline.h"
#include "unitrain/dataset.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"
#include "unitrain/tokenizer.h"

namespace unitrain::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;  // output: keys print in the order written

struct PredictArgs {
  std::string file;
  std::vector<std::string> overrides;
  std::string checkpoint;
  std::string task;
  std::string image;
  std::string text;
  std::string text_b;
  int64_t top_k = 5;
  bool top_k_given = false;
  double threshold = 0.5;
  std::string draw;
};

// The modalities the task's encoders read ("image", "text"), with those of the task it
// reads objects_from.
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

// The raw inputs as one evaluation sample of `task`. `rgb` receives the decoded image.
Sample make_sample(const Experiment& experiment, const std::string& task,
                   const std::set<std::string>& modalities, const PredictArgs& args, cv::Mat& rgb) {
  const std::string pointer = pointer_join(pointer_join("/tasks", task), "dataset");
  const json& block = experiment.json.at(json::json_pointer(pointer));
  const std::string where = experiment.where(pointer);
  Sample sample;
  sample.source = "predict";

  if (modalities.count("image")) {
    if (args.image.empty()) {
      throw ConfigError(fmt::format("task '{}' reads an image: give --image FILE", task));
    }
    if (!block.contains("image")) {
      throw ConfigError(fmt::format("{}: the dataset block has no \"image\" transform, so task '{}' "
                                    "cannot prepare an image", where, task));
    }
    data::ImageTransformOptions defaults;
    defaults.augment = false;
    auto options = data::image_transform_options_from_json(block.at("image"), defaults, where + "/image");
    options.augment = false;  // evaluation preprocessing, whatever the training split says
    rgb = data::decode_image(args.image);
    sample.image = data::ImageTransform(options).apply(rgb, torch::Tensor(), 0).image;
    sample.orig_height = rgb.rows;
    sample.orig_width = rgb.cols;
    sample.image_id = 0;
    sample.source = args.image;
  } else if (!args.image.empty()) {
    throw ConfigError(fmt::format("task '{}' reads no image; drop --image", task));
  }

  if (modalities.count("text")) {
    if (args.text.empty()) {
      throw ConfigError(fmt::format("task '{}' reads text: give --text \"...\"", task));
    }
    if (!block.contains("tokenizer")) {
      throw ConfigError(fmt::format("{}: the dataset block has no \"tokenizer\", so task '{}' "
                                    "cannot tokenize text", where, task));
    }
    auto options = tokenizer_options_from_json(block.at("tokenizer"), where + "/tokenizer");
    if (block.contains("max_length")) options.max_length = block.at("max_length").get<int64_t>();
    auto tokenizer = make_tokenizer(options);
    const Encoding encoding =
        args.text_b.empty() ? tokenizer->encode(args.text) : tokenizer->encode(args.text, &args.text_b);
    sample.input_ids = encoding.input_ids;
    sample.segment_ids = encoding.segment_ids;
  } else if (!args.text.empty() || !args.text_b.empty()) {
    throw ConfigError(fmt::format("task '{}' reads no text; drop --text / --text-b", task));
  }
  return sample;
}

// The evaluation split of the task, for its label names.
LabelSpace task_labels(const Experiment& experiment, const std::string& task) {
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

std::string label_name(const LabelSpace& labels, int64_t id) {
  if (id >= 0 && id < static_cast<int64_t>(labels.names.size())) return labels.names[id];
  return std::to_string(id);
}

ojson classification_json(const Predictions& predictions, const LabelSpace& labels, int64_t top_k) {
  const torch::Tensor scores = predictions.scores[0].to(torch::kCPU, torch::kFloat);  // [C]
  const int64_t k = std::min<int64_t>(std::max<int64_t>(top_k, 1), scores.size(0));
  auto [values, ids] = scores.topk(k);
  ojson out = ojson::array();
  for (int64_t i = 0; i < k; ++i) {
    const int64_t id = ids[i].item<int64_t>();
    out.push_back({{"label", label_name(labels, id)}, {"id", id}, {"score", values[i].item<double>()}});
  }
  return out;
}

ojson detection_json(const std::vector<Detection>& detections, const LabelSpace& labels) {
  ojson out = ojson::array();
  for (const auto& d : detections) {
    out.push_back({{"label", label_name(labels, d.label)},
                   {"id", d.label},
                   {"score", d.score},
                   {"box", {d.x0, d.y0, d.x1, d.y1}}});
  }
  return out;
}

// Draws the detections (or the top label) on the image and writes it.
void draw(const cv::Mat& rgb, const ojson& result, const std::string& file) {
  cv::Mat canvas;
  cv::cvtColor(rgb, canvas, cv::COLOR_RGB2BGR);
  const double scale = std::max(0.35, std::min(canvas.cols, canvas.rows) / 500.0);
  const int thickness = std::max(1, static_cast<int>(std::lround(scale * 2)));
  auto label_at = [&](const std::string& text, cv::Point corner, const cv::Scalar& color) {
    int baseline = 0;
    const cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline);
    const int top = std::max(0, corner.y - size.height - baseline);
    cv::rectangle(canvas, cv::Point(corner.x, top), cv::Point(corner.x + size.width, top + size.height + baseline),
                  color, cv::FILLED);
    cv::putText(canvas, text, cv::Point(corner.x, top + size.height), cv::FONT_HERSHEY_SIMPLEX, scale,
                cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  };
  if (result.contains("detections")) {
    static const cv::Scalar kColors[] = {{0, 0, 230}, {0, 170, 0}, {230, 90, 0}, {0, 160, 230}, {170, 0, 170}};
    for (const auto& d : result["detections"]) {
      const auto& box = d["box"];
      const cv::Scalar color = kColors[d["id"].get<int64_t>() % 5];
      const cv::Point p0(static_cast<int>(std::lround(box[0].get<double>())),
                         static_cast<int>(std::lround(box[1].get<double>())));
      const cv::Point p1(static_cast<int>(std::lround(box[2].get<double>())),
                         static_cast<int>(std::lround(box[3].get<double>())));
      cv::rectangle(canvas, p0, p1, color, thickness);
      label_at(fmt::format("{} {:.2f}", d["label"].get<std::string>(), d["score"].get<double>()), p0, color);
    }
  } else if (!result["predictions"].empty()) {
    const auto& top = result["predictions"][0];
    label_at(fmt::format("{} {:.2f}", top["label"].get<std::string>(), top["score"].get<double>()),
             cv::Point(0, canvas.rows), cv::Scalar(60, 60, 60));
  }
  bool written = false;
  try {
    written = cv::imwrite(file, canvas);
  } catch (const cv::Exception& e) {
    throw DataError(fmt::format("--draw '{}': cannot write the image: {}", file, e.what()));
  }
  if (!written) {
    throw DataError(fmt::format("--draw '{}': cannot write the image (unknown extension or "
                                "folder missing?)", file));
  }
}

ojson predict(const CliContext& context, const PredictArgs& args) {
  Experiment experiment = load_checked_experiment(context, args.file, args.overrides);
  const json& tasks = experiment.json.at("tasks");
  if (!tasks.contains(args.task)) {
    std::string names;
    for (const auto& [name, spec] : tasks.items()) names += (names.empty() ? "" : ", ") + name;
    throw ConfigError(fmt::format("--task '{}': not a task of {}; tasks: {}", args.task,
                                  experiment.file.string(), names));
  }
  const torch::Device device =
      parse_device(experiment.json.at("device").get<std::string>(), experiment.where("/device"));
  configure_threads(experiment.json.at("threads").get<int64_t>());

  // Weights come from the checkpoint: init_from files are not read.
  UnitModel model(experiment, registry_factory(Registry::global()), /*load_init_from=*/false);
  const fs::path checkpoint = find_checkpoint(args.checkpoint);
  torch::serialize::InputArchive archive = open_checkpoint(checkpoint);
  read_model_state(archive, *model, checkpoint.string());
  auto stored_labels = read_label_spaces(archive, checkpoint.string());
  model->to(device);
  model->eval();

  const auto modalities = task_modalities(*model, tasks, args.task);
  if (!args.draw.empty() && !modalities.count("image")) {
    throw ConfigError(fmt::format("--draw: task '{}' reads no image to draw on", args.task));
  }
  cv::Mat rgb;
  const Sample sample = make_sample(experiment, args.task, modalities, args, rgb);
  // The label names the model was trained with; older checkpoints: the dataset's.
  const LabelSpace labels = stored_labels.count(args.task) ? stored_labels.at(args.task)
                                                           : task_labels(experiment, args.task);
  const Batch batch = collate({sample}, args.task).to(device);

  torch::NoGradGuard no_grad;
  const HeadOutput output = model->forward(args.task, batch, /*with_loss=*/false);
  const Predictions predictions = model->predict(args.task, output, batch);

  ojson result = {{"task", args.task}, {"kind", labels.kind}, {"checkpoint", checkpoint.string()}};
  if (modalities.count("image")) {
    result["image"] = {{"path", args.image}, {"width", rgb.cols}, {"height", rgb.rows}};
  }
  if (!args.text.empty()) result["text"] = args.text;
  if (!args.text_b.empty()) result["text_b"] = args.text_b;
  if (!predictions.detections.empty()) {
    std::vector<Detection> kept;
    for (const auto& d : predictions.detections[0]) {
      if (d.score >= args.threshold) kept.push_back(d);
    }
    if (args.top_k_given && static_cast<int64_t>(kept.size()) > args.top_k) kept.resize(args.top_k);
    result["detections"] = detection_json(kept, labels);
  } else if (predictions.scores.defined()) {
    result["predictions"] = classification_json(predictions, labels, args.top_k);
  } else {
    throw TrainingError(fmt::format("the head of task '{}' returned neither scores nor detections",
                                    args.task));
  }
  if (!args.draw.empty()) draw(rgb, result, args.draw);
  return result;
}

}  // namespace

void add_predict_command(CLI::App& app, CliContext& context) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* command = app.add_subcommand("predict", "Run one task of a trained model on an image and/or text");
  command->add_option("experiment", args->file, "Experiment JSON file")->required();
  command->add_option("--checkpoint", args->checkpoint, "Checkpoint file or run folder")->required();
  command->add_option("--task", args->task, "Task to run")->required();
  command->add_option("--image", args->image, "Image file (tasks with an image encoder)");
  command->add_option("--text", args->text, "Text (tasks with a text encoder)");
  command->add_option("--text-b", args->text_b, "Second text of a pair (e.g. GLUE sentence 2)");
  auto* top_k = command->add_option("--top-k", args->top_k,
                                    "Labels shown (classification, VQA); at most this many boxes "
                                    "(detection, when given)")
                    ->capture_default_str();
  command->add_option("--threshold", args->threshold, "Detection: lowest score shown")->capture_default_str();
  command->add_option("--draw", args->draw, "Write the image with the boxes (or the top label) drawn");
  command->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  command->callback([args, top_k, &context] {
    args->top_k_given = top_k->count() > 0;
    if (args->top_k < 1) throw ConfigError(fmt::format("--top-k: expected >= 1, found {}", args->top_k));
    std::cout << json_text(predict(context, *args), 2) << "\n";
  });
}

}  // namespace unitrain::cli

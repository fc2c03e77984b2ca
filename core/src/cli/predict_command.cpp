// `unitrain predict EXP.json --checkpoint PATH --task T [--image IMG] [--text "..."]
// [--text-b "..."] [--top-k K] [--threshold S] [--draw OUT.png]`: runs one task of a
// trained model on raw inputs (infer::Predictor prepares them as the task's dataset
// prepares its evaluation records) and prints the prediction as JSON:
//   classification / VQA: {"task", "kind", "predictions": [{"label", "id", "score"}...]}
//   detection: {"task", "kind", "image": {...}, "detections": [{"label", "id", "score",
//               "box": [x0, y0, x1, y1]}...]}, boxes in pixels of the original image.
// With `--input FILE.jsonl` it answers every request of the file (one a line), the
// model loaded once and requests of one task batched, one result a line in file order.
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli/commands.h"
#include "infer/predictor.h"
#include "unitrain/batch.h"
#include "unitrain/config.h"
#include "unitrain/dataset.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/runtime.h"

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
  // Batch mode.
  std::string input;
  std::string output;
  std::string draw_dir;
  int64_t batch_size = 8;
};

std::string label_name(const LabelSpace& labels, int64_t id) {
  if (id >= 0 && id < static_cast<int64_t>(labels.names.size())) return labels.names[id];
  return std::to_string(id);
}

// The top_k labels of batch item `i`, highest score first.
ojson classification_json(const Predictions& predictions, int64_t i, const LabelSpace& labels,
                          int64_t top_k) {
  const torch::Tensor scores = predictions.scores[i].to(torch::kCPU, torch::kFloat);  // [C]
  const int64_t k = std::min<int64_t>(std::max<int64_t>(top_k, 1), scores.size(0));
  auto [values, ids] = scores.topk(k);
  ojson out = ojson::array();
  for (int64_t j = 0; j < k; ++j) {
    const int64_t id = ids[j].item<int64_t>();
    out.push_back({{"label", label_name(labels, id)}, {"id", id}, {"score", values[j].item<double>()}});
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

// The prediction of batch item `i` of `task` for `request` as printed: the request's
// inputs, then the labels or detections (threshold and top-k applied).
ojson result_json(const infer::Predictor& predictor, const std::string& task,
                  const infer::Request& request, const cv::Mat& rgb, const Predictions& predictions,
                  int64_t i, const PredictArgs& args, bool with_checkpoint) {
  const LabelSpace& labels = predictor.labels(task);
  ojson result = {{"task", task}, {"kind", labels.kind}};
  if (with_checkpoint) result["checkpoint"] = predictor.checkpoint().string();
  if (!rgb.empty()) {
    result["image"] = {{"path", request.image_file}, {"width", rgb.cols}, {"height", rgb.rows}};
  }
  if (!request.text.empty()) result["text"] = request.text;
  if (!request.text_b.empty()) result["text_b"] = request.text_b;
  if (!predictions.detections.empty()) {
    std::vector<Detection> kept;
    for (const auto& d : predictions.detections.at(i)) {
      if (d.score >= args.threshold) kept.push_back(d);
    }
    if (args.top_k_given && static_cast<int64_t>(kept.size()) > args.top_k) kept.resize(args.top_k);
    result["detections"] = detection_json(kept, labels);
  } else {
    result["predictions"] = classification_json(predictions, i, labels, args.top_k);
  }
  return result;
}

infer::Predictor open_predictor(const CliContext& context, const PredictArgs& args) {
  Experiment experiment = load_checked_experiment(context, args.file, args.overrides);
  configure_threads(experiment.json.at("threads").get<int64_t>());
  return infer::Predictor(std::move(experiment), args.checkpoint);
}

ojson predict(const CliContext& context, const PredictArgs& args) {
  const infer::Predictor predictor = open_predictor(context, args);
  predictor.check_task(args.task, "--task");
  if (!args.draw.empty() && !predictor.modalities(args.task).count("image")) {
    throw ConfigError(fmt::format("--draw: task '{}' reads no image to draw on", args.task));
  }
  infer::Request request;
  request.image_file = args.image;
  request.text = args.text;
  request.text_b = args.text_b;
  cv::Mat rgb;
  const Sample sample = predictor.sample(args.task, request, {}, &rgb);
  const Predictions predictions = predictor.predict(args.task, {sample});
  ojson result = result_json(predictor, args.task, request, rgb, predictions, 0, args,
                             /*with_checkpoint=*/true);
  if (!args.draw.empty()) draw(rgb, result, args.draw);
  return result;
}

// How a --input line names its inputs in messages.
const infer::InputNames kLineNames{"\"image\"", "\"text\"", "\"text_b\""};

// One line of a --input file.
struct LineRequest {
  int64_t line = 0;  // 1-based
  std::string task;
  infer::Request request;
  json id;  // echoed back when given
};

// Reads every request of a JSONL file, checked against the model's tasks and
// modalities before anything runs. Errors name FILE:LINE.
std::vector<LineRequest> read_requests(const infer::Predictor& predictor, const PredictArgs& args) {
  std::ifstream in(args.input, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("--input '{}': cannot open the file", args.input));
  static const std::set<std::string> kKeys = {"task", "image", "text", "text_b", "id"};
  std::vector<LineRequest> requests;
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", args.input, line);
    json j;
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      throw ConfigError(fmt::format("{}: not a JSON object: {}", where, e.what()));
    }
    if (!j.is_object()) throw ConfigError(fmt::format("{}: expected a JSON object, found {}", where, json_text(j)));
    LineRequest r;
    r.line = line;
    for (const auto& [key, value] : j.items()) {
      if (!kKeys.count(key)) {
        throw ConfigError(fmt::format("{}: unknown key '{}'; valid keys: task, image, text, text_b, id",
                                      where, key));
      }
      if (key != "id" && !value.is_string()) {
        throw ConfigError(fmt::format("{}: \"{}\" must be a string, found {}", where, key, json_text(value)));
      }
    }
    r.task = j.value("task", args.task);
    if (r.task.empty()) throw ConfigError(fmt::format("{}: no \"task\" (and no --task default)", where));
    r.request.image_file = j.value("image", "");
    r.request.text = j.value("text", "");
    r.request.text_b = j.value("text_b", "");
    if (j.contains("id")) r.id = j["id"];
    try {
      predictor.check_task(r.task, "\"task\"");
      predictor.check_request(r.task, r.request, kLineNames);
    } catch (const Error& e) {
      throw ConfigError(fmt::format("{}: {}", where, e.what()));
    }
    requests.push_back(std::move(r));
  }
  return requests;
}

// `--input FILE.jsonl`: every request of the file, batched by task (at most
// --batch-size a batch, in file order within a task), one result line per request in
// file order.
void predict_batch(const CliContext& context, const PredictArgs& args) {
  if (args.batch_size < 1) {
    throw ConfigError(fmt::format("--batch-size: expected >= 1, found {}", args.batch_size));
  }
  const infer::Predictor predictor = open_predictor(context, args);
  if (!args.task.empty()) predictor.check_task(args.task, "--task");
  const std::vector<LineRequest> requests = read_requests(predictor, args);
  if (!args.draw_dir.empty()) fs::create_directories(args.draw_dir);

  std::map<std::string, std::vector<size_t>> by_task;
  for (size_t i = 0; i < requests.size(); ++i) by_task[requests[i].task].push_back(i);
  std::vector<std::string> lines(requests.size());
  for (const auto& [task, indices] : by_task) {
    for (size_t start = 0; start < indices.size(); start += args.batch_size) {
      const size_t end = std::min(indices.size(), start + static_cast<size_t>(args.batch_size));
      std::vector<Sample> samples;
      std::vector<cv::Mat> images;
      for (size_t k = start; k < end; ++k) {
        const LineRequest& r = requests[indices[k]];
        cv::Mat rgb;
        try {
          samples.push_back(predictor.sample(task, r.request, kLineNames, &rgb));
        } catch (const Error& e) {
          throw DataError(fmt::format("{}:{}: {}", args.input, r.line, e.what()));
        }
        images.push_back(rgb);
      }
      const Predictions predictions = predictor.predict(task, samples);
      for (size_t k = start; k < end; ++k) {
        const LineRequest& r = requests[indices[k]];
        ojson result = result_json(predictor, task, r.request, images[k - start], predictions,
                                   static_cast<int64_t>(k - start), args, /*with_checkpoint=*/false);
        if (!r.id.is_null()) {
          ojson with_id = {{"id", r.id}};
          for (const auto& [key, value] : result.items()) with_id[key] = value;
          result = std::move(with_id);
        }
        if (!args.draw_dir.empty() && !images[k - start].empty()) {
          draw(images[k - start], result, (fs::path(args.draw_dir) / fmt::format("{}.png", r.line)).string());
        }
        lines[indices[k]] = json_text(result);
      }
    }
  }
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  if (args.output.empty()) {
    std::cout << text << std::flush;
    return;
  }
  std::ofstream out(args.output, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw DataError(fmt::format("--output '{}': cannot write the file", args.output));
}

}  // namespace

void add_predict_command(CLI::App& app, CliContext& context) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* command = app.add_subcommand(
      "predict", "Run a trained model on an image and/or text, or on every request of a JSONL file");
  command->add_option("experiment", args->file, "Experiment JSON file")->required();
  command->add_option("--checkpoint", args->checkpoint, "Checkpoint file or run folder")->required();
  auto* task = command->add_option("--task", args->task,
                                   "Task to run (with --input: the task of lines that name none)");
  auto* image = command->add_option("--image", args->image, "Image file (tasks with an image encoder)");
  auto* text = command->add_option("--text", args->text, "Text (tasks with a text encoder)");
  auto* text_b = command->add_option("--text-b", args->text_b, "Second text of a pair (e.g. GLUE sentence 2)");
  auto* top_k = command->add_option("--top-k", args->top_k,
                                    "Labels shown (classification, VQA); at most this many boxes "
                                    "(detection, when given)")
                    ->capture_default_str();
  command->add_option("--threshold", args->threshold, "Detection: lowest score shown")->capture_default_str();
  auto* draw_file = command->add_option("--draw", args->draw,
                                        "Write the image with the boxes (or the top label) drawn");
  auto* input = command->add_option(
      "--input", args->input,
      "JSONL file of requests, one a line: {\"task\", \"image\", \"text\", \"text_b\", \"id\"} "
      "(docs/predict.md)");
  auto* output = command->add_option("--output", args->output,
                                     "With --input: write the result lines here (default: stdout)");
  auto* draw_dir = command->add_option("--draw-dir", args->draw_dir,
                                       "With --input: draw each image's result into DIR/<line>.png");
  auto* batch_size = command->add_option("--batch-size", args->batch_size,
                                         "With --input: requests of one task run together")
                         ->capture_default_str();
  command->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  input->excludes(image)->excludes(text)->excludes(text_b)->excludes(draw_file);
  output->needs(input);
  draw_dir->needs(input);
  batch_size->needs(input);
  command->callback([args, task, top_k, &context] {
    args->top_k_given = top_k->count() > 0;
    if (args->top_k < 1) throw ConfigError(fmt::format("--top-k: expected >= 1, found {}", args->top_k));
    if (!args->input.empty()) {
      predict_batch(context, *args);
      return;
    }
    if (task->count() == 0) throw ConfigError("--task is required (or give --input FILE.jsonl)");
    std::cout << json_text(predict(context, *args), 2) << "\n";
  });
}

}  // namespace unitrain::cli

// A trained model loaded once for prediction on raw inputs: the home shared by
// `unitrain predict` (one request or a JSONL file of them) and the installed inference
// library (unitrain/inference.h).
//
// Inputs are prepared exactly as each task's dataset prepares its evaluation records, by
// the dataset plugin's preparer (unitrain/prepare.h) built from the task's dataset block
// once, when the predictor is.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "unitrain/batch.h"
#include "unitrain/config.h"
#include "unitrain/dataset.h"
#include "unitrain/model.h"
#include "unitrain/prepare.h"

namespace unitrain::infer {

// The raw inputs of one request. An image is a file or an RGB image already decoded
// (8-bit, 3 channels); texts are used when not empty.
struct Request {
  std::string image_file;
  cv::Mat rgb;  // used when not empty, instead of image_file
  std::string text;
  std::string text_b;

  bool has_image() const { return !image_file.empty() || !rgb.empty(); }
};

// How the caller names the inputs in error messages ("--image" on the command line,
// "\"image\"" in a JSONL request...).
struct InputNames {
  std::string image = "--image";
  std::string text = "--text";
  std::string text_b = "--text-b";
};

class Predictor {
 public:
  // `experiment`: validated, its plugins loaded into the global registry. The model is
  // built from it (init_from files are not read) with the weights of
  // `run_or_checkpoint`, on the experiment's device, in evaluation mode.
  Predictor(Experiment experiment, const std::filesystem::path& run_or_checkpoint);
  ~Predictor();

  const std::filesystem::path& checkpoint() const { return checkpoint_; }
  const Experiment& experiment() const { return experiment_; }
  // The experiment's tasks, in experiment order.
  const std::vector<std::string>& tasks() const { return task_names_; }
  bool has_task(const std::string& task) const { return tasks_.count(task) > 0; }
  // ConfigError "<what> 'T': not a task of FILE; tasks: a, b" when `task` is not one.
  void check_task(const std::string& task, const std::string& what) const;
  // The modalities ("image", "text") the task's encoders read, with those of the task
  // it reads objects_from.
  const std::set<std::string>& modalities(const std::string& task) const;
  // The label names the model was trained with (stored in the checkpoint); for older
  // checkpoints, the task's val_split dataset's.
  const LabelSpace& labels(const std::string& task) const;

  // The task's preparer (the dataset plugin's, unitrain/prepare.h); null when its dataset
  // registers none.
  const InputPreparer* preparer(const std::string& task) const;

  // ConfigError naming the input (by `names`) when the task reads a modality the
  // request lacks or the request gives one the task does not read. Reads no file.
  void check_request(const std::string& task, const Request& request,
                     const InputNames& names = {}) const;

  // `request` as one evaluation sample of `task` (check_request first); DataError for an
  // unreadable image. `rgb` (optional)
  // receives the decoded image.
  Sample sample(const std::string& task, const Request& request, const InputNames& names = {},
                cv::Mat* rgb = nullptr) const;

  // The head's decoded predictions for `samples` of `task`, run as one batch (on the
  // CPU when it is returned). Safe to call from several threads at once.
  Predictions predict(const std::string& task, const std::vector<Sample>& samples) const;

 private:
  struct TaskState;
  const TaskState& state(const std::string& task) const;

  Experiment experiment_;
  std::filesystem::path checkpoint_;
  torch::Device device_;
  // NOTE: mutable because forward() is not const; in evaluation mode and under
  // NoGradGuard it changes no state, so concurrent predict() calls are safe.
  mutable UnitModel model_;
  std::vector<std::string> task_names_;
  std::map<std::string, std::unique_ptr<TaskState>> tasks_;
};

}  // namespace unitrain::infer

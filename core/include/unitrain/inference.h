// unitrain::inference: a trained unitrain model inside another C++ program.
//
//   find_package(unitrain REQUIRED)
//   target_link_libraries(my_app PRIVATE unitrain::inference)
//
//   auto model = unitrain::inference::Model::open("runs/unit-toy");
//   auto answer = model.predict("vqa2", {Image::from_file("q.jpg"), "what color is it?"});
//   answer.labels[0].name;  // "red"
//
// This header is the whole API: it includes no LibTorch, OpenCV or JSON header, and its
// classes keep their data behind a pointer, so that a program built against it keeps
// working when the library behind it changes. docs/inference.md describes it.
//
// A Model is safe to use from several threads at once: predict() may run concurrently
// on one opened model (each call runs its own forward pass).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace unitrain::inference {

// Every failure: a run folder without a checkpoint, an unknown task, an input the task
// does not read (or one it needs missing), an unreadable image. The message says what
// and where.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An image: a file (JPEG, PNG, BMP...) or pixels already decoded.
struct Image {
  std::string file;
  // Decoded pixels, row-major, channels interleaved (1: gray, 3: RGB, 4: RGBA), 8 bits
  // each; `stride` bytes per row (0: width * channels). Not copied: they must stay valid
  // during the predict() call.
  const std::uint8_t* pixels = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  std::size_t stride = 0;

  static Image from_file(std::string file);
  static Image from_pixels(const std::uint8_t* pixels, int width, int height, int channels,
                           std::size_t stride = 0);
  bool empty() const { return file.empty() && pixels == nullptr; }
};

// The inputs of one prediction. A task reads the modalities of its encoders: give an
// image to tasks with an image encoder, text to tasks with a text encoder (text_b is
// the second text of a pair, as a GLUE sentence pair), and nothing else.
struct Input {
  Image image;
  std::string text;
  std::string text_b;
};

// A label with its probability (softmax for classification, sigmoid for VQA).
struct Label {
  std::string name;
  std::int64_t id = 0;
  float score = 0;
};

// A detected object; corners in pixels of the original image (x0, y0 top-left).
struct Box {
  std::string label;
  std::int64_t id = 0;
  float score = 0;
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

struct Prediction {
  std::string task;
  std::string kind;  // "classification", "vqa" or "detection"
  // Classification and VQA: every label, highest score first.
  std::vector<Label> labels;
  // Detection: every detection the head made, highest score first.
  std::vector<Box> boxes;
};

struct OpenOptions {
  // Folders of plugin libraries to load besides the installed ones (those the model's
  // experiment names, when they are not installed). UNITRAIN_PLUGIN_PATH is honoured too.
  std::vector<std::string> plugin_dirs;
  // Intra-op threads of LibTorch for the whole process; 0 leaves LibTorch's setting.
  int threads = 0;
};

class Model {
 public:
  // Opens a run folder (its checkpoints/last.pt, else its newest checkpoint) or a
  // checkpoint file: the model is built from the experiment stored in the checkpoint,
  // with its weights, on the experiment's device, ready to predict.
  static Model open(const std::string& run_or_checkpoint, const OpenOptions& options = {});

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  // The checkpoint file read.
  std::string checkpoint() const;
  // The tasks the model answers, in name order.
  std::vector<std::string> tasks() const;
  // "classification", "vqa" or "detection".
  std::string kind(const std::string& task) const;
  // Label (answer, class) names by id.
  std::vector<std::string> label_names(const std::string& task) const;
  // Whether `task` reads an image / text.
  bool reads_image(const std::string& task) const;
  bool reads_text(const std::string& task) const;

  Prediction predict(const std::string& task, const Input& input) const;
  // Several inputs of one task in one forward pass; one Prediction per input, in order.
  std::vector<Prediction> predict_batch(const std::string& task,
                                        const std::vector<Input>& inputs) const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace unitrain::inference

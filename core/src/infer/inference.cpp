// unitrain::inference (unitrain/inference.h) on infer::Predictor.
#include "unitrain/inference.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include "infer/predictor.h"
#include "unitrain/checkpoint.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"

namespace unitrain::inference {

namespace fs = std::filesystem;

struct Model::Impl {
  std::unique_ptr<infer::Predictor> predictor;
};

namespace {

// Runs `f`, turning the core's exceptions into inference::Error.
template <typename F>
auto translated(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const inference::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw inference::Error(e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw inference::Error(e.what());
  }
}

// The folder of this library (libunitrain_inference.so).
fs::path library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&library_dir), &info) == 0 || info.dli_fname == nullptr) return {};
  std::error_code ec;
  const fs::path file = fs::weakly_canonical(info.dli_fname, ec);
  return ec ? fs::path() : file.parent_path();
}

// The plugins: those installed with this library (<prefix>/lib/unitrain/plugins beside
// <prefix>/lib/libunitrain_inference.so), else the default search path of the core (the
// executable's installed folder or the build's); then the options' folders and
// UNITRAIN_PLUGIN_PATH.
void load_plugins(const OpenOptions& options) {
  Registry& registry = Registry::global();
  std::vector<Registry::SearchDir> extra;
  for (const auto& dir : options.plugin_dirs) extra.push_back({dir, "OpenOptions::plugin_dirs"});
  std::error_code ec;
  const fs::path installed = library_dir() / ".." / UNITRAIN_INSTALL_PLUGIN_DIR;
  if (!fs::is_directory(installed, ec)) {
    registry.load_default_search_path(extra);
    return;
  }
  registry.load_directory(installed.lexically_normal(), "installed beside libunitrain_inference");
  for (const auto& dir : extra) registry.load_directory(dir.dir, dir.origin);
  if (const char* env = std::getenv("UNITRAIN_PLUGIN_PATH")) {
    std::string paths = env;
    size_t start = 0;
    while (start <= paths.size()) {
      size_t end = paths.find(':', start);
      if (end == std::string::npos) end = paths.size();
      const fs::path dir = paths.substr(start, end - start);
      if (!dir.empty() && dir.is_absolute() && fs::is_directory(dir, ec)) {
        registry.load_directory(dir, "UNITRAIN_PLUGIN_PATH");
      }
      start = end + 1;
    }
  }
}

// The RGB image of `image`: decoded pixels converted (gray / RGBA -> RGB) and copied.
cv::Mat rgb_of(const Image& image) {
  const int type = image.channels == 1 ? CV_8UC1 : image.channels == 3 ? CV_8UC3
                   : image.channels == 4 ? CV_8UC4 : -1;
  if (type < 0 || image.width <= 0 || image.height <= 0) {
    throw Error(fmt::format("Image::from_pixels: expected width, height > 0 and 1, 3 or 4 "
                            "channels, found {}x{} with {} channels",
                            image.width, image.height, image.channels));
  }
  const size_t stride = image.stride ? image.stride : static_cast<size_t>(image.width) * image.channels;
  if (stride < static_cast<size_t>(image.width) * image.channels) {
    throw Error(fmt::format("Image::from_pixels: stride {} is less than width x channels = {}",
                            stride, image.width * image.channels));
  }
  const cv::Mat view(image.height, image.width, type, const_cast<std::uint8_t*>(image.pixels), stride);
  cv::Mat rgb;
  if (image.channels == 1) cv::cvtColor(view, rgb, cv::COLOR_GRAY2RGB);
  else if (image.channels == 4) cv::cvtColor(view, rgb, cv::COLOR_RGBA2RGB);
  else rgb = view.clone();
  return rgb;
}

infer::Request request_of(const Input& input) {
  infer::Request request;
  if (input.image.pixels != nullptr) request.rgb = rgb_of(input.image);
  else request.image_file = input.image.file;
  request.text = input.text;
  request.text_b = input.text_b;
  return request;
}

std::string label_name(const LabelSpace& labels, int64_t id) {
  if (id >= 0 && id < static_cast<int64_t>(labels.names.size())) return labels.names[id];
  return std::to_string(id);
}

Prediction prediction_of(const std::string& task, const LabelSpace& labels,
                         const Predictions& predictions, int64_t i) {
  Prediction out;
  out.task = task;
  out.kind = labels.kind;
  if (!predictions.detections.empty()) {
    for (const Detection& d : predictions.detections.at(i)) {
      out.boxes.push_back({label_name(labels, d.label), d.label, d.score, d.x0, d.y0, d.x1, d.y1});
    }
    std::stable_sort(out.boxes.begin(), out.boxes.end(),
                     [](const Box& a, const Box& b) { return a.score > b.score; });
    return out;
  }
  const torch::Tensor scores = predictions.scores[i].contiguous();  // [C] float, CPU
  const float* p = scores.data_ptr<float>();
  std::vector<int64_t> order(scores.size(0));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  for (int64_t id : order) out.labels.push_back({label_name(labels, id), id, p[id]});
  return out;
}

}  // namespace

Image Image::from_file(std::string file) {
  Image image;
  image.file = std::move(file);
  return image;
}

Image Image::from_pixels(const std::uint8_t* pixels, int width, int height, int channels,
                         std::size_t stride) {
  Image image;
  image.pixels = pixels;
  image.width = width;
  image.height = height;
  image.channels = channels;
  image.stride = stride;
  return image;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::open(const std::string& run_or_checkpoint, const OpenOptions& options) {
  return translated([&] {
    if (options.threads > 0) configure_threads(options.threads);
    const fs::path checkpoint = find_checkpoint(run_or_checkpoint);
    Experiment experiment;
    {
      torch::serialize::InputArchive archive = open_checkpoint(checkpoint);
      experiment.json = read_checkpoint_experiment(archive, checkpoint.string());
    }
    experiment.file = checkpoint;
    load_plugins(options);
    validate_experiment(experiment, &Registry::global());
    auto impl = std::make_unique<Impl>();
    impl->predictor = std::make_unique<infer::Predictor>(std::move(experiment), checkpoint);
    return Model(std::move(impl));
  });
}

std::string Model::checkpoint() const { return impl_->predictor->checkpoint().string(); }

std::vector<std::string> Model::tasks() const { return impl_->predictor->tasks(); }

std::string Model::kind(const std::string& task) const {
  return translated([&] { return impl_->predictor->labels(task).kind; });
}

std::vector<std::string> Model::label_names(const std::string& task) const {
  return translated([&] { return impl_->predictor->labels(task).names; });
}

bool Model::reads_image(const std::string& task) const {
  return translated([&] { return impl_->predictor->modalities(task).count("image") > 0; });
}

bool Model::reads_text(const std::string& task) const {
  return translated([&] { return impl_->predictor->modalities(task).count("text") > 0; });
}

Prediction Model::predict(const std::string& task, const Input& input) const {
  return predict_batch(task, {input}).at(0);
}

std::vector<Prediction> Model::predict_batch(const std::string& task,
                                            const std::vector<Input>& inputs) const {
  return translated([&] {
    const infer::Predictor& predictor = *impl_->predictor;
    const infer::InputNames names{"Input::image", "Input::text", "Input::text_b"};
    std::vector<Sample> samples;
    for (const Input& input : inputs) samples.push_back(predictor.sample(task, request_of(input), names));
    std::vector<Prediction> out;
    if (samples.empty()) return out;
    const Predictions predictions = predictor.predict(task, samples);
    const LabelSpace& labels = predictor.labels(task);
    for (size_t i = 0; i < samples.size(); ++i) {
      out.push_back(prediction_of(task, labels, predictions, static_cast<int64_t>(i)));
    }
    return out;
  });
}

}  // namespace unitrain::inference

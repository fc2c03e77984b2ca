// A dataset plugin for torchvision's ImageFolder layout, written against the installed
// SDK: ROOT/SPLIT/CLASS/IMAGE, one folder per class, the labels being the class folder
// names in sorted order (as torchvision numbers them). Shows the dataset contract:
// options with JSON-pointer errors, Sample fields, LabelSpace, an evaluator, and a get()
// that may run on several loader threads at once.
#include <algorithm>
#include <filesystem>
#include <set>

#include <opencv2/core.hpp>
#include <unitrain/data/image_pipeline.h>
#include <unitrain/data/records.h>
#include <unitrain/dataset.h>
#include <unitrain/errors.h>
#include <unitrain/metrics.h>

#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace image_folder {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ImageFolderOptions {
  std::string root;                    // folder holding one folder per split
  std::string split = "train";         // the split's folder under root
  std::vector<std::string> extensions = {".jpg", ".jpeg", ".png", ".bmp"};
  unitrain::data::ImageTransformOptions image;  // resize / flip / normalization
  unitrain::data::OnBadRecord on_bad_record = unitrain::data::OnBadRecord::kError;
};

// The registry has merged the defaults and checked key names and JSON types; `where`
// prefixes every message about a value.
ImageFolderOptions options_from_json(const json& j, const std::string& where) {
  ImageFolderOptions o;
  o.root = j.at("root").get<std::string>();
  if (o.root.empty()) throw unitrain::ConfigError(where + "/root: required: the dataset folder");
  o.split = j.at("split").get<std::string>();
  o.extensions = j.at("extensions").get<std::vector<std::string>>();
  unitrain::data::ImageTransformOptions defaults;
  defaults.min_size = 224;
  defaults.max_size = 224;
  defaults.augment = unitrain::data::is_train_split(o.split);  // "augment": null
  o.image = unitrain::data::image_transform_options_from_json(j.at("image"), defaults, where + "/image");
  o.on_bad_record = unitrain::data::on_bad_record_from_json(j.at("on_bad_record"), where + "/on_bad_record");
  return o;
}

class ImageFolder : public unitrain::Dataset {
 public:
  ImageFolder(ImageFolderOptions o, std::string where)
      : o_(std::move(o)), where_(std::move(where)), bad_(o_.on_bad_record) {
    const fs::path dir = fs::path(o_.root) / o_.split;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      throw unitrain::DataError(where_ + "/root: no folder '" + dir.string() + "' for split '" +
                                o_.split + "'");
    }
    std::set<std::string> classes;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_directory()) classes.insert(entry.path().filename().string());
    }
    names_.assign(classes.begin(), classes.end());
    for (size_t label = 0; label < names_.size(); ++label) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::directory_iterator(dir / names_[label])) {
        std::string ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
        if (entry.is_regular_file() &&
            std::find(o_.extensions.begin(), o_.extensions.end(), ext) != o_.extensions.end()) {
          files.push_back(entry.path());
        }
      }
      std::sort(files.begin(), files.end());
      for (auto& file : files) records_.push_back({std::move(file), static_cast<int64_t>(label)});
    }
    if (records_.empty()) {
      throw unitrain::DataError(where_ + ": '" + dir.string() + "' holds no image in a class folder");
    }
  }

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }

  // Called from several loader threads at once: reads only what the constructor built.
  // Random augmentation comes from `seed` alone, so a record decodes the same way on
  // any thread and after a resume.
  unitrain::Sample get(int64_t index, uint64_t seed) const override {
    const Record& r = records_.at(static_cast<size_t>(index));
    // A missing, truncated or undecodable file follows the task's on_bad_record policy:
    // stop naming the file, or let the loader put the next readable record in its place.
    const cv::Mat rgb = unitrain::data::decode_image(r.file, where_ + ": " + r.file.string(), bad_);
    unitrain::Sample s;
    s.source = r.file.string();
    s.image = unitrain::data::ImageTransform(o_.image).apply(rgb, torch::Tensor(), seed).image;
    s.orig_height = rgb.rows;
    s.orig_width = rgb.cols;
    s.image_id = index;
    s.record_id = index;
    s.label = r.label;
    return s;
  }

  unitrain::LabelSpace labels() const override { return {"classification", names_, 0}; }

  std::unique_ptr<unitrain::Evaluator> evaluator() const override {
    return std::make_unique<unitrain::ClassificationEvaluator>();  // {"accuracy"}
  }

 private:
  struct Record {
    fs::path file;
    int64_t label;
  };
  ImageFolderOptions o_;
  std::string where_;
  std::vector<std::string> names_;
  std::vector<Record> records_;
  unitrain::data::BadRecords bad_;
};

// The registry prefixes a factory's message with the experiment's file and pointer.
std::shared_ptr<unitrain::Dataset> make(const json& options) {
  return std::make_shared<ImageFolder>(options_from_json(options, "image_folder"), "image_folder");
}

}  // namespace image_folder

UNITRAIN_PLUGIN(kImageFolder, unitrain::Dataset, "dataset", "image_folder", "1.0.0",
                "Image classification from torchvision's ImageFolder layout (ROOT/SPLIT/CLASS/*.jpg)",
                R"({"root": "", "split": "train", "extensions": [".jpg", ".jpeg", ".png", ".bmp"],
                    "image": {"min_size": 224, "max_size": 224, "train_min_sizes": [], "hflip": 0.5,
                              "augment": null, "mean": [0.485, 0.456, 0.406],
                              "std": [0.229, 0.224, 0.225]},
                    "on_bad_record": "error"})",
                kReadme, image_folder::make);
UNITRAIN_EXPORT_PLUGINS(&kImageFolder);

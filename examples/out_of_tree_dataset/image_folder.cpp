// A dataset plugin for torchvision's ImageFolder layout, written against the installed
// SDK: ROOT/SPLIT/CLASS/IMAGE, one folder per class, the labels being the class folder
// names in sorted order (as torchvision numbers them). Shows the dataset contract:
// options declared once (with a nested "image" group), Sample fields, LabelSpace, an
// evaluator, a get() that may run on several loader threads at once, and the preparer
// that `unitrain predict` uses.
#include <algorithm>
#include <filesystem>
#include <set>

#include <opencv2/core.hpp>
#include <unitrain/data/image_pipeline.h>
#include <unitrain/data/records.h>
#include <unitrain/dataset.h>
#include <unitrain/errors.h>
#include <unitrain/metrics.h>
#include <unitrain/options.h>
#include <unitrain/prepare.h>

#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

namespace image_folder {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The dataset block's keys, each declared once below with its default (the field's
// value), its type and its meaning: the declaration gives the defaults JSON, the parsing
// with JSON-pointer errors and the README table.
struct ImageFolderOptions {
  std::string root;                    // folder holding one folder per split
  std::string split = "train";         // the split's folder under root
  std::vector<std::string> extensions = {".jpg", ".jpeg", ".png", ".bmp"};
  unitrain::data::ImageTransformOptions image = classifier_image();  // resize / flip / normalization
  unitrain::data::OnBadRecord on_bad_record = unitrain::data::OnBadRecord::kError;

  static unitrain::data::ImageTransformOptions classifier_image() {
    unitrain::data::ImageTransformOptions image;
    image.min_size = 224;
    image.max_size = 224;
    image.hflip = 0.5;
    return image;
  }
};

const unitrain::options::OptionSet<ImageFolderOptions>& option_set() {
  namespace options = unitrain::options;
  static const auto set =
      options::OptionSet<ImageFolderOptions>()
          .add(UNITRAIN_FIELD(root), "the dataset folder (required)")
          .add(UNITRAIN_FIELD(split),
               "the split's folder under `root` (set by the trainer from `train_split` / "
               "`val_split`)")
          .add(UNITRAIN_FIELD(extensions), "image files read (case-insensitive)")
          .add_group("image", [](auto& o) -> auto& { return o.image; },
                     unitrain::data::image_transform_option_set(),
                     "resize, flip and normalization (the built-in readers' image transform)")
          .add(UNITRAIN_FIELD(on_bad_record),
               "an unreadable image: `\"error\"` stops the run naming the file, `\"skip\"` puts "
               "the next readable record in its place")
          .validate([](const ImageFolderOptions& o, const json&, const std::string& where) {
            if (o.root.empty()) {
              throw unitrain::ConfigError(options::key_path(where, "root") +
                                          ": required: the dataset folder");
            }
          });
  return set;
}

class ImageFolder : public unitrain::Dataset {
 public:
  ImageFolder(ImageFolderOptions o, std::string where)
      : o_(std::move(o)),
        where_(std::move(where)),
        bad_(o_.on_bad_record) {
    o_.image = unitrain::data::for_split(o_.image, o_.split);  // "augment": null
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
  return std::make_shared<ImageFolder>(option_set().parse(options, "image_folder"), "image_folder");
}

// `unitrain predict` prepares a raw image as this dataset's records: the same transform,
// without augmentation, from the same options (no dataset folder is read).
std::shared_ptr<unitrain::InputPreparer> make_preparer(const json& options) {
  const ImageFolderOptions o = option_set().parse(options, "image_folder");
  return std::make_shared<unitrain::StandardPreparer>(o.image, std::nullopt);
}

}  // namespace image_folder

UNITRAIN_PLUGIN(kImageFolder, unitrain::Dataset, "dataset", "image_folder", "1.0.0",
                "Image classification from torchvision's ImageFolder layout (ROOT/SPLIT/CLASS/*.jpg)",
                image_folder::option_set().defaults_json().c_str(), kReadme, image_folder::make);
UNITRAIN_PLUGIN(kImageFolderPreparer, unitrain::InputPreparer, "preparer", "image_folder", "1.0.0",
                "A raw image prepared as the image_folder dataset's records",
                image_folder::option_set().defaults_json().c_str(), kReadme,
                image_folder::make_preparer);
UNITRAIN_EXPORT_PLUGINS(&kImageFolder, &kImageFolderPreparer);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE("dataset", "image_folder",
                                                    &image_folder::option_set));

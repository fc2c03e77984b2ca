// The vg_detection dataset plugin: standard file names under "root" and the export; the
// reading is core's CocoStyleDataset (unitrain/data/coco_style.h).
#include <fmt/format.h>

#include "vg_detection_plugin.h"
#include "unitrain/json_util.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)

namespace unitrain::vg {
namespace {

constexpr const char* kDefaultsJson = R"({
  "split": "train",
  "root": "",
  "annotations": {},
  "images": {},
  "num_attributes": 401,
  "image": {"min_size": 800, "max_size": 1333,
            "train_min_sizes": [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800],
            "hflip": 0.5, "augment": null,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "evaluator": {"max_detections": 100},
  "on_bad_record": "error",
  "check_images": true
})";


}  // namespace

data::CocoStyleOptions vg_options_from_json(const nlohmann::json& j, const std::string& where) {
  data::CocoStyleOptions o;
  o.split = j.at("split").get<std::string>();
  const std::string root = j.at("root").get<std::string>();
  o.annotations = data::under_root(
      root, data::per_split(j.at("annotations"), o.split,
                            fmt::format("annotations/instances_{}_split_by_coco_2017.json", o.split), where + "/annotations"));
  o.images = data::under_root(
      root, data::per_split(j.at("images"), o.split, "images", where + "/images"));
  data::ImageTransformOptions image;
  image.augment = data::is_train_split(o.split);
  o.image = data::image_transform_options_from_json(j.at("image"), image, where + "/image");
  o.on_bad_record = data::on_bad_record_from_json(j.at("on_bad_record"), where + "/on_bad_record");
  o.check_images = j.at("check_images").get<bool>();
  o.with_attributes = true;
  o.num_attributes = j.at("num_attributes").get<int64_t>();
  if (o.num_attributes < 1) {
    throw ConfigError(fmt::format("{}/num_attributes: must be >= 1, found {}", where,
                                  o.num_attributes));
  }
  o.evaluator = j.at("evaluator");
  evaluator_options_from_json(o.evaluator, where + "/evaluator");  // checked now, not at evaluation
  return o;
}

std::shared_ptr<Dataset> make_vg_detection(const nlohmann::json& options) {
  const auto merged = merge_checked(nlohmann::json::parse(kDefaultsJson), options, "vg_detection", "");
  return std::make_shared<data::CocoStyleDataset>(vg_options_from_json(merged, "vg_detection"));
}

}  // namespace unitrain::vg

UNITRAIN_PLUGIN(kVg, unitrain::Dataset, "dataset", "vg_detection", "0.1.0",
                "Visual Genome detection with attributes (COCO-style conversion)", unitrain::vg::kDefaultsJson, kReadme,
                unitrain::vg::make_vg_detection);
UNITRAIN_EXPORT_PLUGINS(&kVg);

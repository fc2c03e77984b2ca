// The coco_detection dataset plugin: standard file names under "root" and the export; the
// reading is core's CocoStyleDataset (unitrain/data/coco_style.h).
#include <fmt/format.h>

#include "coco_detection_plugin.h"
#include "unitrain/json_util.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)

namespace unitrain::coco {
namespace {

constexpr const char* kDefaultsJson = R"({
  "split": "train",
  "root": "",
  "annotations": {},
  "images": {},
  "image": {"min_size": 800, "max_size": 1333,
            "train_min_sizes": [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800],
            "hflip": 0.5, "augment": null,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "evaluator": {"max_detections": 100},
  "on_bad_record": "error",
  "check_images": true
})";


}  // namespace

data::CocoStyleOptions coco_options_from_json(const nlohmann::json& j, const std::string& where) {
  data::CocoStyleOptions o;
  o.split = j.at("split").get<std::string>();
  const std::string root = j.at("root").get<std::string>();
  o.annotations = data::under_root(
      root, data::per_split(j.at("annotations"), o.split,
                            fmt::format("annotations/instances_{}2017.json", o.split), where + "/annotations"));
  o.images = data::under_root(
      root, data::per_split(j.at("images"), o.split, fmt::format("{}2017", o.split), where + "/images"));
  data::ImageTransformOptions image;
  image.augment = data::is_train_split(o.split);
  o.image = data::image_transform_options_from_json(j.at("image"), image, where + "/image");
  o.on_bad_record = data::on_bad_record_from_json(j.at("on_bad_record"), where + "/on_bad_record");
  o.check_images = j.at("check_images").get<bool>();
  o.with_attributes = false;
  o.evaluator = j.at("evaluator");
  evaluator_options_from_json(o.evaluator, where + "/evaluator");  // checked now, not at evaluation
  return o;
}

std::shared_ptr<Dataset> make_coco_detection(const nlohmann::json& options) {
  const auto merged = merge_checked(nlohmann::json::parse(kDefaultsJson), options, "coco_detection", "");
  return std::make_shared<data::CocoStyleDataset>(coco_options_from_json(merged, "coco_detection"));
}

}  // namespace unitrain::coco

UNITRAIN_PLUGIN(kCoco, unitrain::Dataset, "dataset", "coco_detection", "0.1.0",
                "COCO 2017 object detection (instances JSON, contiguous labels)", unitrain::coco::kDefaultsJson, kReadme,
                unitrain::coco::make_coco_detection);
UNITRAIN_EXPORT_PLUGINS(&kCoco);

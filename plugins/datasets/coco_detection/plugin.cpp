// The coco_detection dataset plugin: its options (the COCO-style block with COCO 2017's
// file names under "root"), the factories of the reader (the SDK's CocoStyleDataset) and
// of its input preparer, and the export.
#include <fmt/format.h>

#include "coco_detection_plugin.h"
#include "unitrain/plugin.h"
#include "unitrain/prepare.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)

namespace unitrain::coco {
namespace {

const options::OptionSet<data::CocoStyleBlock>& coco_option_set() {
  static const auto set = data::coco_style_option_set(
      "per-split annotation file, e.g. {\"val\": \"my_val.json\"}; a split not listed reads "
      "`annotations/instances_<split>2017.json`",
      "per-split image folder; a split not listed reads `<split>2017`", std::nullopt);
  return set;
}

std::shared_ptr<InputPreparer> make_coco_preparer(const nlohmann::json& options) {
  const auto block = coco_option_set().parse(options, "coco_detection");
  return std::make_shared<StandardPreparer>(block.image, std::nullopt);
}

}  // namespace

data::CocoStyleOptions coco_options_from_json(const nlohmann::json& j, const std::string& where) {
  const auto block = coco_option_set().parse(j, where);
  return data::coco_style_options(block,
                                  fmt::format("annotations/instances_{}2017.json", block.split),
                                  fmt::format("{}2017", block.split), where);
}

std::shared_ptr<Dataset> make_coco_detection(const nlohmann::json& options) {
  return std::make_shared<data::CocoStyleDataset>(
      coco_options_from_json(options, "coco_detection"));
}

}  // namespace unitrain::coco

UNITRAIN_PLUGIN(kCoco, unitrain::Dataset, "dataset", "coco_detection", "0.1.0",
                "COCO 2017 object detection (instances JSON, contiguous labels)",
                unitrain::coco::coco_option_set().defaults_json().c_str(), kReadme,
                unitrain::coco::make_coco_detection);
UNITRAIN_PLUGIN(kCocoPreparer, unitrain::InputPreparer, "preparer", "coco_detection", "0.1.0",
                "A raw image prepared as the coco_detection dataset's records",
                unitrain::coco::coco_option_set().defaults_json().c_str(), kReadme,
                unitrain::coco::make_coco_preparer);
UNITRAIN_EXPORT_PLUGINS(&kCoco, &kCocoPreparer);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE("dataset", "coco_detection",
                                                    &unitrain::coco::coco_option_set));

// The vg_detection dataset plugin: its options (the COCO-style block with attributes and
// the COCO-style conversion's file names under "root"), the factories of the reader (the
// SDK's CocoStyleDataset) and of its input preparer, and the export.
#include <fmt/format.h>

#include "unitrain/plugin.h"
#include "unitrain/prepare.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)
#include "vg_detection_plugin.h"

namespace unitrain::vg {
namespace {

const options::OptionSet<data::CocoStyleBlock>& vg_option_set() {
  static const auto set = data::coco_style_option_set(
      "per-split annotation file; a split not listed reads "
      "`annotations/instances_<split>_split_by_coco_2017.json`",
      "per-split image folder; a split not listed reads `images`", /*num_attributes=*/401);
  return set;
}

std::shared_ptr<InputPreparer> make_vg_preparer(const nlohmann::json& options) {
  const auto block = vg_option_set().parse(options, "vg_detection");
  return std::make_shared<StandardPreparer>(block.image, std::nullopt);
}

}  // namespace

data::CocoStyleOptions vg_options_from_json(const nlohmann::json& j, const std::string& where) {
  const auto block = vg_option_set().parse(j, where);
  return data::coco_style_options(
      block, fmt::format("annotations/instances_{}_split_by_coco_2017.json", block.split),
      "images", where);
}

std::shared_ptr<Dataset> make_vg_detection(const nlohmann::json& options) {
  return std::make_shared<data::CocoStyleDataset>(vg_options_from_json(options, "vg_detection"));
}

}  // namespace unitrain::vg

UNITRAIN_PLUGIN(kVg, unitrain::Dataset, "dataset", "vg_detection", "0.1.0",
                "Visual Genome detection with attributes (COCO-style conversion)",
                unitrain::vg::vg_option_set().defaults_json().c_str(), kReadme,
                unitrain::vg::make_vg_detection);
UNITRAIN_PLUGIN(kVgPreparer, unitrain::InputPreparer, "preparer", "vg_detection", "0.1.0",
                "A raw image prepared as the vg_detection dataset's records",
                unitrain::vg::vg_option_set().defaults_json().c_str(), kReadme,
                unitrain::vg::make_vg_preparer);
UNITRAIN_EXPORT_PLUGINS(&kVg, &kVgPreparer);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE("dataset", "vg_detection",
                                                    &unitrain::vg::vg_option_set));

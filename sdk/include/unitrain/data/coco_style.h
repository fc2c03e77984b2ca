// A reader for COCO-style detection annotations (`instances_*.json`): COCO itself and
// conversions that reuse its layout (Visual Genome with `attribute_ids_max16`, LVIS,
// Objects365...). Dataset plugins wrap it with their own defaults.
//
// Reading rules:
//  - categories are sorted by id and numbered 0..C-1 (COCO's ids are not contiguous);
//    category_id(label) maps a label back to the file's id for result files;
//  - every image in `images` is a record, also those without objects;
//  - annotations with iscrowd = 1 are dropped (counted under "iscrowd");
//  - bbox [x, y, w, h] becomes xyxy, clamped to the image; a bbox with w or h <= 0, a
//    non-finite value or no overlap with the image is a bad record, like an unknown
//    category or image id; under "skip" only that annotation is left out;
//  - an image entry with a missing field, an unsafe file_name ("../") or, when
//    check_images is set, a missing file is a bad record (the image is left out);
//  - a test split (a split name starting with "test") may have no 'annotations' array
//    (COCO's image_info_test2017.json): every image is a record without objects.
//
// Result files (ResultFiles): the COCO detection results JSON that pycocotools'
// COCO.loadRes reads, [{"image_id", "category_id" (the file's id), "bbox" [x, y, w, h]
// in pixels of the original image, "score"}], as <task>_<split>_results.json.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "unitrain/data/image_pipeline.h"
#include "unitrain/data/records.h"
#include "unitrain/dataset.h"
#include "unitrain/metrics.h"
#include "unitrain/options.h"
#include "unitrain/results.h"

namespace unitrain::data {

struct CocoStyleOptions {
  // The split this instance reads (for messages and augmentation defaults).
  std::string split = "train";
  // The instances JSON file. Required.
  std::filesystem::path annotations;
  // Folder that `file_name` is relative to. Required.
  std::filesystem::path images;
  ImageTransformOptions image;
  OnBadRecord on_bad_record = OnBadRecord::kError;
  // Check at load time that every image file exists (one stat per image). Default true.
  bool check_images = true;
  // Read `attribute_ids_max16` into Sample::attributes (Visual Genome). Default false.
  bool with_attributes = false;
  // Attribute ids must lie in [0, num_attributes) (or be -1 = padding).
  int64_t num_attributes = 0;
  // Evaluator options (max_detections).
  EvaluatorOptions evaluator;
};

// DETR's detection transform: shorter side 800 (at most 1333 long) for evaluation, drawn
// from 480, 512, ..., 800 for training, with horizontal flips at 0.5.
ImageTransformOptions detr_image_options();

// A COCO-style dataset plugin's block (coco_detection, vg_detection): the keys a user
// writes, before file names are resolved. Declare them with coco_style_option_set.
struct CocoStyleBlock {
  std::string split = "train";
  std::string root;                               // relative paths are under it
  std::map<std::string, std::string> annotations;  // per split; else the plugin's name
  std::map<std::string, std::string> images;       // per split; else the plugin's name
  ImageTransformOptions image = detr_image_options();
  EvaluatorOptions evaluator;
  OnBadRecord on_bad_record = OnBadRecord::kError;
  bool check_images = true;
  int64_t num_attributes = 0;  // declared only with attributes (Visual Genome)
};

// The option set of a CocoStyleBlock; the meanings of "annotations" and "images" name
// the plugin's default files. With `attributes`, "num_attributes" too (default
// `num_attributes`, at least 1).
options::OptionSet<CocoStyleBlock> coco_style_option_set(const std::string& annotations_meaning,
                                                         const std::string& images_meaning,
                                                         std::optional<int64_t> num_attributes);

// The reader's options: files under "root" (a split missing from a per-split map reads
// `default_annotations` / `default_images`), the image transform resolved for the split.
CocoStyleOptions coco_style_options(const CocoStyleBlock& block,
                                    const std::string& default_annotations,
                                    const std::string& default_images, const std::string& where);

class CocoStyleDataset : public Dataset, public ResultFiles {
 public:
  explicit CocoStyleDataset(CocoStyleOptions options);

  int64_t size() const override { return static_cast<int64_t>(images_.size()); }
  Sample get(int64_t index, uint64_t seed) const override;
  LabelSpace labels() const override;
  std::unique_ptr<Evaluator> evaluator() const override;
  nlohmann::json skipped() const override { return bad_.counts(); }
  std::unique_ptr<ResultWriter> result_writer() const override;

  // The file's category id of contiguous label `label`.
  int64_t category_id(int64_t label) const { return category_ids_.at(label); }
  int64_t num_annotations() const { return num_annotations_; }
  const CocoStyleOptions& options() const { return options_; }

 private:
  struct Image {
    int64_t id = 0;
    std::string file_name;
    int64_t width = 0, height = 0;
    std::vector<float> boxes;  // xyxy, 4 per object, clamped pixels
    std::vector<int64_t> classes;
    std::vector<int64_t> attributes;  // 16 per object when with_attributes
  };

  void read_categories(const nlohmann::json& root);
  void read_images(const nlohmann::json& root);
  void read_annotations(const nlohmann::json& root);

  CocoStyleOptions options_;
  ImageTransform transform_;
  BadRecords bad_;
  std::vector<std::string> category_names_;
  std::vector<int64_t> category_ids_;
  std::vector<Image> images_;
  int64_t num_annotations_ = 0;
};

}  // namespace unitrain::data

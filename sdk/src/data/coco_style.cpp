#include "unitrain/data/coco_style.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <opencv2/core.hpp>

#include "unitrain/data/records.h"
#include "unitrain/json_text.h"
#include "unitrain/metrics.h"

namespace unitrain::data {
namespace {

const nlohmann::json& top_level_array(const nlohmann::json& root, const char* key,
                                      const std::filesystem::path& file) {
  if (!root.is_object() || !root.contains(key) || !root.at(key).is_array()) {
    throw DataError(fmt::format("{}: expected a top-level '{}' array (COCO instances format)",
                                file.string(), key));
  }
  return root.at(key);
}

std::string record_where(const std::filesystem::path& file, const char* array, size_t index,
                         const nlohmann::json& record) {
  if (record.is_object() && record.contains("id")) {
    return fmt::format("{}: {}[{}] (id {})", file.string(), array, index, json_text(record["id"]));
  }
  return fmt::format("{}: {}[{}]", file.string(), array, index);
}

bool is_test_split(const std::string& split) { return split.rfind("test", 0) == 0; }

}  // namespace

ImageTransformOptions detr_image_options() {
  ImageTransformOptions o;
  o.min_size = 800;
  o.max_size = 1333;
  o.train_min_sizes = {480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800};
  o.hflip = 0.5;
  return o;
}

options::OptionSet<CocoStyleBlock> coco_style_option_set(const std::string& annotations_meaning,
                                                         const std::string& images_meaning,
                                                         std::optional<int64_t> num_attributes) {
  CocoStyleBlock prototype;
  if (num_attributes) prototype.num_attributes = *num_attributes;
  auto set =
      options::OptionSet<CocoStyleBlock>(prototype)
          .add(UNITRAIN_FIELD(split), "split this instance reads (set by the experiment builder)")
          .add(UNITRAIN_FIELD(root), "folder the relative paths below are resolved against")
          .add(UNITRAIN_FIELD(annotations), annotations_meaning)
          .add(UNITRAIN_FIELD(images), images_meaning);
  if (num_attributes) {
    set.add(UNITRAIN_FIELD(num_attributes),
            "attribute ids must lie in [0, num_attributes) (-1 pads `attribute_ids_max16`)",
            options::at_least(1));
  }
  set.add_group("image", [](auto& o) -> auto& { return o.image; }, image_transform_option_set(),
                "the image transform")
      .add_group("evaluator", [](auto& o) -> auto& { return o.evaluator; },
                 detection_evaluator_option_set(), "the COCO AP evaluator")
      .add(UNITRAIN_FIELD(on_bad_record),
           "\"error\": stop at the first bad record with file, record, field and reason; "
           "\"skip\": leave it out and count it by reason")
      .add(UNITRAIN_FIELD(check_images), "check at load time that every image file exists");
  return set;
}

CocoStyleOptions coco_style_options(const CocoStyleBlock& block,
                                    const std::string& default_annotations,
                                    const std::string& default_images, const std::string& where) {
  CocoStyleOptions o;
  o.split = block.split;
  o.annotations = under_root(block.root, per_split(nlohmann::json(block.annotations), o.split,
                                                   default_annotations, where + "/annotations"));
  o.images = under_root(block.root, per_split(nlohmann::json(block.images), o.split,
                                              default_images, where + "/images"));
  o.image = for_split(block.image, o.split);
  o.on_bad_record = block.on_bad_record;
  o.check_images = block.check_images;
  o.with_attributes = block.num_attributes > 0;
  o.num_attributes = block.num_attributes;
  o.evaluator = block.evaluator;
  return o;
}

CocoStyleDataset::CocoStyleDataset(CocoStyleOptions options)
    : options_(std::move(options)), transform_(options_.image), bad_(options_.on_bad_record) {
  const nlohmann::json root = read_json_file(options_.annotations, "annotations file");
  read_categories(root);
  read_images(root);
  read_annotations(root);
}

void CocoStyleDataset::read_categories(const nlohmann::json& root) {
  const auto& file = options_.annotations;
  std::vector<std::pair<int64_t, std::string>> categories;
  const auto& array = top_level_array(root, "categories", file);
  for (size_t i = 0; i < array.size(); ++i) {
    const auto& c = array[i];
    // Categories define the label space: a bad one cannot be skipped.
    if (!c.is_object() || !c.contains("id") || !c["id"].is_number_integer()) {
      throw DataError(fmt::format("{}: field 'id': expected an integer category id",
                                  record_where(file, "categories", i, c)));
    }
    std::string name = c.contains("name") && c["name"].is_string()
                           ? c["name"].get<std::string>()
                           : fmt::format("category_{}", c["id"].get<int64_t>());
    categories.emplace_back(c["id"].get<int64_t>(), std::move(name));
  }
  std::sort(categories.begin(), categories.end());
  for (size_t i = 1; i < categories.size(); ++i) {
    if (categories[i].first == categories[i - 1].first) {
      throw DataError(fmt::format("{}: categories: id {} appears twice", file.string(),
                                  categories[i].first));
    }
  }
  if (categories.empty()) throw DataError(fmt::format("{}: 'categories' is empty", file.string()));
  for (auto& [id, name] : categories) {
    category_ids_.push_back(id);
    category_names_.push_back(std::move(name));
  }
}

void CocoStyleDataset::read_images(const nlohmann::json& root) {
  const auto& file = options_.annotations;
  const auto& array = top_level_array(root, "images", file);
  std::unordered_set<int64_t> seen;
  for (size_t i = 0; i < array.size(); ++i) {
    const auto& r = array[i];
    const std::string where = record_where(file, "images", i, r);
    const auto* id = field(r, "id", "integer", where, bad_);
    if (!id) continue;
    const auto* file_name = field(r, "file_name", "string", where, bad_);
    if (!file_name) continue;
    const auto* width = field(r, "width", "integer", where, bad_);
    if (!width) continue;
    const auto* height = field(r, "height", "integer", where, bad_);
    if (!height) continue;
    Image image;
    image.id = id->get<int64_t>();
    image.file_name = file_name->get<std::string>();
    image.width = width->get<int64_t>();
    image.height = height->get<int64_t>();
    if (image.width <= 0 || image.height <= 0) {
      bad_.report(where, image.width <= 0 ? "width" : "height", "bad_image_size",
                  fmt::format("must be > 0, found {}x{}", image.width, image.height));
      continue;
    }
    if (!seen.insert(image.id).second) {
      bad_.report(where, "id", "duplicate_image_id",
                  fmt::format("image id {} appears twice", image.id));
      continue;
    }
    if (image_path_escapes(image.file_name)) {
      bad_.report(where, "file_name", "unsafe_path",
                  fmt::format("image path '{}' escapes the image root '{}'", image.file_name,
                              options_.images.string()));
      continue;
    }
    if (options_.check_images) {
      const auto path = resolve_image_path(options_.images, image.file_name, where);
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path, ec)) {
        bad_.report(where, "file_name", "missing_image",
                    fmt::format("image file '{}' does not exist", path.string()));
        continue;
      }
    }
    images_.push_back(std::move(image));
  }
}

void CocoStyleDataset::read_annotations(const nlohmann::json& root) {
  const auto& file = options_.annotations;
  std::unordered_map<int64_t, size_t> image_index;
  for (size_t i = 0; i < images_.size(); ++i) image_index[images_[i].id] = i;
  std::unordered_set<int64_t> all_image_ids;  // including images left out as bad
  for (const auto& r : root["images"]) {
    if (r.is_object() && r.contains("id") && r["id"].is_number_integer()) {
      all_image_ids.insert(r["id"].get<int64_t>());
    }
  }
  std::unordered_map<int64_t, int64_t> label_of;
  for (size_t i = 0; i < category_ids_.size(); ++i) label_of[category_ids_[i]] = i;

  // Test splits (image_info_test2017.json) publish images without annotations.
  if (is_test_split(options_.split) && root.is_object() && !root.contains("annotations")) return;
  const auto& array = top_level_array(root, "annotations", file);
  for (size_t i = 0; i < array.size(); ++i) {
    const auto& r = array[i];
    const std::string where = record_where(file, "annotations", i, r);
    const auto* image_id = field(r, "image_id", "integer", where, bad_);
    if (!image_id) continue;
    auto image_it = image_index.find(image_id->get<int64_t>());
    if (image_it == image_index.end()) {
      if (all_image_ids.count(image_id->get<int64_t>())) {
        bad_.count("annotations_of_skipped_images");
      } else {
        bad_.report(where, "image_id", "unknown_image_id",
                    fmt::format("no image with id {} in 'images'", json_text(*image_id)));
      }
      continue;
    }
    Image& image = images_[image_it->second];
    if (r.contains("iscrowd") && r["iscrowd"].is_number() && r["iscrowd"].get<double>() != 0) {
      bad_.count("iscrowd");
      continue;
    }
    const auto* category = field(r, "category_id", "integer", where, bad_);
    if (!category) continue;
    auto label_it = label_of.find(category->get<int64_t>());
    if (label_it == label_of.end()) {
      bad_.report(where, "category_id", "unknown_category",
                  fmt::format("category id {} is not in 'categories' ({} categories, ids {}..{})",
                              json_text(*category), category_ids_.size(), category_ids_.front(),
                              category_ids_.back()));
      continue;
    }
    const auto* bbox = field(r, "bbox", "array", where, bad_);
    if (!bbox) continue;
    if (bbox->size() != 4 ||
        !std::all_of(bbox->begin(), bbox->end(), [](const auto& v) {
          return v.is_number() && std::isfinite(v.template get<double>());
        })) {
      bad_.report(where, "bbox", "bad_bbox",
                  fmt::format("expected 4 finite numbers [x, y, w, h], found {}", json_text(*bbox)));
      continue;
    }
    const double x = (*bbox)[0].get<double>(), y = (*bbox)[1].get<double>();
    const double w = (*bbox)[2].get<double>(), h = (*bbox)[3].get<double>();
    if (w <= 0 || h <= 0) {
      bad_.report(where, "bbox", "bad_bbox",
                  fmt::format("width and height must be > 0, found {}", json_text(*bbox)));
      continue;
    }
    const double x0 = std::clamp(x, 0.0, double(image.width));
    const double y0 = std::clamp(y, 0.0, double(image.height));
    const double x1 = std::clamp(x + w, 0.0, double(image.width));
    const double y1 = std::clamp(y + h, 0.0, double(image.height));
    if (x1 <= x0 || y1 <= y0) {
      bad_.report(where, "bbox", "bbox_outside_image",
                  fmt::format("{} lies outside the {}x{} image {}", json_text(*bbox), image.width,
                              image.height, image.id));
      continue;
    }
    std::vector<int64_t> attributes;
    if (options_.with_attributes) {
      const auto* ids = field(r, "attribute_ids_max16", "array", where, bad_);
      if (!ids) continue;
      bool ok = ids->size() <= 16;
      for (const auto& a : *ids) {
        ok = ok && a.is_number_integer() && a.get<int64_t>() >= -1 &&
             a.get<int64_t>() < options_.num_attributes;
        if (ok) attributes.push_back(a.get<int64_t>());
      }
      if (!ok) {
        bad_.report(where, "attribute_ids_max16", "bad_attributes",
                    fmt::format("expected at most 16 integers in [-1, {}), found {}",
                                options_.num_attributes, json_text(*ids)));
        continue;
      }
      attributes.resize(16, -1);
    }
    image.boxes.insert(image.boxes.end(),
                       {float(x0), float(y0), float(x1), float(y1)});
    image.classes.push_back(label_it->second);
    image.attributes.insert(image.attributes.end(), attributes.begin(), attributes.end());
    ++num_annotations_;
  }
}

Sample CocoStyleDataset::get(int64_t index, uint64_t seed) const {
  TORCH_CHECK(index >= 0 && index < size(), "index ", index, " out of range [0, ", size(), ")");
  const Image& image = images_[index];
  const std::string where =
      fmt::format("{}: image id {}", options_.annotations.string(), image.id);
  const auto path = resolve_image_path(options_.images, image.file_name, where);
  const cv::Mat rgb = decode_image(path, where, bad_);
  if (rgb.rows != image.height || rgb.cols != image.width) {
    bad_.at_read(where, "image_size_mismatch",
                 fmt::format("image file '{}' is {}x{} (width x height) but the annotations "
                             "say {}x{}",
                             path.string(), rgb.cols, rgb.rows, image.width, image.height));
  }
  const auto n = static_cast<int64_t>(image.classes.size());
  const auto boxes = torch::from_blob(const_cast<float*>(image.boxes.data()), {n, 4},
                                      torch::kFloat32);
  auto transformed = transform_.apply(rgb, boxes, seed);

  Sample s;
  s.source = where;
  s.image = std::move(transformed.image);
  s.image_id = image.id;
  s.record_id = image.id;
  s.orig_height = image.height;
  s.orig_width = image.width;
  s.boxes = std::move(transformed.boxes);
  s.classes = torch::tensor(image.classes, torch::kInt64).reshape({n});
  if (options_.with_attributes) {
    s.attributes = torch::tensor(image.attributes, torch::kInt64).reshape({n, 16});
  }
  return s;
}

LabelSpace CocoStyleDataset::labels() const {
  LabelSpace space;
  space.kind = "detection";
  space.names = category_names_;
  space.num_attributes = options_.with_attributes ? options_.num_attributes : 0;
  return space;
}

std::unique_ptr<Evaluator> CocoStyleDataset::evaluator() const {
  return make_evaluator(labels(), options_.evaluator);
}

namespace {

// COCO detection results: one entry per detection, as pycocotools' COCO.loadRes reads.
class CocoResultWriter : public ResultWriter {
 public:
  CocoResultWriter(std::vector<int64_t> category_ids, std::string split, std::string annotations)
      : category_ids_(std::move(category_ids)), split_(std::move(split)),
        annotations_(std::move(annotations)) {}

  void add(const Predictions& predictions, const Batch& batch) override {
    if (predictions.detections.size() != batch.record_ids.size()) {
      throw TrainingError(fmt::format("task '{}': detections for {} images in a batch of {}",
                                      batch.task, predictions.detections.size(),
                                      batch.record_ids.size()));
    }
    for (size_t i = 0; i < batch.record_ids.size(); ++i) {
      for (const Detection& d : predictions.detections[i]) {
        if (d.label < 0 || d.label >= static_cast<int64_t>(category_ids_.size())) {
          throw TrainingError(fmt::format("task '{}': detected label {} is not one of the {} "
                                          "categories of {}", batch.task, d.label,
                                          category_ids_.size(), annotations_));
        }
        // Widths from the float corners, so that x + w gives back x1 as closely as a
        // float allows.
        results_.push_back({{"image_id", batch.record_ids[i]},
                            {"category_id", category_ids_[d.label]},
                            {"bbox", {d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0}},
                            {"score", d.score}});
      }
    }
  }

  std::vector<std::filesystem::path> write(const std::filesystem::path& dir,
                                           const std::string& task) const override {
    const auto file = dir / fmt::format("{}_{}_results.json", task, split_);
    write_result_file(file, json_text(results_) + "\n");
    return {file};
  }

 private:
  std::vector<int64_t> category_ids_;
  std::string split_;
  std::string annotations_;
  nlohmann::ordered_json results_ = nlohmann::ordered_json::array();
};

}  // namespace

std::unique_ptr<ResultWriter> CocoStyleDataset::result_writer() const {
  return std::make_unique<CocoResultWriter>(category_ids_, options_.split,
                                            options_.annotations.string());
}

}  // namespace unitrain::data

// COCO 2017 and Visual Genome (UniT's COCO-style conversion) files of the toy scenes.
#include <fmt/format.h>

#include "toy/toy_internal.h"

namespace unitrain::toy {
namespace {

using ojson = nlohmann::ordered_json;

// Non-contiguous on purpose, as COCO's 80 ids spread over 1..90 (and no id 1).
const std::vector<int64_t> kCocoCategoryIds = {2, 3, 5, 7, 11, 13, 17, 19, 23};

// Visual Genome style: objects are shapes, colour and size are attributes. Attribute
// ids start at 1 (0 is the "no attribute" class of the 401-way attribute head).
std::vector<int64_t> attribute_ids(const ToyObject& object) {
  std::vector<int64_t> ids(16, -1);
  ids[0] = 1 + object.color;                                    // red 1, green 2, blue 3
  ids[1] = 1 + static_cast<int64_t>(kColors.size()) + object.size;  // small 4, large 5
  return ids;
}

int64_t coco_image_id(const ToyScene& scene) { return 100 + 7 * scene.index; }
int64_t vg_image_id(const ToyScene& scene) { return 1 + scene.index; }

ojson annotation(const ToyObject& object, int64_t id, int64_t image_id, int64_t category_id) {
  return ojson{{"segmentation", ojson::array({object.polygon})},
               {"area", static_cast<double>(object.area)},
               {"iscrowd", 0},
               {"image_id", image_id},
               {"bbox", {double(object.x), double(object.y), double(object.w), double(object.h)}},
               {"category_id", category_id},
               {"id", id}};
}

ojson image_entry(const ToyScene& scene, int64_t id, const std::string& file_name) {
  return ojson{{"license", 1},         {"file_name", file_name}, {"height", scene.height},
               {"width", scene.width}, {"id", id}};
}

ojson header(const std::string& description) {
  return ojson{{"info", {{"description", description}, {"version", "1.0"}, {"year", 2017}}},
               {"licenses", ojson::array({{{"id", 1}, {"name", "CC0-1.0"}, {"url", ""}}})}};
}

}  // namespace

ojson write_coco(const std::filesystem::path& dir, const std::vector<ToyScene>& scenes) {
  ojson categories = ojson::array();
  for (size_t s = 0; s < kShapes.size(); ++s) {
    for (size_t c = 0; c < kColors.size(); ++c) {
      categories.push_back({{"supercategory", kShapes[s]},
                            {"id", kCocoCategoryIds[s * kColors.size() + c]},
                            {"name", kColors[c] + " " + kShapes[s]}});
    }
  }
  ojson manifest = {{"format", "COCO 2017 instances"}, {"annotations", ojson::object()},
                    {"images", ojson::object()},       {"counts", ojson::object()}};
  for (const std::string split : {"train", "val"}) {
    const bool train = split == "train";
    ojson file = header("unitrain toy suite: coloured shapes, COCO format");
    file["images"] = ojson::array();
    file["annotations"] = ojson::array();
    const std::string folder = fmt::format("coco/{}2017", split);
    int64_t next_annotation = 1;
    std::vector<std::string> names;
    for (const ToyScene& scene : scenes) {
      if (scene.train != train) continue;
      const int64_t id = coco_image_id(scene);
      const std::string file_name = fmt::format("{:012d}.jpg", id);
      write_file(dir, folder + "/" + file_name, scene.jpeg);
      file["images"].push_back(image_entry(scene, id, file_name));
      for (const ToyObject& object : scene.objects) {
        file["annotations"].push_back(annotation(object, next_annotation++, id,
                                                 kCocoCategoryIds[object.class_id()]));
        names.push_back(kColors[object.color] + " " + kShapes[object.shape]);
      }
    }
    file["categories"] = categories;
    const std::string json_name = fmt::format("coco/annotations/instances_{}2017.json", split);
    write_file(dir, json_name, file.dump());
    manifest["annotations"][split] = json_name;
    manifest["images"][split] = folder;
    manifest["counts"][split] = {{"images", file["images"].size()},
                                 {"annotations", file["annotations"].size()},
                                 {"per_category", label_counts(names)}};
  }
  manifest["category_ids"] = kCocoCategoryIds;
  return manifest;
}

ojson write_visual_genome(const std::filesystem::path& dir, const std::vector<ToyScene>& scenes) {
  ojson categories = ojson::array();
  for (size_t s = 0; s < kShapes.size(); ++s) {
    categories.push_back({{"supercategory", "shape"}, {"id", int64_t(s + 1)}, {"name", kShapes[s]}});
  }
  ojson attributes = ojson::array();
  int64_t attribute_id = 1;
  for (const auto& name : kColors) attributes.push_back({{"id", attribute_id++}, {"name", name}});
  for (const auto& name : kSizes) attributes.push_back({{"id", attribute_id++}, {"name", name}});

  ojson manifest = {{"format", "Visual Genome, COCO-style split_by_coco_2017"},
                    {"annotations", ojson::object()},
                    {"images", "vg/images"},
                    {"counts", ojson::object()}};
  for (const std::string split : {"train", "val"}) {
    const bool train = split == "train";
    ojson file = header("unitrain toy suite: coloured shapes, Visual Genome objects and attributes");
    file["images"] = ojson::array();
    file["annotations"] = ojson::array();
    int64_t next_annotation = 1;
    std::vector<std::string> names;
    for (const ToyScene& scene : scenes) {
      if (scene.train != train) continue;
      const int64_t id = vg_image_id(scene);
      const std::string file_name = fmt::format("{}.jpg", id);
      write_file(dir, "vg/images/" + file_name, scene.jpeg);
      file["images"].push_back(image_entry(scene, id, file_name));
      for (const ToyObject& object : scene.objects) {
        ojson a = annotation(object, next_annotation++, id, object.shape + 1);
        a["attribute_ids_max16"] = attribute_ids(object);
        file["annotations"].push_back(std::move(a));
        names.push_back(kShapes[object.shape]);
      }
    }
    file["categories"] = categories;
    file["attributes"] = attributes;
    const std::string json_name =
        fmt::format("vg/annotations/instances_{}_split_by_coco_2017.json", split);
    write_file(dir, json_name, file.dump());
    manifest["annotations"][split] = json_name;
    manifest["counts"][split] = {{"images", file["images"].size()},
                                 {"annotations", file["annotations"].size()},
                                 {"per_category", label_counts(names)}};
  }
  // The size of the attribute space, id 0 ("no attribute") included, as the
  // vg_detection reader's and detr head's num_attributes expect (VG: 401).
  manifest["num_attributes"] = attribute_id;
  return manifest;
}

}  // namespace unitrain::toy

// The vqa2 plugin: options from JSON (standard VQAv2 file names under "root") and export.
#include <fmt/format.h>

#include "unitrain/json_util.h"
#include "unitrain/json_text.h"
#include "unitrain/plugin.h"
#include "vqa2_dataset.h"
#include "vqa2_plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)

namespace unitrain::vqa {
namespace {

constexpr const char* kDefaultsJson = R"({
  "split": "train",
  "root": "",
  "questions": {},
  "annotations": {},
  "images": {},
  "image_prefix": {},
  "answers_file": "",
  "answer_min_count": 9,
  "answer_vocab_splits": ["train"],
  "tokenizer": {},
  "max_length": 25,
  "image": {"min_size": 800, "max_size": 1333, "train_min_sizes": [], "hflip": 0.0,
            "augment": null, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "flip_swap": [["left", "right"]],
  "on_bad_record": "error",
  "check_images": true
})";


// Official file names of a split: the VQA split name used in file names, the image
// folder, and whether answers are published.
struct SplitNames {
  std::string files;
  std::string images;
  bool annotated;
};

SplitNames standard_names(const std::string& split) {
  if (split == "train") return {"train2014", "train2014", true};
  if (split == "val") return {"val2014", "val2014", true};
  if (split == "test") return {"test2015", "test2015", false};
  if (split == "test-dev") return {"test-dev2015", "test2015", false};
  const bool test = split.rfind("test", 0) == 0;
  return {split, split.rfind("test-dev", 0) == 0 ? "test2015" : split, !test};
}

std::string annotations_file(const nlohmann::json& j, const std::string& split,
                             const std::string& where) {
  const auto names = standard_names(split);
  const std::string fallback =
      names.annotated ? fmt::format("v2_mscoco_{}_annotations.json", names.files) : "";
  return data::per_split(j["annotations"], split, fallback, where + "/annotations");
}

}  // namespace

Vqa2Options vqa2_options_from_json(const nlohmann::json& j, const std::string& where) {
  Vqa2Options o;
  o.split = j.at("split").get<std::string>();
  const std::string root = j.at("root").get<std::string>();
  const auto names = standard_names(o.split);
  o.questions = data::under_root(
      root, data::per_split(j["questions"], o.split,
                            fmt::format("v2_OpenEnded_mscoco_{}_questions.json", names.files),
                            where + "/questions"));
  const std::string annotations = annotations_file(j, o.split, where);
  if (!annotations.empty()) o.annotations = data::under_root(root, annotations);
  o.images = data::under_root(root, data::per_split(j["images"], o.split, names.images,
                                                    where + "/images"));
  o.image_prefix = data::per_split(j["image_prefix"], o.split,
                                   fmt::format("COCO_{}_", names.images), where + "/image_prefix");

  const int64_t max_length = j.at("max_length").get<int64_t>();
  if (max_length < 3) {
    throw ConfigError(fmt::format("{}/max_length: must be >= 3, found {}", where, max_length));
  }
  auto tokenizer = tokenizer_options_from_json(j.at("tokenizer"), where + "/tokenizer");
  tokenizer.max_length = max_length;
  o.tokenizer = make_tokenizer(tokenizer);

  const std::string answers_file = j.at("answers_file").get<std::string>();
  if (!answers_file.empty()) {
    o.answers = read_answer_file(data::under_root(root, answers_file));
  } else {
    const int64_t min_count = j.at("answer_min_count").get<int64_t>();
    if (min_count < 1) {
      throw ConfigError(fmt::format("{}/answer_min_count: must be >= 1, found {}", where, min_count));
    }
    std::vector<std::filesystem::path> files;
    for (const auto& split : j.at("answer_vocab_splits")) {
      if (!split.is_string()) {
        throw ConfigError(fmt::format("{}/answer_vocab_splits: expected split names, found {}",
                                      where, json_text(split)));
      }
      const std::string file = annotations_file(j, split.get<std::string>(), where);
      if (file.empty()) {
        throw ConfigError(fmt::format(
            "{}/answer_vocab_splits: split '{}' has no annotations file (set "
            "\"annotations\": {{\"{}\": ...}} or \"answers_file\")",
            where, split.get<std::string>(), split.get<std::string>()));
      }
      files.push_back(data::under_root(root, file));
    }
    if (files.empty()) {
      throw ConfigError(fmt::format(
          "{}: set \"answers_file\" or list splits in \"answer_vocab_splits\"", where));
    }
    o.answers = vqa2_answer_vocabulary(files, min_count);
  }

  data::ImageTransformOptions image;
  image.augment = data::is_train_split(o.split);
  o.image = data::image_transform_options_from_json(j.at("image"), image, where + "/image");
  o.flip_swap = data::word_pairs_from_json(j.at("flip_swap"), where + "/flip_swap");
  o.on_bad_record = data::on_bad_record_from_json(j.at("on_bad_record"), where + "/on_bad_record");
  o.check_images = j.at("check_images").get<bool>();
  return o;
}

const char* vqa2_defaults_json() { return kDefaultsJson; }

std::shared_ptr<Dataset> make_vqa2(const nlohmann::json& options) {
  // The host has merged and checked the options already; direct callers (tests) get
  // the same treatment here.
  const auto merged = merge_checked(nlohmann::json::parse(kDefaultsJson), options, "vqa2", "");
  return std::make_shared<Vqa2Dataset>(vqa2_options_from_json(merged, "vqa2"));
}

}  // namespace unitrain::vqa

UNITRAIN_PLUGIN(kVqa2, unitrain::Dataset, "dataset", "vqa2", "0.1.0",
                "VQAv2 questions and answers on COCO images (soft scores, VQA accuracy)",
                unitrain::vqa::kDefaultsJson, kReadme, unitrain::vqa::make_vqa2);
UNITRAIN_EXPORT_PLUGINS(&kVqa2);

// The vqa2 dataset plugin: its options, declared once (standard VQAv2 file names under
// "root"), the factories of the reader and of its input preparer, and the export.
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "unitrain/options.h"
#include "unitrain/plugin.h"
#include "unitrain/prepare.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)
#include "vqa2_dataset.h"
#include "vqa2_plugin.h"

namespace unitrain::vqa {
namespace {

// The dataset block's keys.
struct Vqa2Block {
  std::string split = "train";
  std::string root;
  std::map<std::string, std::string> questions;
  std::map<std::string, std::string> annotations;
  std::map<std::string, std::string> images;
  std::map<std::string, std::string> image_prefix;
  std::string answers_file;
  int64_t answer_min_count = 9;
  std::vector<std::string> answer_vocab_splits = {"train"};
  TokenizerOptions tokenizer;
  int64_t max_length = 25;
  data::ImageTransformOptions image;
  nlohmann::json flip_swap = nlohmann::json::array({nlohmann::json::array({"left", "right"})});
  data::OnBadRecord on_bad_record = data::OnBadRecord::kError;
  bool check_images = true;
};

const options::OptionSet<Vqa2Block>& vqa2_option_set() {
  static const auto set =
      options::OptionSet<Vqa2Block>()
          .add(UNITRAIN_FIELD(split),
               "split this instance reads: train, val, test, test-dev (official file names) or "
               "any name with explicit files")
          .add(UNITRAIN_FIELD(root), "folder the relative paths below are resolved against")
          .add(UNITRAIN_FIELD(questions),
               "per-split questions file; default `v2_OpenEnded_mscoco_<train2014|val2014|"
               "test2015|test-dev2015>_questions.json`")
          .add(UNITRAIN_FIELD(annotations),
               "per-split annotations file; default `v2_mscoco_<train2014|val2014>_annotations."
               "json`, none for test splits (no answers)")
          .add(UNITRAIN_FIELD(images),
               "per-split image folder; default `train2014`, `val2014`, `test2015`")
          .add(UNITRAIN_FIELD(image_prefix),
               "per-split image file prefix; default `COCO_<folder>_` (file "
               "`<prefix><12-digit image id>.jpg`)")
          .add(UNITRAIN_FIELD(answers_file),
               "answer vocabulary, one answer a line (line order = class id); empty: built from "
               "`answer_vocab_splits`")
          .add(UNITRAIN_FIELD(answer_min_count),
               "when building the vocabulary: answers given at least this often (MMF's 9 gives "
               "~3129 answers on VQAv2 train)",
               options::at_least(1))
          .add(UNITRAIN_FIELD(answer_vocab_splits),
               "splits whose annotations build the vocabulary (the same list on every split "
               "gives the same vocabulary)")
          .add_group("tokenizer", [](auto& o) -> auto& { return o.tokenizer; },
                     tokenizer_option_set(), "the question's tokenizer; `vocab` is required")
          .add(UNITRAIN_FIELD(max_length),
               "longest token sequence (overrides `tokenizer/max_length`)", options::at_least(3))
          .add_group("image", [](auto& o) -> auto& { return o.image; },
                     data::image_transform_option_set(), "the image transform")
          .add(UNITRAIN_FIELD(flip_swap),
               "word pairs swapped in the question and answers when the image is flipped",
               data::word_pairs_rule())
          .add(UNITRAIN_FIELD(on_bad_record),
               "\"error\": stop at the first bad record with file, record, field and reason; "
               "\"skip\": leave it out and count it by reason")
          .add(UNITRAIN_FIELD(check_images), "check at load time that every image file exists");
  return set;
}

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

std::string annotations_file(const Vqa2Block& block, const std::string& split) {
  const auto it = block.annotations.find(split);
  if (it != block.annotations.end()) return it->second;
  const auto names = standard_names(split);
  return names.annotated ? fmt::format("v2_mscoco_{}_annotations.json", names.files) : "";
}

std::shared_ptr<InputPreparer> make_vqa2_preparer(const nlohmann::json& options) {
  const Vqa2Block block = vqa2_option_set().parse(options, "vqa2");
  return std::make_shared<StandardPreparer>(
      block.image, dataset_tokenizer(block.tokenizer, block.max_length, "vqa2"));
}

}  // namespace

Vqa2Options vqa2_options_from_json(const nlohmann::json& j, const std::string& where) {
  const Vqa2Block block = vqa2_option_set().parse(j, where);
  Vqa2Options o;
  o.split = block.split;
  const std::string& root = block.root;
  const auto names = standard_names(o.split);
  o.questions = data::under_root(
      root, data::per_split(block.questions, o.split,
                            fmt::format("v2_OpenEnded_mscoco_{}_questions.json", names.files),
                            where + "/questions"));
  const std::string annotations = annotations_file(block, o.split);
  if (!annotations.empty()) o.annotations = data::under_root(root, annotations);
  o.images = data::under_root(
      root, data::per_split(block.images, o.split, names.images, where + "/images"));
  o.image_prefix = data::per_split(block.image_prefix, o.split,
                                   fmt::format("COCO_{}_", names.images), where + "/image_prefix");
  o.tokenizer = make_tokenizer(dataset_tokenizer(block.tokenizer, block.max_length, where));

  if (!block.answers_file.empty()) {
    o.answers = read_answer_file(data::under_root(root, block.answers_file));
  } else {
    std::vector<std::filesystem::path> files;
    for (const auto& split : block.answer_vocab_splits) {
      const std::string file = annotations_file(block, split);
      if (file.empty()) {
        throw ConfigError(fmt::format(
            "{}/answer_vocab_splits: split '{}' has no annotations file (set "
            "\"annotations\": {{\"{}\": ...}} or \"answers_file\")",
            where, split, split));
      }
      files.push_back(data::under_root(root, file));
    }
    if (files.empty()) {
      throw ConfigError(fmt::format(
          "{}: set \"answers_file\" or list splits in \"answer_vocab_splits\"", where));
    }
    o.answers = vqa2_answer_vocabulary(files, block.answer_min_count);
  }

  o.image = data::for_split(block.image, o.split);
  o.flip_swap = data::word_pairs_from_json(block.flip_swap, where + "/flip_swap");
  o.on_bad_record = block.on_bad_record;
  o.check_images = block.check_images;
  return o;
}

std::shared_ptr<Dataset> make_vqa2(const nlohmann::json& options) {
  return std::make_shared<Vqa2Dataset>(vqa2_options_from_json(options, "vqa2"));
}

}  // namespace unitrain::vqa

UNITRAIN_PLUGIN(kVqa2, unitrain::Dataset, "dataset", "vqa2", "0.1.0",
                "VQAv2 questions and answers on COCO images (soft scores, VQA accuracy)",
                unitrain::vqa::vqa2_option_set().defaults_json().c_str(), kReadme,
                unitrain::vqa::make_vqa2);
UNITRAIN_PLUGIN(kVqa2Preparer, unitrain::InputPreparer, "preparer", "vqa2", "0.1.0",
                "A raw image and question prepared as the vqa2 dataset's records",
                unitrain::vqa::vqa2_option_set().defaults_json().c_str(), kReadme,
                unitrain::vqa::make_vqa2_preparer);
UNITRAIN_EXPORT_PLUGINS(&kVqa2, &kVqa2Preparer);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE("dataset", "vqa2",
                                                    &unitrain::vqa::vqa2_option_set));

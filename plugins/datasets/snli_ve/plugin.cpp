// The snli_ve dataset plugin: its options, declared once, the factories of the reader
// and of its input preparer, and the export.
#include <map>
#include <string>

#include <fmt/format.h>

#include "snli_ve_dataset.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"
#include "unitrain/prepare.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)

namespace unitrain::snli_ve {
namespace {

// The dataset block's keys.
struct SnliVeBlock {
  std::string split = "train";
  std::string root;
  std::map<std::string, std::string> files;
  std::string images = "flickr30k_images";
  TokenizerOptions tokenizer;
  int64_t max_length = 25;
  data::ImageTransformOptions image;
  nlohmann::json flip_swap = nlohmann::json::array({nlohmann::json::array({"left", "right"})});
  data::OnBadRecord on_bad_record = data::OnBadRecord::kError;
  bool check_images = true;
};

const options::OptionSet<SnliVeBlock>& snli_ve_option_set() {
  static const auto set =
      options::OptionSet<SnliVeBlock>()
          .add(UNITRAIN_FIELD(split), "split this instance reads (set by the experiment builder)")
          .add(UNITRAIN_FIELD(root), "folder the relative paths below are resolved against")
          .add(UNITRAIN_FIELD(files),
               "per-split JSONL file, e.g. {\"dev\": \"my_dev.jsonl\"}; a split not listed reads "
               "`snli_ve_<split>.jsonl`")
          .add(UNITRAIN_FIELD(images), "the Flickr30k image folder")
          .add_group("tokenizer", [](auto& o) -> auto& { return o.tokenizer; },
                     tokenizer_option_set(), "the hypothesis' tokenizer; `vocab` is required")
          .add(UNITRAIN_FIELD(max_length),
               "longest token sequence (overrides `tokenizer/max_length`)", options::at_least(3))
          .add_group("image", [](auto& o) -> auto& { return o.image; },
                     data::image_transform_option_set(), "the image transform")
          .add(UNITRAIN_FIELD(flip_swap),
               "word pairs swapped in the hypothesis when its image is flipped",
               data::word_pairs_rule())
          .add(UNITRAIN_FIELD(on_bad_record),
               "\"error\": stop at the first bad record with file, line, field and reason; "
               "\"skip\": leave it out and count it by reason")
          .add(UNITRAIN_FIELD(check_images), "check at load time that every image file exists");
  return set;
}

std::shared_ptr<InputPreparer> make_snli_ve_preparer(const nlohmann::json& options) {
  const SnliVeBlock block = snli_ve_option_set().parse(options, "snli_ve");
  return std::make_shared<StandardPreparer>(
      block.image, dataset_tokenizer(block.tokenizer, block.max_length, "snli_ve"));
}

}  // namespace

SnliVeOptions snli_ve_options_from_json(const nlohmann::json& j, const std::string& where) {
  const SnliVeBlock block = snli_ve_option_set().parse(j, where);
  SnliVeOptions o;
  o.split = block.split;
  o.file = data::under_root(block.root, data::per_split(nlohmann::json(block.files), o.split,
                                                        fmt::format("snli_ve_{}.jsonl", o.split),
                                                        where + "/files"));
  o.images = data::under_root(block.root, block.images);
  o.tokenizer = make_tokenizer(dataset_tokenizer(block.tokenizer, block.max_length, where));
  o.image = data::for_split(block.image, o.split);
  o.flip_swap = data::word_pairs_from_json(block.flip_swap, where + "/flip_swap");
  o.on_bad_record = block.on_bad_record;
  o.check_images = block.check_images;
  return o;
}

std::shared_ptr<Dataset> make_snli_ve(const nlohmann::json& options) {
  return std::make_shared<SnliVeDataset>(snli_ve_options_from_json(options, "snli_ve"));
}

}  // namespace unitrain::snli_ve

UNITRAIN_PLUGIN(kSnliVe, unitrain::Dataset, "dataset", "snli_ve", "0.1.0",
                "SNLI-VE visual entailment (Flickr30k image, hypothesis, 3 labels)",
                unitrain::snli_ve::snli_ve_option_set().defaults_json().c_str(), kReadme,
                unitrain::snli_ve::make_snli_ve);
UNITRAIN_PLUGIN(kSnliVePreparer, unitrain::InputPreparer, "preparer", "snli_ve", "0.1.0",
                "A raw image and hypothesis prepared as the snli_ve dataset's records",
                unitrain::snli_ve::snli_ve_option_set().defaults_json().c_str(), kReadme,
                unitrain::snli_ve::make_snli_ve_preparer);
UNITRAIN_EXPORT_PLUGINS(&kSnliVe, &kSnliVePreparer);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE("dataset", "snli_ve",
                                                    &unitrain::snli_ve::snli_ve_option_set));

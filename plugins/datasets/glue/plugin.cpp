// The glue dataset plugin: its options, declared once, the factories of the reader and
// of its input preparer, and the export.
#include <map>
#include <string>

#include <fmt/format.h>

#include "glue_dataset.h"
#include "unitrain/options.h"
#include "unitrain/plugin.h"
#include "unitrain/prepare.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)

namespace unitrain::glue {
namespace {

// The dataset block's keys.
struct GlueBlock {
  std::string split = "train";
  std::string task = "qnli";
  std::string root;
  std::map<std::string, std::string> files;
  TokenizerOptions tokenizer;
  int64_t max_length = 128;
  data::OnBadRecord on_bad_record = data::OnBadRecord::kError;
};

const options::OptionSet<GlueBlock>& glue_option_set() {
  static const auto set =
      options::OptionSet<GlueBlock>()
          .add(UNITRAIN_FIELD(split),
               "split this instance reads; the file is `<root>/<split>.tsv` (MNLI: "
               "dev_matched, dev_mismatched, test_matched, test_mismatched)")
          .add(UNITRAIN_FIELD(task), "one of the tasks above",
               options::check([](const nlohmann::json& value, const std::string& path) {
                 if (value.is_string() && !find_glue_task(value.get<std::string>())) {
                   throw ConfigError(fmt::format("{}: unknown GLUE task '{}' (known: {})", path,
                                                 value.get<std::string>(), glue_task_names()));
                 }
               }))
          .add(UNITRAIN_FIELD(root), "the task's folder (e.g. glue_data/MNLI)")
          .add(UNITRAIN_FIELD(files), "per-split file, overriding `<split>.tsv`")
          .add_group("tokenizer", [](auto& o) -> auto& { return o.tokenizer; },
                     tokenizer_option_set(), "the tokenizer; `vocab` is required")
          .add(UNITRAIN_FIELD(max_length),
               "longest token sequence (overrides `tokenizer/max_length`); the longer text is "
               "trimmed first",
               options::at_least(3))
          .add(UNITRAIN_FIELD(on_bad_record),
               "\"error\": stop at the first bad row with file, line, field and reason; "
               "\"skip\": leave it out and count it");
  return set;
}

std::shared_ptr<InputPreparer> make_glue_preparer(const nlohmann::json& options) {
  const GlueBlock block = glue_option_set().parse(options, "glue");
  return std::make_shared<StandardPreparer>(
      std::nullopt, dataset_tokenizer(block.tokenizer, block.max_length, "glue"));
}

}  // namespace

GlueOptions glue_options_from_json(const nlohmann::json& j, const std::string& where) {
  const GlueBlock block = glue_option_set().parse(j, where);
  GlueOptions o;
  o.split = block.split;
  o.task = block.task;
  o.file = data::under_root(block.root, data::per_split(nlohmann::json(block.files), o.split,
                                                        o.split + ".tsv", where + "/files"));
  o.tokenizer = make_tokenizer(dataset_tokenizer(block.tokenizer, block.max_length, where));
  o.on_bad_record = block.on_bad_record;
  return o;
}

std::shared_ptr<Dataset> make_glue(const nlohmann::json& options) {
  return std::make_shared<GlueDataset>(glue_options_from_json(options, "glue"));
}

}  // namespace unitrain::glue

UNITRAIN_PLUGIN(kGlue, unitrain::Dataset, "dataset", "glue", "0.1.0",
                "GLUE sentence(-pair) classification from the TSV files (task option)",
                unitrain::glue::glue_option_set().defaults_json().c_str(), kReadme,
                unitrain::glue::make_glue);
UNITRAIN_PLUGIN(kGluePreparer, unitrain::InputPreparer, "preparer", "glue", "0.1.0",
                "Raw sentences (pairs) tokenized as the glue dataset's records",
                unitrain::glue::glue_option_set().defaults_json().c_str(), kReadme,
                unitrain::glue::make_glue_preparer);
UNITRAIN_EXPORT_PLUGINS(&kGlue, &kGluePreparer);
UNITRAIN_EXPORT_OPTION_TABLES(UNITRAIN_OPTION_TABLE("dataset", "glue",
                                                    &unitrain::glue::glue_option_set));

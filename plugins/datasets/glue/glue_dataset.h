// GLUE reader: header-driven TSV (tabs only, quotes are ordinary characters), one
// plugin for every task in glue_tasks.h. Keys and defaults: README.md.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "glue_tasks.h"
#include "unitrain/data/records.h"
#include "unitrain/dataset.h"
#include "unitrain/results.h"
#include "unitrain/sizes.h"
#include "unitrain/tokenizer.h"

namespace unitrain::glue {

struct GlueOptions {
  std::string split = "train";
  std::string task = "qnli";    // a name from glue_tasks()
  std::filesystem::path file;   // <root>/<split>.tsv. Required.
  std::shared_ptr<const Tokenizer> tokenizer;  // required
  data::OnBadRecord on_bad_record = data::OnBadRecord::kError;
};

// The dataset block `j` (keys left out keep their defaults) read and resolved: the file
// under "root", the tokenizer built. ConfigError naming the key under `where`.
GlueOptions glue_options_from_json(const nlohmann::json& j, const std::string& where);
// The plugin factory.
std::shared_ptr<Dataset> make_glue(const nlohmann::json& options);

class GlueDataset : public Dataset, public TokenVocabulary, public ResultFiles {
 public:
  // The ids its tokenizer produces, checked against the text encoder's.
  int64_t vocabulary_size() const override { return options_.tokenizer->vocab_size(); }
  explicit GlueDataset(GlueOptions options);

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  // input_ids/segment_ids of [CLS] a [SEP] (b [SEP]), label (-1 in test files).
  Sample get(int64_t index, uint64_t seed) const override;
  LabelSpace labels() const override;
  std::unique_ptr<Evaluator> evaluator() const override;
  nlohmann::json skipped() const override { return bad_.counts(); }
  // The GLUE server's submission TSV: <submission>.tsv (QNLI.tsv, MNLI-mm.tsv, SST-2.tsv...),
  // header "index\tprediction", one row per record in file order: the row's "index" (or
  // QQP's "id") column, else its 0-based row number, and the label string.
  std::unique_ptr<ResultWriter> result_writer() const override;
  // "QNLI", "MNLI-m", "MNLI-mm", ...: the submission file's name without ".tsv".
  std::string submission_name() const;

  bool has_labels() const { return has_labels_; }

 private:
  struct Record {
    int64_t line = 0;  // 1-based
    std::string index;  // the "index" / "id" column, else the 0-based row number
    std::string a, b;
    int64_t label = -1;
  };

  GlueOptions options_;
  const GlueTask* task_;
  data::BadRecords bad_;
  bool has_labels_ = false;
  std::vector<Record> records_;
};

}  // namespace unitrain::glue

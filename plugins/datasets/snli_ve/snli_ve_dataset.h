// SNLI-VE reader: one JSON object a line (hypothesis, gold label, Flickr30k image).
// Keys and defaults: README.md next to this file.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "unitrain/data/image_pipeline.h"
#include "unitrain/data/records.h"
#include "unitrain/dataset.h"
#include "unitrain/record_text.h"
#include "unitrain/results.h"
#include "unitrain/sizes.h"
#include "unitrain/tokenizer.h"

namespace unitrain::snli_ve {

// Label ids: entailment 0, neutral 1, contradiction 2.
extern const std::vector<std::string> kLabels;

struct SnliVeOptions {
  std::string split = "train";
  std::filesystem::path file;    // snli_ve_<split>.jsonl. Required.
  std::filesystem::path images;  // Flickr30k image folder. Required.
  std::shared_ptr<const Tokenizer> tokenizer;  // required
  data::ImageTransformOptions image;
  // Words swapped in the hypothesis of a horizontally flipped image.
  data::WordPairs flip_swap = {{"left", "right"}};
  data::OnBadRecord on_bad_record = data::OnBadRecord::kError;
  bool check_images = true;
};

// The dataset block `j` (keys left out keep their defaults) read and resolved: files
// under "root", the tokenizer built. ConfigError naming the key under `where`.
SnliVeOptions snli_ve_options_from_json(const nlohmann::json& j, const std::string& where);
// The plugin factory.
std::shared_ptr<Dataset> make_snli_ve(const nlohmann::json& options);

class SnliVeDataset : public Dataset, public TokenVocabulary, public ResultFiles, public RecordText {
 public:
  // The ids its tokenizer produces, checked against the text encoder's.
  int64_t vocabulary_size() const override { return options_.tokenizer->vocab_size(); }
  explicit SnliVeDataset(SnliVeOptions options);

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  // image, input_ids/segment_ids of the hypothesis (sentence2), label.
  Sample get(int64_t index, uint64_t seed) const override;
  LabelSpace labels() const override;
  std::unique_ptr<Evaluator> evaluator() const override;
  nlohmann::json skipped() const override { return bad_.counts(); }
  // JSON lines <task>_<split>_results.jsonl, one per record in file order:
  // {"line" (1-based in the input file), "pairID" (when the record has one), "image"
  // (Flickr30k file name), "prediction" (entailment / neutral / contradiction)}.
  std::unique_ptr<ResultWriter> result_writer() const override;
  // The hypothesis (sentence2) as the file holds it, for the run report.
  std::string record_text(int64_t index) const override { return records_.at(index).hypothesis; }

 private:
  struct Record {
    int64_t line = 0;  // 1-based line in the file
    std::string image;  // file name in the image folder
    std::string pair_id;  // "pairID", empty when absent
    int64_t image_id = -1;
    std::string hypothesis;
    int64_t label = -1;
  };

  SnliVeOptions options_;
  data::ImageTransform transform_;
  data::BadRecords bad_;
  std::vector<Record> records_;
};

}  // namespace unitrain::snli_ve

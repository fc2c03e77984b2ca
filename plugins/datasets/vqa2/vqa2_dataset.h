// VQAv2 reader: questions + annotations JSON, COCO images, answer vocabulary and soft
// scores. Keys and defaults: README.md next to this file.
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

namespace unitrain::vqa {

struct Vqa2Options {
  std::string split = "train";
  // v2_OpenEnded_mscoco_<split>_questions.json. Required.
  std::filesystem::path questions;
  // v2_mscoco_<split>_annotations.json; empty for test splits (no answers).
  std::filesystem::path annotations;
  // Folder of the images and their name prefix: <images>/<image_prefix><id:012d>.jpg.
  std::filesystem::path images;
  std::string image_prefix;
  // The answer vocabulary, by label id (see vqa2_answer_vocabulary).
  std::shared_ptr<const std::vector<std::string>> answers;
  std::shared_ptr<const Tokenizer> tokenizer;  // required
  data::ImageTransformOptions image;
  // Words swapped in the question and the answers of a horizontally flipped image.
  data::WordPairs flip_swap = {{"left", "right"}};
  data::OnBadRecord on_bad_record = data::OnBadRecord::kError;
  bool check_images = true;
};

// The vocabulary: the normalized `multiple_choice_answer`s of `annotation_files` seen
// at least `min_count` times, most frequent first (ties in byte order). Cached per
// (files, min_count) so every split of a run shares one.
std::shared_ptr<const std::vector<std::string>> vqa2_answer_vocabulary(
    const std::vector<std::filesystem::path>& annotation_files, int64_t min_count);
// A vocabulary file: one answer a line, used as written (blank lines are an error).
std::shared_ptr<const std::vector<std::string>> read_answer_file(const std::filesystem::path& file);

class Vqa2Dataset : public Dataset, public TokenVocabulary, public ResultFiles, public RecordText {
 public:
  // The ids its tokenizer produces, checked against the text encoder's.
  int64_t vocabulary_size() const override { return options_.tokenizer->vocab_size(); }
  explicit Vqa2Dataset(Vqa2Options options);

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  // image, input_ids/segment_ids (question), soft_label [num_answers] when annotated,
  // label = the answer with the highest soft score (-1 if none is in the vocabulary).
  Sample get(int64_t index, uint64_t seed) const override;
  LabelSpace labels() const override;
  std::unique_ptr<Evaluator> evaluator() const override;
  nlohmann::json skipped() const override { return bad_.counts(); }
  // VQA results JSON [{"question_id", "answer"}] (the answer string from the
  // vocabulary), as the official evaluator and the EvalAI server read it:
  // <task>_<split>_results.json.
  std::unique_ptr<ResultWriter> result_writer() const override;
  // The question as the file holds it, for the run report.
  std::string record_text(int64_t index) const override { return records_.at(index).question; }

 private:
  struct Record {
    int64_t question_id = 0;
    int64_t image_id = 0;
    std::string question;
    bool annotated = false;
    std::vector<std::pair<int32_t, float>> scores;  // (answer id, soft score), sparse
    size_t index_in_file = 0;
  };

  std::filesystem::path image_path(int64_t image_id) const;
  // The sparse soft scores of `r` for a flipped image: answers swapped by flip_swap.
  std::vector<std::pair<int32_t, float>> swapped_scores(const Record& r) const;

  Vqa2Options options_;
  data::ImageTransform transform_;
  data::BadRecords bad_;
  std::vector<Record> records_;
  // Answer id -> id of the answer with the flip_swap words swapped (-1: not in the
  // vocabulary, so a flipped sample cannot score it).
  std::vector<int32_t> flipped_answer_;
};

}  // namespace unitrain::vqa

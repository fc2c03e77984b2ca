// The vqa2 dataset plugin: reader, options and export.
#include "vqa2_dataset.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <opencv2/core.hpp>

#include "answer_normalization.h"
#include "unitrain/json_text.h"
#include "unitrain/metrics.h"

namespace unitrain::vqa {
namespace {

using data::BadRecords;
using data::field;

const nlohmann::json& top_level_array(const nlohmann::json& root, const char* key,
                                      const std::filesystem::path& file) {
  if (!root.is_object() || !root.contains(key) || !root.at(key).is_array()) {
    throw DataError(fmt::format("{}: expected a top-level '{}' array (VQAv2 format)",
                                file.string(), key));
  }
  return root.at(key);
}

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

}  // namespace

std::shared_ptr<const std::vector<std::string>> vqa2_answer_vocabulary(
    const std::vector<std::filesystem::path>& annotation_files, int64_t min_count) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const std::vector<std::string>>> cache;
  std::string key = std::to_string(min_count);
  for (const auto& f : annotation_files) key += "\n" + f.string();
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  std::unordered_map<std::string, int64_t> counts;
  for (const auto& file : annotation_files) {
    const auto root = data::read_json_file(file, "VQA annotations file");
    const auto& annotations = top_level_array(root, "annotations", file);
    for (size_t i = 0; i < annotations.size(); ++i) {
      const auto& a = annotations[i];
      if (!a.is_object() || !a.contains("multiple_choice_answer") ||
          !a["multiple_choice_answer"].is_string()) {
        throw DataError(fmt::format(
            "{}: annotations[{}]: field 'multiple_choice_answer': missing or not a string "
            "(needed to build the answer vocabulary)",
            file.string(), i));
      }
      ++counts[normalize_answer(a["multiple_choice_answer"].get<std::string>())];
    }
  }
  std::vector<std::pair<int64_t, std::string>> kept;
  for (auto& [answer, n] : counts) {
    if (n >= min_count && !answer.empty()) kept.emplace_back(-n, answer);
  }
  std::sort(kept.begin(), kept.end());
  auto vocabulary = std::make_shared<std::vector<std::string>>();
  for (auto& entry : kept) vocabulary->push_back(std::move(entry.second));
  if (vocabulary->empty()) {
    throw DataError(fmt::format("no answer appears {} times or more in the annotations of {}: "
                                "the answer vocabulary is empty (lower answer_min_count)",
                                min_count, key.substr(key.find('\n') + 1)));
  }
  cache[key] = vocabulary;
  return vocabulary;
}

std::shared_ptr<const std::vector<std::string>> read_answer_file(const std::filesystem::path& file) {
  const std::string text = data::read_text_file(file, "answer vocabulary file");
  auto vocabulary = std::make_shared<std::vector<std::string>>();
  std::unordered_set<std::string> seen;
  const auto lines = data::split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string answer(lines[i]);
    if (blank(answer)) {
      throw DataError(fmt::format("{}:{}: blank line in the answer vocabulary", file.string(), i + 1));
    }
    if (!seen.insert(answer).second) {
      throw DataError(fmt::format("{}:{}: answer '{}' appears twice", file.string(), i + 1, answer));
    }
    vocabulary->push_back(answer);
  }
  if (vocabulary->empty()) throw DataError(fmt::format("{}: the answer vocabulary is empty", file.string()));
  return vocabulary;
}

Vqa2Dataset::Vqa2Dataset(Vqa2Options options)
    : options_(std::move(options)), transform_(options_.image), bad_(options_.on_bad_record) {
  if (!options_.tokenizer) throw ConfigError("vqa2: no tokenizer");
  if (!options_.answers || options_.answers->empty()) throw ConfigError("vqa2: no answer vocabulary");
  std::unordered_map<std::string, int32_t> answer_id;
  for (size_t i = 0; i < options_.answers->size(); ++i) answer_id[(*options_.answers)[i]] = i;
  for (const auto& answer : *options_.answers) {
    const auto it = answer_id.find(data::swap_words(answer, options_.flip_swap));
    flipped_answer_.push_back(it == answer_id.end() ? -1 : it->second);
  }

  const auto& qfile = options_.questions;
  const auto questions_root = data::read_json_file(qfile, "VQA questions file");
  const auto& questions = top_level_array(questions_root, "questions", qfile);

  nlohmann::json annotations_root;
  std::unordered_map<int64_t, size_t> annotation_of;  // question id -> index
  const auto& afile = options_.annotations;
  if (!afile.empty()) {
    annotations_root = data::read_json_file(afile, "VQA annotations file");
    const auto& annotations = top_level_array(annotations_root, "annotations", afile);
    for (size_t j = 0; j < annotations.size(); ++j) {
      const auto& a = annotations[j];
      if (a.is_object() && a.contains("question_id") && a["question_id"].is_number_integer()) {
        annotation_of.emplace(a["question_id"].get<int64_t>(), j);
      }
    }
  }

  std::unordered_map<int64_t, bool> image_exists;
  std::unordered_set<int64_t> seen_questions;
  for (size_t i = 0; i < questions.size(); ++i) {
    const auto& q = questions[i];
    std::string where = fmt::format("{}: questions[{}]", qfile.string(), i);
    const auto* qid = field(q, "question_id", "integer", where, bad_);
    if (!qid) continue;
    where += fmt::format(" (question_id {})", qid->get<int64_t>());
    const auto* image_id = field(q, "image_id", "integer", where, bad_);
    if (!image_id) continue;
    const auto* question = field(q, "question", "string", where, bad_);
    if (!question) continue;

    Record record;
    record.question_id = qid->get<int64_t>();
    record.image_id = image_id->get<int64_t>();
    record.question = question->get<std::string>();
    record.index_in_file = i;
    if (blank(record.question)) {
      bad_.report(where, "question", "empty_question", "the question is empty");
      continue;
    }
    if (!seen_questions.insert(record.question_id).second) {
      bad_.report(where, "question_id", "duplicate_question_id", "appears twice");
      continue;
    }
    if (!afile.empty()) {
      auto it = annotation_of.find(record.question_id);
      if (it == annotation_of.end()) {
        bad_.report(where, "question_id", "missing_annotation",
                    fmt::format("no annotation for this question in {}", afile.string()));
        continue;
      }
      const auto& a = annotations_root["annotations"][it->second];
      const std::string awhere = fmt::format("{}: annotations[{}] (question_id {})",
                                             afile.string(), it->second, record.question_id);
      const auto* a_image = field(a, "image_id", "integer", awhere, bad_);
      if (!a_image) continue;
      if (a_image->get<int64_t>() != record.image_id) {
        bad_.report(awhere, "image_id", "image_id_mismatch",
                    fmt::format("{} but the question says {}", json_text(*a_image), record.image_id));
        continue;
      }
      const auto* answers = field(a, "answers", "array", awhere, bad_);
      if (!answers) continue;
      std::vector<std::string> given;
      bool ok = !answers->empty();
      for (const auto& ans : *answers) {
        if (!ans.is_object() || !ans.contains("answer") || !ans["answer"].is_string()) ok = false;
        else given.push_back(normalize_answer(ans["answer"].get<std::string>()));
      }
      if (!ok) {
        bad_.report(awhere, "answers", "bad_answers",
                    "expected a non-empty array of {\"answer\": string} objects");
        continue;
      }
      std::unordered_set<std::string> distinct(given.begin(), given.end());
      for (const auto& answer : distinct) {
        auto id = answer_id.find(answer);
        if (id == answer_id.end()) continue;  // outside the vocabulary: cannot be predicted
        record.scores.emplace_back(id->second, static_cast<float>(vqa_answer_score(answer, given)));
      }
      std::sort(record.scores.begin(), record.scores.end());
      record.annotated = true;
    }
    if (options_.check_images) {
      auto [it, inserted] = image_exists.try_emplace(record.image_id, false);
      if (inserted) {
        std::error_code ec;
        it->second = std::filesystem::is_regular_file(image_path(record.image_id), ec);
      }
      if (!it->second) {
        bad_.report(where, "image_id", "missing_image",
                    fmt::format("image file '{}' does not exist", image_path(record.image_id).string()));
        continue;
      }
    }
    records_.push_back(std::move(record));
  }
}

std::filesystem::path Vqa2Dataset::image_path(int64_t image_id) const {
  return options_.images / fmt::format("{}{:012d}.jpg", options_.image_prefix, image_id);
}

Sample Vqa2Dataset::get(int64_t index, uint64_t seed) const {
  TORCH_CHECK(index >= 0 && index < size(), "index ", index, " out of range [0, ", size(), ")");
  const Record& r = records_[index];
  Sample s;
  s.source = fmt::format("{}: question_id {}", options_.questions.string(), r.question_id);
  const cv::Mat rgb = data::decode_image(image_path(r.image_id), s.source, bad_);
  auto transformed = transform_.apply(rgb, torch::Tensor(), seed);
  s.image = std::move(transformed.image);
  const bool flipped = transformed.flipped;
  s.image_id = r.image_id;
  s.orig_height = rgb.rows;
  s.orig_width = rgb.cols;
  const Encoding encoding = options_.tokenizer->encode(
      flipped ? data::swap_words(r.question, options_.flip_swap) : r.question);
  s.input_ids = encoding.input_ids;
  s.segment_ids = encoding.segment_ids;
  if (r.annotated) {
    s.soft_label = torch::zeros({static_cast<int64_t>(options_.answers->size())}, torch::kFloat32);
    auto a = s.soft_label.accessor<float, 1>();
    float best = 0;
    std::vector<std::pair<int32_t, float>> swapped;
    if (flipped) swapped = swapped_scores(r);
    for (const auto& [id, score] : flipped ? swapped : r.scores) {
      a[id] = score;
      if (score > best) {
        best = score;
        s.label = id;
      }
    }
  }
  s.record_id = r.question_id;
  return s;
}

std::vector<std::pair<int32_t, float>> Vqa2Dataset::swapped_scores(const Record& r) const {
  std::vector<std::pair<int32_t, float>> out;
  for (const auto& [id, score] : r.scores) {
    if (flipped_answer_[id] >= 0) out.emplace_back(flipped_answer_[id], score);
  }
  std::sort(out.begin(), out.end());  // ties for the best answer keep going to the lower id
  return out;
}

LabelSpace Vqa2Dataset::labels() const {
  LabelSpace space;
  space.kind = "vqa";
  space.names = *options_.answers;
  return space;
}

std::unique_ptr<Evaluator> Vqa2Dataset::evaluator() const { return make_evaluator(labels()); }

namespace {

class VqaResultWriter : public ResultWriter {
 public:
  VqaResultWriter(std::shared_ptr<const std::vector<std::string>> answers, std::string split)
      : answers_(std::move(answers)), split_(std::move(split)) {}

  void add(const Predictions& predictions, const Batch& batch) override {
    for (const auto& [question_id, label] : predicted_labels(predictions, batch)) {
      if (label < 0 || label >= static_cast<int64_t>(answers_->size())) {
        throw TrainingError(fmt::format("task '{}': predicted answer id {} is outside the "
                                        "vocabulary of {} answers", batch.task, label,
                                        answers_->size()));
      }
      results_.push_back({{"question_id", question_id}, {"answer", (*answers_)[label]}});
    }
  }

  std::vector<std::filesystem::path> write(const std::filesystem::path& dir,
                                           const std::string& task) const override {
    const auto file = dir / fmt::format("{}_{}_results.json", task, split_);
    write_result_file(file, json_text(results_) + "\n");
    return {file};
  }

 private:
  std::shared_ptr<const std::vector<std::string>> answers_;
  std::string split_;
  nlohmann::ordered_json results_ = nlohmann::ordered_json::array();
};

}  // namespace

std::unique_ptr<ResultWriter> Vqa2Dataset::result_writer() const {
  return std::make_unique<VqaResultWriter>(options_.answers, options_.split);
}

}  // namespace unitrain::vqa

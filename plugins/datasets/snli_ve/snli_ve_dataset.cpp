// The SNLI-VE reader (the plugin entry, options and export: plugin.cpp).
#include "snli_ve_dataset.h"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>
#include <opencv2/core.hpp>

#include "unitrain/json_text.h"
#include "unitrain/json_util.h"
#include "unitrain/metrics.h"

namespace unitrain::snli_ve {

const std::vector<std::string> kLabels = {"entailment", "neutral", "contradiction"};

namespace {

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

// Image ids are numeric in Flickr30k ("1000092795.jpg"); -1 when the name is not.
int64_t numeric_id(const std::string& stem) {
  if (stem.empty() || stem.size() > 18 ||
      !std::all_of(stem.begin(), stem.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return -1;
  }
  return std::stoll(stem);
}

}  // namespace

SnliVeDataset::SnliVeDataset(SnliVeOptions options)
    : options_(std::move(options)), transform_(options_.image), bad_(options_.on_bad_record) {
  if (!options_.tokenizer) throw ConfigError("snli_ve: no tokenizer");
  const std::string text = data::read_text_file(options_.file, "SNLI-VE file");
  const auto lines = data::split_lines(text);
  std::unordered_map<std::string, bool> image_exists;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i])) continue;
    const std::string where = fmt::format("{}:{}", options_.file.string(), i + 1);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception& e) {  // parse_error, out_of_range (1e999)
      const size_t column = json_error_offset(lines[i], e) + 1;
      bad_.report(fmt::format("{}:{}", where, column), "", "malformed_json",
                  fmt::format("malformed JSON line: {}", e.what()));
      continue;
    }
    Record r;
    r.line = static_cast<int64_t>(i + 1);
    // The released files spell the key "Flikr30kID" with ".jpg"; newer ones
    // "Flickr30K_ID" without.
    if (j.is_object() && j.contains("Flikr30kID")) {
      const auto* id = data::field(j, "Flikr30kID", "string", where, bad_);
      if (!id) continue;
      r.image = id->get<std::string>();
    } else if (j.is_object() && j.contains("Flickr30K_ID")) {
      const auto& id = j["Flickr30K_ID"];
      if (id.is_number_integer()) {
        r.image = std::to_string(id.get<int64_t>()) + ".jpg";
      } else {
        const auto* s = data::field(j, "Flickr30K_ID", "string", where, bad_);
        if (!s) continue;
        r.image = s->get<std::string>() + ".jpg";
      }
    } else {
      bad_.report(where, "Flikr30kID", "missing_field",
                  "missing (neither \"Flikr30kID\" nor \"Flickr30K_ID\" is present)");
      continue;
    }
    if (data::image_path_escapes(r.image)) {
      bad_.report(where, "Flikr30kID", "unsafe_path",
                  fmt::format("image path '{}' escapes the image root '{}'", r.image,
                              options_.images.string()));
      continue;
    }
    r.image_id = numeric_id(std::filesystem::path(r.image).stem().string());
    if (j.contains("pairID") && j["pairID"].is_string()) r.pair_id = j["pairID"].get<std::string>();
    const auto* hypothesis = data::field(j, "sentence2", "string", where, bad_);
    if (!hypothesis) continue;
    r.hypothesis = hypothesis->get<std::string>();
    if (is_blank(r.hypothesis)) {
      bad_.report(where, "sentence2", "empty_text", "the hypothesis is empty");
      continue;
    }
    // A test split may come without labels (a file for submission): label -1.
    const bool unlabelled_test = options_.split.rfind("test", 0) == 0 && !j.contains("gold_label");
    if (!unlabelled_test) {
      const auto* gold = data::field(j, "gold_label", "string", where, bad_);
      if (!gold) continue;
      const std::string label = gold->get<std::string>();
      if (label == "-") {  // no annotator consensus: not a training example
        bad_.count("no_gold_label");
        continue;
      }
      auto it = std::find(kLabels.begin(), kLabels.end(), label);
      if (it == kLabels.end()) {
        bad_.report(where, "gold_label", "unknown_label",
                    fmt::format("'{}' is not a label (entailment, neutral, contradiction)", label));
        continue;
      }
      r.label = it - kLabels.begin();
    }
    if (options_.check_images) {
      auto [e, inserted] = image_exists.try_emplace(r.image, false);
      if (inserted) {
        std::error_code ec;
        e->second = std::filesystem::is_regular_file(options_.images / r.image, ec);
      }
      if (!e->second) {
        bad_.report(where, "Flikr30kID", "missing_image",
                    fmt::format("image file '{}' does not exist",
                                (options_.images / r.image).string()));
        continue;
      }
    }
    records_.push_back(std::move(r));
  }
}

Sample SnliVeDataset::get(int64_t index, uint64_t seed) const {
  TORCH_CHECK(index >= 0 && index < size(), "index ", index, " out of range [0, ", size(), ")");
  const Record& r = records_[index];
  Sample s;
  s.source = fmt::format("{}:{}", options_.file.string(), r.line);
  const auto path = data::resolve_image_path(options_.images, r.image, s.source);
  const cv::Mat rgb = data::decode_image(path, s.source, bad_);
  auto transformed = transform_.apply(rgb, torch::Tensor(), seed);
  s.image = std::move(transformed.image);
  s.image_id = r.image_id;
  s.orig_height = rgb.rows;
  s.orig_width = rgb.cols;
  const Encoding encoding = options_.tokenizer->encode(
      transformed.flipped ? data::swap_words(r.hypothesis, options_.flip_swap) : r.hypothesis);
  s.input_ids = encoding.input_ids;
  s.segment_ids = encoding.segment_ids;
  s.label = r.label;
  s.record_id = r.line;
  return s;
}

LabelSpace SnliVeDataset::labels() const { return {"classification", kLabels, 0}; }

std::unique_ptr<Evaluator> SnliVeDataset::evaluator() const { return make_evaluator(labels()); }

namespace {

class SnliVeResultWriter : public ResultWriter {
 public:
  // records: line -> (pairID, image file name).
  SnliVeResultWriter(std::string split,
                     std::unordered_map<int64_t, std::pair<std::string, std::string>> records)
      : split_(std::move(split)), records_(std::move(records)) {}

  void add(const Predictions& predictions, const Batch& batch) override {
    for (const auto& [line, label] : predicted_labels(predictions, batch)) {
      const auto it = records_.find(line);
      if (it == records_.end() || label < 0 || label >= static_cast<int64_t>(kLabels.size())) {
        throw TrainingError(fmt::format("task '{}': no record at line {} or label {} outside the "
                                        "{} labels", batch.task, line, label, kLabels.size()));
      }
      const auto& [pair_id, image] = it->second;
      nlohmann::ordered_json row = {{"line", line}};
      if (!pair_id.empty()) row["pairID"] = pair_id;
      row["image"] = image;
      row["prediction"] = kLabels[label];
      text_ += json_text(row) + "\n";
    }
  }

  std::vector<std::filesystem::path> write(const std::filesystem::path& dir,
                                           const std::string& task) const override {
    const auto file = dir / fmt::format("{}_{}_results.jsonl", task, split_);
    write_result_file(file, text_);
    return {file};
  }

 private:
  std::string split_;
  std::unordered_map<int64_t, std::pair<std::string, std::string>> records_;
  std::string text_;
};

}  // namespace

std::unique_ptr<ResultWriter> SnliVeDataset::result_writer() const {
  std::unordered_map<int64_t, std::pair<std::string, std::string>> records;
  for (const auto& r : records_) records.emplace(r.line, std::make_pair(r.pair_id, r.image));
  return std::make_unique<SnliVeResultWriter>(options_.split, std::move(records));
}

}  // namespace unitrain::snli_ve

// The snli_ve dataset plugin: reader, options and export.
#include "snli_ve_dataset.h"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>
#include <opencv2/core.hpp>

#include "unitrain/json_util.h"
#include "unitrain/json_text.h"
#include "unitrain/metrics.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_embed_readme)

namespace unitrain::snli_ve {

const std::vector<std::string> kLabels = {"entailment", "neutral", "contradiction"};

namespace {

constexpr const char* kDefaultsJson = R"({
  "split": "train",
  "root": "",
  "files": {},
  "images": "flickr30k_images",
  "tokenizer": {},
  "max_length": 25,
  "image": {"min_size": 800, "max_size": 1333, "train_min_sizes": [], "hflip": 0.0,
            "augment": null, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "flip_swap": [["left", "right"]],
  "on_bad_record": "error",
  "check_images": true
})";


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

SnliVeOptions snli_ve_options_from_json(const nlohmann::json& j, const std::string& where) {
  SnliVeOptions o;
  o.split = j.at("split").get<std::string>();
  const std::string root = j.at("root").get<std::string>();
  o.file = data::under_root(root, data::per_split(j.at("files"), o.split,
                                                  fmt::format("snli_ve_{}.jsonl", o.split),
                                                  where + "/files"));
  o.images = data::under_root(root, j.at("images").get<std::string>());
  const int64_t max_length = j.at("max_length").get<int64_t>();
  if (max_length < 3) {
    throw ConfigError(fmt::format("{}/max_length: must be >= 3, found {}", where, max_length));
  }
  auto tokenizer = tokenizer_options_from_json(j.at("tokenizer"), where + "/tokenizer");
  tokenizer.max_length = max_length;
  o.tokenizer = make_tokenizer(tokenizer);
  data::ImageTransformOptions image;
  image.augment = data::is_train_split(o.split);
  o.image = data::image_transform_options_from_json(j.at("image"), image, where + "/image");
  o.flip_swap = data::word_pairs_from_json(j.at("flip_swap"), where + "/flip_swap");
  o.on_bad_record = data::on_bad_record_from_json(j.at("on_bad_record"), where + "/on_bad_record");
  o.check_images = j.at("check_images").get<bool>();
  return o;
}

std::shared_ptr<Dataset> make_snli_ve(const nlohmann::json& options) {
  const auto merged = merge_checked(nlohmann::json::parse(kDefaultsJson), options, "snli_ve", "");
  return std::make_shared<SnliVeDataset>(snli_ve_options_from_json(merged, "snli_ve"));
}

}  // namespace unitrain::snli_ve

UNITRAIN_PLUGIN(kSnliVe, unitrain::Dataset, "dataset", "snli_ve", "0.1.0",
                "SNLI-VE visual entailment (Flickr30k image, hypothesis, 3 labels)",
                unitrain::snli_ve::kDefaultsJson, kReadme,
                unitrain::snli_ve::make_snli_ve);
UNITRAIN_EXPORT_PLUGINS(&kSnliVe);

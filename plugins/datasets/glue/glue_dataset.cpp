// The GLUE reader (the plugin entry, options and export: plugin.cpp).
#include "glue_dataset.h"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "unitrain/metrics.h"

namespace unitrain::glue {
namespace {

std::string joined(const std::vector<std::string_view>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ", ") + std::string(x);
  return s;
}

// Index of `name` in the header, -1 if absent.
int64_t column(const std::vector<std::string_view>& header, const std::string& name) {
  auto it = std::find(header.begin(), header.end(), name);
  return it == header.end() ? -1 : it - header.begin();
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

}  // namespace

GlueDataset::GlueDataset(GlueOptions options)
    : options_(std::move(options)),
      task_(find_glue_task(options_.task)),
      bad_(options_.on_bad_record) {
  if (!task_) {
    throw ConfigError(fmt::format("glue: unknown task '{}' (known: {})", options_.task,
                                  glue_task_names()));
  }
  if (!options_.tokenizer) throw ConfigError("glue: no tokenizer");
  const std::string file = options_.file.string();
  const std::string text = data::read_text_file(options_.file, "GLUE TSV file");
  const auto lines = data::split_lines(text);
  if (lines.empty()) throw DataError(fmt::format("{}: empty file (expected a header row)", file));

  std::string_view header_line = lines[0];
  if (header_line.substr(0, 3) == "\xEF\xBB\xBF") header_line.remove_prefix(3);  // UTF-8 BOM
  const auto header = data::split_tabs(header_line);
  const int64_t col_a = column(header, task_->text_a);
  const int64_t col_b = task_->text_b.empty() ? -1 : column(header, task_->text_b);
  const int64_t col_label = column(header, task_->label);
  // The row identity of a submission: GLUE's "index" column (QQP: "id"); files without
  // one (SST-2's train and dev) are numbered by row.
  int64_t col_index = column(header, "index");
  if (col_index < 0) col_index = column(header, "id");
  for (const auto& [col, name] : {std::pair{col_a, task_->text_a}, {col_b, task_->text_b}}) {
    if (col < 0 && !name.empty()) {
      throw DataError(fmt::format("{}:1: header has no column '{}' for task {} (columns: {})",
                                  file, name, task_->name, joined(header)));
    }
  }
  // GLUE's test files (test, test_matched, ...) carry no labels; any other split
  // without them would train or evaluate on label -1.
  has_labels_ = col_label >= 0;
  if (!has_labels_ && options_.split.rfind("test", 0) != 0) {
    throw DataError(fmt::format(
        "{}:1: header has no label column '{}' for task {} (columns: {}); only a test split "
        "(a split name starting with \"test\") may leave it out, this is split '{}'",
        file, task_->label, task_->name, joined(header), options_.split));
  }

  // Blank lines at the end (an editor's extra newline) are not rows.
  size_t end = lines.size();
  while (end > 1 && is_blank(lines[end - 1])) --end;
  for (size_t i = 1; i < end; ++i) {
    const std::string where = fmt::format("{}:{}", file, i + 1);
    const auto fields = data::split_tabs(lines[i]);
    if (fields.size() != header.size()) {
      const bool fewer = fields.size() < header.size();
      bad_.report(where, "", fewer ? "missing_fields" : "extra_fields",
                  fmt::format("{} tab-separated fields, the header has {} ({})", fields.size(),
                              header.size(), fewer ? "missing fields" : "a tab inside a field?"));
      continue;
    }
    Record r;
    r.line = static_cast<int64_t>(i + 1);
    r.index = col_index >= 0 ? std::string(fields[col_index]) : std::to_string(i - 1);
    r.a = std::string(fields[col_a]);
    if (col_b >= 0) r.b = std::string(fields[col_b]);
    if (is_blank(r.a) || (col_b >= 0 && is_blank(r.b))) {
      bad_.report(where, is_blank(r.a) ? task_->text_a : task_->text_b, "empty_text",
                  "the text is empty");
      continue;
    }
    if (has_labels_) {
      const std::string label(fields[col_label]);
      if (std::find(task_->unlabeled.begin(), task_->unlabeled.end(), label) !=
          task_->unlabeled.end()) {
        bad_.count("no_gold_label");
        continue;
      }
      auto it = std::find(task_->labels.begin(), task_->labels.end(), label);
      if (it == task_->labels.end()) {
        std::string known;
        for (const auto& l : task_->labels) known += (known.empty() ? "" : ", ") + l;
        bad_.report(where, task_->label, "unknown_label",
                    fmt::format("'{}' is not a {} label ({})", label, task_->name, known));
        continue;
      }
      r.label = it - task_->labels.begin();
    }
    records_.push_back(std::move(r));
  }
}

Sample GlueDataset::get(int64_t index, uint64_t /*seed*/) const {
  TORCH_CHECK(index >= 0 && index < size(), "index ", index, " out of range [0, ", size(), ")");
  const Record& r = records_[index];
  Sample s;
  s.source = fmt::format("{}:{}", options_.file.string(), r.line);
  const Encoding encoding =
      task_->text_b.empty() ? options_.tokenizer->encode(r.a) : options_.tokenizer->encode(r.a, &r.b);
  s.input_ids = encoding.input_ids;
  s.segment_ids = encoding.segment_ids;
  s.label = r.label;
  s.record_id = r.line;
  return s;
}

LabelSpace GlueDataset::labels() const { return {"classification", task_->labels, 0}; }

std::unique_ptr<Evaluator> GlueDataset::evaluator() const {
  EvaluatorOptions options;
  if (task_->f1_positive >= 0) options.f1_positive = task_->f1_positive;
  return make_evaluator(labels(), options);
}

std::string GlueDataset::submission_name() const {
  if (task_->name != "mnli") return task_->submission;
  // MNLI has two: matched (dev_matched / test_matched) and mismatched.
  const std::string file = options_.file.filename().string();
  const bool mismatched = file.find("mismatched") != std::string::npos ||
                          (file.find("matched") == std::string::npos &&
                           options_.split.find("mismatched") != std::string::npos);
  return task_->submission + (mismatched ? "-mm" : "-m");
}

namespace {

class GlueResultWriter : public ResultWriter {
 public:
  GlueResultWriter(std::string name, std::vector<std::string> labels,
                   std::unordered_map<int64_t, std::string> index_of_line)
      : name_(std::move(name)), labels_(std::move(labels)), index_of_line_(std::move(index_of_line)) {}

  void add(const Predictions& predictions, const Batch& batch) override {
    for (const auto& [line, label] : predicted_labels(predictions, batch)) {
      const auto it = index_of_line_.find(line);
      if (it == index_of_line_.end() || label < 0 || label >= static_cast<int64_t>(labels_.size())) {
        throw TrainingError(fmt::format("task '{}': no record at line {} or label {} outside the "
                                        "{} labels", batch.task, line, label, labels_.size()));
      }
      text_ += it->second + "\t" + labels_[label] + "\n";
    }
  }

  std::vector<std::filesystem::path> write(const std::filesystem::path& dir,
                                           const std::string& /*task*/) const override {
    const auto file = dir / (name_ + ".tsv");
    write_result_file(file, "index\tprediction\n" + text_);
    return {file};
  }

 private:
  std::string name_;
  std::vector<std::string> labels_;
  std::unordered_map<int64_t, std::string> index_of_line_;
  std::string text_;
};

}  // namespace

std::unique_ptr<ResultWriter> GlueDataset::result_writer() const {
  std::unordered_map<int64_t, std::string> index_of_line;
  for (const auto& r : records_) index_of_line.emplace(r.line, r.index);
  return std::make_unique<GlueResultWriter>(submission_name(), task_->labels, std::move(index_of_line));
}

}  // namespace unitrain::glue

// Helpers shared by dataset readers: the bad-record policy, reading JSON files with
// line/column errors, and splitting TSV rows.
//
// Every record error names where (file and line, or file and record index), the field
// and the reason: "instances_val2017.json: annotations[3] (id 17): field 'bbox': width
// must be > 0, found -2".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"
#include "unitrain/options.h"

namespace unitrain::data {

// What a reader does with a record it cannot use (JSON key "on_bad_record").
enum class OnBadRecord {
  kError,  // "error": stop with a DataError naming file, record, field and reason
  kSkip,   // "skip": leave the record out and count it by reason
};

// Parses "error" | "skip"; `where` prefixes the ConfigError ("file.json:/pointer").
OnBadRecord on_bad_record_from_json(const nlohmann::json& value, const std::string& where);
// "error" | "skip" (an OptionSet field of this type reads and writes it so).
inline void to_json(nlohmann::json& j, OnBadRecord policy) {
  j = policy == OnBadRecord::kSkip ? "skip" : "error";
}

// A record that turns out bad when it is read (a corrupt, truncated or missing image),
// long after the split was opened. Thrown by Dataset::get() through BadRecords::at_read;
// the loader then applies the policy the dataset was given: under "skip" it leaves the
// record out (training: takes the next readable record of the split instead, so
// batches stay full and the choice is the same on every run and resume; evaluation:
// drops it from the batch) and counts it by `reason()`; under "error" the run stops
// with this message, which names the file.
class BadRecordError : public DataError {
 public:
  BadRecordError(const std::string& message, std::string reason, bool skip)
      : DataError(message), reason_(std::move(reason)), skip_(skip) {}
  const std::string& reason() const { return reason_; }
  // True under "on_bad_record": "skip".
  bool skip() const { return skip_; }

 private:
  std::string reason_;
  bool skip_;
};

// Applies the policy and counts skipped records by reason. Reasons are short
// snake_case keys ("missing_fields", "unknown_label"); `unitrain data stats` prints them.
class BadRecords {
 public:
  explicit BadRecords(OnBadRecord policy = OnBadRecord::kError) : policy_(policy) {}

  OnBadRecord policy() const { return policy_; }

  // A bad record: throws DataError("<where>: field '<field>': <message>") (without the
  // field part when `field` is empty) under
  // kError, else counts `reason` and returns (the caller then skips the record).
  void report(const std::string& where, const std::string& field, const std::string& reason,
              const std::string& message);
  // A record found bad when it is read: throws BadRecordError("<where>: <message>")
  // carrying the policy (under kError the message says how to skip such records).
  [[noreturn]] void at_read(const std::string& where, const std::string& reason,
                            const std::string& message) const;
  // A record left out by design whatever the policy (MNLI gold label "-", iscrowd).
  void count(const std::string& reason, int64_t n = 1);

  // {"reason": count, ...}
  nlohmann::json counts() const;
  int64_t total() const;

 private:
  OnBadRecord policy_;
  std::map<std::string, int64_t> counts_;
};

// Reads and parses a JSON file. DataError on a missing file ("what" names its role:
// "annotations file") and on syntax errors with "file:line:column: message".
nlohmann::json read_json_file(const std::filesystem::path& file, const std::string& what);

// 1-based line and column of byte `offset` in `text`.
std::pair<int64_t, int64_t> line_and_column(std::string_view text, size_t offset);

// Reads a whole text file (DataError naming `what` and the path if it cannot be read).
std::string read_text_file(const std::filesystem::path& file, const std::string& what);

// Splits a text into lines (handles "\n" and "\r\n"; a final newline adds no line).
std::vector<std::string_view> split_lines(std::string_view text);

// Splits one TSV row on tabs only: quotes are ordinary characters (QUOTE_NONE).
std::vector<std::string_view> split_tabs(std::string_view line);

// `path` when absolute, else `root / path` (root empty: path as given).
std::filesystem::path under_root(const std::string& root, const std::string& path);

// A per-split option ({"train": "a.json", "val": "b.json"}): the entry for `split`,
// else `fallback`. ConfigError (prefixed by `where`) unless `map` is an object of strings.
std::string per_split(const nlohmann::json& map, const std::string& split,
                      const std::string& fallback, const std::string& where);

// Fetches a required member of a JSON record with the expected type, else reports a
// bad record through `bad` (returns nullptr when skipped). `type` is checked with
// nlohmann's is_* predicates: "string", "number", "integer", "array", "object".
const nlohmann::json* field(const nlohmann::json& record, const std::string& key,
                            const std::string& type, const std::string& where,
                            BadRecords& bad);

}  // namespace unitrain::data

// An `on_bad_record` option declares its field as OnBadRecord: `"error"` or `"skip"`.
template <>
struct unitrain::options::detail::Kind<unitrain::data::OnBadRecord> {
  static std::string doc() { return "string"; }
  static std::string expected() { return "\"error\" or \"skip\""; }
  static void read(const nlohmann::json& j, const std::string& path,
                   unitrain::data::OnBadRecord& out) {
    out = unitrain::data::on_bad_record_from_json(j, path);
  }
};

#include "unitrain/data/records.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "unitrain/json_util.h"
#include "unitrain/json_text.h"

namespace unitrain::data {

OnBadRecord on_bad_record_from_json(const nlohmann::json& value, const std::string& where) {
  if (value.is_string()) {
    const auto s = value.get<std::string>();
    if (s == "error") return OnBadRecord::kError;
    if (s == "skip") return OnBadRecord::kSkip;
  }
  throw ConfigError(fmt::format("{}: on_bad_record must be \"error\" or \"skip\", found {}",
                                where, json_text(value)));
}

void BadRecords::report(const std::string& where, const std::string& field,
                        const std::string& reason, const std::string& message) {
  if (policy_ == OnBadRecord::kError) {
    const std::string what = field.empty() ? message : fmt::format("field '{}': {}", field, message);
    throw DataError(fmt::format(
        "{}: {} (set \"on_bad_record\": \"skip\" to leave such records out)", where, what));
  }
  ++counts_[reason];
}

void BadRecords::at_read(const std::string& where, const std::string& reason,
                         const std::string& message) const {
  if (policy_ == OnBadRecord::kError) {
    throw BadRecordError(
        fmt::format("{}: {} (set \"on_bad_record\": \"skip\" to leave such records out)",
                    where, message),
        reason, /*skip=*/false);
  }
  throw BadRecordError(fmt::format("{}: {}", where, message), reason, /*skip=*/true);
}

void BadRecords::count(const std::string& reason, int64_t n) { counts_[reason] += n; }

nlohmann::json BadRecords::counts() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [reason, n] : counts_) j[reason] = n;
  return j;
}

int64_t BadRecords::total() const {
  int64_t n = 0;
  for (const auto& entry : counts_) n += entry.second;
  return n;
}

std::pair<int64_t, int64_t> line_and_column(std::string_view text, size_t offset) {
  int64_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

std::string read_text_file(const std::filesystem::path& file, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw DataError(fmt::format("{} '{}' does not exist or is not a regular file", what,
                                file.string()));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError(fmt::format("cannot open {} '{}'", what, file.string()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw DataError(fmt::format("error while reading {} '{}'", what, file.string()));
  return buffer.str();
}

nlohmann::json read_json_file(const std::filesystem::path& file, const std::string& what) {
  const std::string text = read_text_file(file, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, out_of_range (1e999)
    const auto [line, column] = line_and_column(text, json_error_offset(text, e));
    throw DataError(fmt::format("{}:{}:{}: malformed JSON in {}: {}", file.string(), line,
                                column, what, e.what()));
  }
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

std::filesystem::path under_root(const std::string& root, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_absolute() || root.empty()) return p;
  return std::filesystem::path(root) / p;
}

std::string per_split(const nlohmann::json& map, const std::string& split,
                      const std::string& fallback, const std::string& where) {
  if (map.is_null()) return fallback;
  if (!map.is_object()) {
    throw ConfigError(fmt::format("{}: expected an object {{\"<split>\": \"<path>\"}}, found {}",
                                  where, json_text(map)));
  }
  for (const auto& [key, value] : map.items()) {
    if (!value.is_string()) {
      throw ConfigError(fmt::format("{}/{}: expected a string, found {}", where, key, json_text(value)));
    }
  }
  auto it = map.find(split);
  return it == map.end() ? fallback : it->get<std::string>();
}

const nlohmann::json* field(const nlohmann::json& record, const std::string& key,
                            const std::string& type, const std::string& where,
                            BadRecords& bad) {
  if (!record.is_object()) {
    bad.report(where, key, "not_an_object",
               fmt::format("the record must be a JSON object, found {}", record.type_name()));
    return nullptr;
  }
  auto it = record.find(key);
  if (it == record.end()) {
    bad.report(where, key, "missing_field", "missing");
    return nullptr;
  }
  bool ok = false;
  if (type == "string") ok = it->is_string();
  else if (type == "number") ok = it->is_number();
  else if (type == "integer") ok = it->is_number_integer();
  else if (type == "array") ok = it->is_array();
  else if (type == "object") ok = it->is_object();
  if (!ok) {
    bad.report(where, key, "wrong_type",
               fmt::format("expected {}, found {} {}", type, it->type_name(),
                           shorten(json_text(*it), 60)));
    return nullptr;
  }
  return &*it;
}

}  // namespace unitrain::data

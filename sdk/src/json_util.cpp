// JSON helpers shared by experiment loading and plugin options: parsing with
// file:line:column errors, JSON pointers, "did you mean" ordering and checked merging.
#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "unitrain/json_util.h"
#include "unitrain/json_text.h"
#include "unitrain/options.h"

namespace unitrain {
namespace fs = std::filesystem;

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1u : 0u)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

using options::json_type_name;

std::string short_dump(const nlohmann::json& j) {
  std::string text = json_text(j);
  text = shorten(text, 60);
  return text;
}

// Whether `value` may stand where `def` is the default.
bool compatible(const nlohmann::json& def, const nlohmann::json& value) {
  if (def.is_null()) return true;
  if (def.is_boolean()) return value.is_boolean();
  if (def.is_number_integer()) return value.is_number_integer();
  if (def.is_number()) return value.is_number();
  if (def.is_string()) return value.is_string();
  if (def.is_array()) return value.is_array();
  if (def.is_object()) return value.is_object();
  return true;
}

std::string expected_name(const nlohmann::json& def) {
  if (def.is_number_integer()) return "an integer";
  return json_type_name(def);
}

// Records where the parser gave up; accepts everything else.
class ErrorPosition : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    offset = position;
    return false;
  }

  size_t offset = 0;
};

}  // namespace

size_t json_error_offset(std::string_view text, const nlohmann::json::exception& e) {
  // parse_error::byte is 1-based and points just past the offending character.
  if (const auto* p = dynamic_cast<const nlohmann::json::parse_error*>(&e)) {
    return p->byte > 0 ? p->byte - 1 : 0;
  }
  ErrorPosition position;
  nlohmann::json::sax_parse(text.begin(), text.end(), &position);
  // The position is just past the offending token; point at its last character.
  return position.offset > 0 ? position.offset - 1 : 0;
}

nlohmann::json parse_json_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open file", file.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // Line and column of the byte where parsing stopped (1-based).
    size_t line = 1, column = 1;
    const size_t stop = std::min<size_t>(json_error_offset(text, e), text.size());
    for (size_t i = 0; i < stop; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error
    // ..." or "[json.exception.out_of_range.406] number overflow parsing '1e999'".
    std::string what = e.what();
    const auto parse = what.find("parse error");
    auto detail = parse == std::string::npos ? what.find("] ") : what.find(": ", parse);
    if (detail != std::string::npos) what = what.substr(detail + 2);
    throw ConfigError(
        fmt::format("{}:{}:{}: JSON syntax error: {}", file.string(), line, column, what));
  }
}

std::string pointer_join(const std::string& pointer, const std::string& key) {
  std::string escaped;
  for (char c : key) {
    if (c == '~') {
      escaped += "~0";
    } else if (c == '/') {
      escaped += "~1";
    } else {
      escaped += c;
    }
  }
  return pointer + "/" + escaped;
}

std::vector<std::string> nearest_first(const std::string& name, std::vector<std::string> candidates) {
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const std::string& a, const std::string& b) {
                     return edit_distance(name, a) < edit_distance(name, b);
                   });
  return candidates;
}

nlohmann::json merge_checked_located(const nlohmann::json& defaults, const nlohmann::json& value,
                                     const JsonLocator& where, const std::string& pointer) {
  if (!value.is_object()) {
    throw ConfigError(fmt::format("{}: expected an object of options, found {} {}", where(pointer),
                                  json_type_name(value), short_dump(value)));
  }
  nlohmann::json merged = defaults;
  for (const auto& [key, item] : value.items()) {
    const std::string item_pointer = pointer_join(pointer, key);
    if (!defaults.contains(key)) {
      std::vector<std::string> keys;
      for (const auto& [k, v] : defaults.items()) keys.push_back(k);
      throw ConfigError(fmt::format(
          "{}: unknown key '{}'; valid keys: {}", where(item_pointer), key,
          keys.empty() ? std::string("(none)")
                       : fmt::format("{}", fmt::join(nearest_first(key, keys), ", "))));
    }
    const auto& def = defaults.at(key);
    if (!compatible(def, item)) {
      throw ConfigError(fmt::format("{}: expected {}, found {} {}", where(item_pointer),
                                    expected_name(def), json_type_name(item), short_dump(item)));
    }
    if (def.is_object() && !def.empty()) {
      merged[key] = merge_checked_located(def, item, where, item_pointer);
    } else {
      merged[key] = item;
    }
  }
  return merged;
}

nlohmann::json merge_checked(const nlohmann::json& defaults, const nlohmann::json& value,
                             const std::string& file, const std::string& pointer) {
  return merge_checked_located(defaults, value, [&](const std::string& p) {
    return file + ":" + (p.empty() ? "/" : p);
  }, pointer);
}

}  // namespace unitrain

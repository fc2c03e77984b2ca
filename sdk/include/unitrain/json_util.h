// JSON helpers for experiment files and plugin options: parsing with file:line:column
// errors, JSON pointers, "did you mean" ordering and merging options into their
// defaults with a message that names the offending key. Defined in json_util.cpp.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"

namespace unitrain {

// Parses JSON text, turning syntax errors (and numbers out of range, `1e999`) into
// ConfigError "file:line:column: ...".
nlohmann::json parse_json_file(const std::filesystem::path& file);

// The 0-based byte offset in `text` where nlohmann::json::parse(text) stopped with `e`.
// A parse_error carries it; other exceptions of the parser (out_of_range for a number
// that overflows a double) do not, so the text is scanned again to find it.
size_t json_error_offset(std::string_view text, const nlohmann::json::exception& e);

// Appends "/key" to a JSON pointer, escaping '~' and '/'.
std::string pointer_join(const std::string& pointer, const std::string& key);

// The names in `candidates` sorted by edit distance to `name` (nearest first).
std::vector<std::string> nearest_first(const std::string& name,
                                       std::vector<std::string> candidates);

// Checks `value` against `defaults` (same keys, compatible JSON types, recursively
// for objects whose default is non-empty) and returns defaults merged with value.
// `where` is the file:pointer prefix of the block for messages.
nlohmann::json merge_checked(const nlohmann::json& defaults, const nlohmann::json& value,
                             const std::string& file, const std::string& pointer);
// The same, with `where(pointer)` giving the "origin:/pointer" prefix of each message
// (the experiment's merge_checked locates keys through its includes and --set values).
using JsonLocator = std::function<std::string(const std::string& pointer)>;
nlohmann::json merge_checked_located(const nlohmann::json& defaults, const nlohmann::json& value,
                                     const JsonLocator& where, const std::string& pointer);

}  // namespace unitrain

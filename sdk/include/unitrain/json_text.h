// JSON text and message snippets that never throw on invalid UTF-8. Strings in JSON
// values come from user files, paths and command-line arguments; nlohmann's dump()
// throws type_error 316 on a byte sequence that is not UTF-8, which would lose a result
// file or an error message. These replace such sequences with U+FFFD instead.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace unitrain {

// j.dump(indent) with invalid UTF-8 replaced by U+FFFD; -1: one line.
inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}
// The same for an ordered_json, keys in their insertion order.
inline std::string json_text(const nlohmann::ordered_json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// The longest prefix of `text` of at most `max_bytes` bytes that ends on a UTF-8
// code-point boundary (a cut never splits a multi-byte character).
inline std::string utf8_prefix(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Step back over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

// `text` cut to at most `max_bytes` bytes on a code-point boundary, ending in "..." when
// cut: for quoting user values in messages.
inline std::string shorten(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  return utf8_prefix(text, max_bytes > 3 ? max_bytes - 3 : 0) + "...";
}

}  // namespace unitrain

// Helpers for a plugin's options_from_json: reading one key into an Options field with
// a message that names the key's JSON path.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"

namespace unitrain::options {

// "where/key", or "key" when `where` is empty.
inline std::string key_path(const std::string& where, const char* key) {
  return where.empty() ? std::string(key) : where + "/" + key;
}

// Reads j[key] into `field` when present; ConfigError on a JSON type mismatch.
template <typename T>
void read(const nlohmann::json& j, const std::string& where, const char* key, T& field) {
  if (!j.contains(key)) return;
  try {
    field = j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(key_path(where, key) + ": wrong type, got " + j.at(key).dump());
  }
}

}  // namespace unitrain::options

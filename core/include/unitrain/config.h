// Experiment files: JSON with includes, command-line overrides and a schema.
//
// Resolution order: the file's "include" list (paths relative to the including file,
// each resolved recursively, later ones win), then the file itself, then every
// `--set a.b.c=value` override in order. Objects merge deeply; any other value
// replaces. The origin of every value is remembered, so an error points at the file
// that wrote the offending key: `x.json:/model/heads/vqa2/hidden_dim`.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"

namespace unitrain {

class Registry;

struct Experiment {
  std::filesystem::path file;  // the top-level experiment file
  nlohmann::json json;         // fully resolved ("include" removed)
  // JSON pointer -> file (or "--set") that last wrote it.
  std::map<std::string, std::string> origin;

  // The file (or "--set KEY=...") that wrote the value at `pointer`, or its nearest
  // written ancestor; the experiment's own file when none is recorded.
  std::string origin_of(const std::string& pointer) const;
  // "origin:/pointer" for messages about the value at `pointer`.
  std::string where(const std::string& pointer) const;
};

// Reads, includes and overrides (ConfigError on syntax errors with file:line:column,
// missing include files, include cycles, malformed overrides). Does not validate.
Experiment load_experiment(const std::filesystem::path& file,
                           const std::vector<std::string>& overrides = {});

// Checks the experiment against its schema (unknown keys, types, required keys) and,
// when a registry is given, that every named plugin exists and every options block is
// valid for it. Fills in schema defaults in `experiment.json`. Throws ConfigError.
void validate_experiment(Experiment& experiment, const Registry* registry);

// Defaults of the "training" and "data" blocks (the keys the trainer reads).
nlohmann::json training_defaults();
nlohmann::json data_defaults();
// Defaults of the "log" block: what a run writes besides metrics.jsonl (docs/report.md).
nlohmann::json log_defaults();

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
// The same, locating each key through the experiment's origins (includes, --set).
nlohmann::json merge_checked(const nlohmann::json& defaults, const nlohmann::json& value,
                             const Experiment& experiment, const std::string& pointer);

}  // namespace unitrain

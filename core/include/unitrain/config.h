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
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"
#include "unitrain/json_util.h"

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

// merge_checked (json_util.h), locating each key through the experiment's origins
// (includes, --set).
nlohmann::json merge_checked(const nlohmann::json& defaults, const nlohmann::json& value,
                             const Experiment& experiment, const std::string& pointer);

}  // namespace unitrain

// Options of the vqa2 plugin (JSON keys: README.md).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "vqa2_dataset.h"

namespace unitrain::vqa {

// `j` holds every key of the defaults (the host merged them). Resolves the standard
// VQAv2 file names under "root", builds the tokenizer and the answer vocabulary.
Vqa2Options vqa2_options_from_json(const nlohmann::json& j, const std::string& where);
const char* vqa2_defaults_json();
// The plugin factory (options merged over the defaults again, for direct callers).
std::shared_ptr<Dataset> make_vqa2(const nlohmann::json& options);

}  // namespace unitrain::vqa

// The vqa2 plugin's options (declared in plugin.cpp; the table is in README.md).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "vqa2_dataset.h"

namespace unitrain::vqa {

// The dataset block `j` (keys left out keep their defaults) read and resolved: the
// standard VQAv2 file names under "root", the tokenizer and the answer vocabulary built.
// ConfigError naming the key under `where`.
Vqa2Options vqa2_options_from_json(const nlohmann::json& j, const std::string& where);
// The plugin factory.
std::shared_ptr<Dataset> make_vqa2(const nlohmann::json& options);

}  // namespace unitrain::vqa

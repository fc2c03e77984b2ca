// Experiment files: includes, overrides, origins and the schema check.
#include <algorithm>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "unitrain/config.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"

namespace unitrain {
namespace fs = std::filesystem;

namespace {

using json = nlohmann::json;

// Records `file` as the origin of `value` at `pointer` and of everything below it.
void record_origin(const json& value, const std::string& pointer, const std::string& file,
                   std::map<std::string, std::string>& origin) {
  origin[pointer] = file;
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      record_origin(item, pointer_join(pointer, key), file, origin);
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      record_origin(value[i], pointer + "/" + std::to_string(i), file, origin);
    }
  }
}

// Forgets the origins of `pointer` and of everything below it.
void erase_origins(const std::string& pointer, std::map<std::string, std::string>& origin) {
  origin.erase(pointer);
  auto it = origin.lower_bound(pointer + "/");
  while (it != origin.end() && it->first.compare(0, pointer.size() + 1, pointer + "/") == 0) {
    it = origin.erase(it);
  }
}

// `value` without the object members that are null, at any depth (arrays kept as they
// are): a null removes a key, so it never stays in the resolved experiment.
json without_nulls(const json& value) {
  if (!value.is_object()) return value;
  json out = json::object();
  for (const auto& [key, item] : value.items()) {
    if (!item.is_null()) out[key] = without_nulls(item);
  }
  return out;
}

// Objects merge key by key; null removes the key (an included component, a default
// block); anything else replaces. Origins follow the overlay.
void merge_into(json& base, const json& overlay, const std::string& pointer,
                std::map<std::string, std::string>& origin,
                const std::map<std::string, std::string>& overlay_origin) {
  for (const auto& [key, item] : overlay.items()) {
    const std::string p = pointer_join(pointer, key);
    if (item.is_null()) {
      base.erase(key);
      erase_origins(p, origin);
    } else if (base.contains(key) && base[key].is_object() && item.is_object()) {
      merge_into(base[key], item, p, origin, overlay_origin);
      origin[p] = overlay_origin.count(p) ? overlay_origin.at(p) : origin[p];
    } else {
      // Drop stale origins below a replaced value, then take the overlay's.
      erase_origins(p, origin);
      base[key] = without_nulls(item);
      for (auto o = overlay_origin.lower_bound(p); o != overlay_origin.end(); ++o) {
        if (o->first != p && o->first.compare(0, p.size() + 1, p + "/") != 0) break;
        origin[o->first] = o->second;
      }
    }
  }
}

// Expands ${NAME} and ${NAME:-fallback} in a string value. EXPERIMENT_DIR is the folder
// of the file that wrote the value; other names come from the environment.
std::string expand_string(const std::string& text, const fs::path& file, const std::string& pointer) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    // Find the matching brace (fallbacks may nest ${...}).
    size_t depth = 0, end = i;
    for (; end < text.size(); ++end) {
      if (text.compare(end, 2, "${") == 0) {
        ++depth;
        ++end;
      } else if (text[end] == '}' && --depth == 0) {
        break;
      }
    }
    if (end >= text.size()) {
      throw ConfigError(fmt::format("{}:{}: unterminated '${{' in \"{}\"", file.string(), pointer, text));
    }
    const std::string inner = text.substr(i + 2, end - i - 2);
    const auto dash = inner.find(":-");
    const std::string name = inner.substr(0, dash);
    std::string value;
    if (name == "EXPERIMENT_DIR") {
      value = fs::absolute(file).parent_path().lexically_normal().string();
    } else if (const char* env = std::getenv(name.c_str()); env != nullptr && *env != '\0') {
      value = env;
    } else if (dash != std::string::npos) {
      value = expand_string(inner.substr(dash + 2), file, pointer);
    } else {
      throw ConfigError(fmt::format(
          "{}:{}: environment variable '{}' is not set (write ${{{}:-default}} for a fallback)",
          file.string(), pointer, name, name));
    }
    out += value;
    i = end + 1;
  }
  return out;
}

void expand_variables(json& value, const fs::path& file, const std::string& pointer) {
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text.find("${") != std::string::npos) value = expand_string(text, file, pointer);
  } else if (value.is_object()) {
    for (auto& [key, item] : value.items()) expand_variables(item, file, pointer_join(pointer, key));
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) expand_variables(value[i], file, pointer + "/" + std::to_string(i));
  }
}

struct Loaded {
  json value;
  std::map<std::string, std::string> origin;
};

Loaded load_with_includes(const fs::path& file, std::vector<fs::path>& stack) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(file, ec);
  if (std::find(stack.begin(), stack.end(), canonical) != stack.end()) {
    std::string chain;
    bool in_cycle = false;
    for (const auto& f : stack) {
      if (f == canonical) in_cycle = true;
      if (in_cycle) chain += f.filename().string() + " -> ";
    }
    throw ConfigError(fmt::format("{}: include cycle: {}{}", file.string(), chain,
                                  canonical.filename().string()));
  }
  json value = parse_json_file(file);
  if (!value.is_object()) {
    throw ConfigError(fmt::format("{}:/: an experiment must be a JSON object", file.string()));
  }
  expand_variables(value, file, "");
  stack.push_back(canonical);

  Loaded result{json::object(), {}};
  std::vector<std::string> includes;
  if (value.contains("include")) {
    const json& inc = value["include"];
    if (inc.is_string()) {
      includes.push_back(inc.get<std::string>());
    } else if (inc.is_array() && std::all_of(inc.begin(), inc.end(),
                                             [](const json& j) { return j.is_string(); })) {
      for (const auto& item : inc) includes.push_back(item.get<std::string>());
    } else {
      throw ConfigError(fmt::format("{}:/include: expected a file name or an array of file names",
                                    file.string()));
    }
    value.erase("include");
  }
  for (size_t i = 0; i < includes.size(); ++i) {
    fs::path included = file.parent_path() / includes[i];
    if (!fs::exists(included, ec)) {
      throw ConfigError(fmt::format("{}:/include/{}: included file '{}' not found (looked for '{}')",
                                    file.string(), i, includes[i], included.lexically_normal().string()));
    }
    Loaded part = load_with_includes(included.lexically_normal(), stack);
    merge_into(result.value, part.value, "", result.origin, part.origin);
  }
  std::map<std::string, std::string> own_origin;
  record_origin(value, "", file.string(), own_origin);
  merge_into(result.value, value, "", result.origin, own_origin);
  stack.pop_back();
  return result;
}

// `a.b.c=value`: value parsed as JSON when it parses, else taken as a string; `null`
// removes the key (nothing to do when it is absent).
void apply_override(json& root, std::map<std::string, std::string>& origin,
                    const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(fmt::format("--set '{}': expected KEY.PATH=VALUE", text));
  }
  const std::string path = text.substr(0, eq);
  const std::string raw = text.substr(eq + 1);
  json value;
  try {
    value = json::parse(raw);
  } catch (const json::exception&) {  // parse_error, or out_of_range for 1e999
    value = raw;
  }
  json* node = &root;
  std::string pointer;
  size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty()) throw ConfigError(fmt::format("--set '{}': empty key in '{}'", text, path));
    pointer = pointer_join(pointer, key);
    if (dot == std::string::npos) {
      if (value.is_null()) {
        node->erase(key);
        erase_origins(pointer, origin);
        return;
      }
      (*node)[key] = without_nulls(value);
      break;
    }
    if (value.is_null() && !node->contains(key)) return;
    json& child = (*node)[key];
    if (child.is_null()) child = json::object();
    if (!child.is_object()) {
      throw ConfigError(fmt::format("--set '{}': '{}' is {} , not an object", text,
                                    path.substr(0, dot), json_text(child)));
    }
    node = &child;
    start = dot + 1;
  }
  record_origin(value, pointer, "--set " + path, origin);
}

}  // namespace

std::string Experiment::origin_of(const std::string& pointer) const {
  std::string p = pointer;
  while (true) {
    auto it = origin.find(p);
    if (it != origin.end()) return it->second;
    if (p.empty()) return file.string();
    p = p.substr(0, p.rfind('/'));
  }
}

std::string Experiment::where(const std::string& pointer) const {
  return origin_of(pointer) + ":" + (pointer.empty() ? "/" : pointer);
}

Experiment load_experiment(const fs::path& file, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    throw ConfigError(fmt::format("experiment file not found: '{}'", file.string()));
  }
  std::vector<fs::path> stack;
  Loaded loaded = load_with_includes(file, stack);
  Experiment experiment;
  experiment.file = file;
  experiment.json = std::move(loaded.value);
  experiment.origin = std::move(loaded.origin);
  for (const auto& text : overrides) apply_override(experiment.json, experiment.origin, text);
  return experiment;
}

nlohmann::json merge_checked(const nlohmann::json& defaults, const nlohmann::json& value,
                             const Experiment& experiment, const std::string& pointer) {
  return merge_checked_located(defaults, value,
                               [&](const std::string& p) { return experiment.where(p); }, pointer);
}

}  // namespace unitrain

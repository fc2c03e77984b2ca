// One declaration per plugin option. A plugin lists its options once, each bound to a
// field of its Options struct, with a one-line meaning and optionally a rule:
//
//   const options::OptionSet<MyHeadOptions>& my_head_option_set() {
//     static const auto set = options::OptionSet<MyHeadOptions>()
//         .add(UNITRAIN_OPTION(in_dim), "width D of the decoder output", options::at_least(1))
//         .add(UNITRAIN_OPTION(loss), "the loss", options::one_of({"ce", "bce"}));
//     return set;
//   }
//
// and gets from it: the defaults JSON for UNITRAIN_PLUGIN (`defaults_json().c_str()`, valid
// for as long as the function-local static lives), `parse` (JSON -> Options, with errors
// naming the key's JSON path, what was expected and what was given), `to_json`, and the
// README's key table (`markdown()`). The default of each option is the value of its field
// in a prototype Options object (`MyHeadOptions()` unless one is given), i.e. what the
// struct itself says: the value is written once, next to the field.
//
// A nested block (a dataset's "image" or "tokenizer") is a group: a field whose own
// OptionSet declares its keys (`add_group`); the SDK's blocks ship their sets
// (image_transform_option_set(), tokenizer_option_set(), ...). Fields may be
// std::optional (JSON null = not set) or any JSON value (nlohmann::json). Plain structs
// bind their members with UNITRAIN_FIELD(member).
//
// UNITRAIN_EXPORT_OPTION_TABLES lets `unitrain plugins show NAME --options-markdown` and
// the README check (tests/plugins/option_tables_test.cpp) read the tables of a library.
#pragma once

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/errors.h"
#include "unitrain/json_text.h"

namespace unitrain::options {

// "where/key", or "key" when `where` is empty.
inline std::string key_path(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "/" + key;
}

// "an integer", "a string", ...: a JSON value's type as option messages name it (the
// host's check of options against the defaults says it the same way).
inline std::string json_type_name(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a number";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::object: return "an object";
    default: return "a value";
  }
}

namespace detail {

// The value as JSON text for a message, cut to 60 bytes (never throws on bad UTF-8).
inline std::string shown(const nlohmann::json& j) { return shorten(json_text(j), 60); }

[[noreturn]] inline void type_error(const nlohmann::json& given, const std::string& path,
                                    const std::string& expected) {
  throw ConfigError(path + ": expected " + expected + ", found " + json_type_name(given) + " " +
                    shown(given));
}

// What each C++ field type reads from JSON: `doc` names it in README tables,
// `expected` in error messages.
template <typename T, typename = void>
struct Kind;

template <typename T>
struct Kind<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static std::string doc() { return "int"; }
  static std::string expected() { return "an integer"; }
  static void read(const nlohmann::json& j, const std::string& path, T& out) {
    if (!j.is_number_integer()) type_error(j, path, expected());
    out = j.get<T>();
  }
};

template <typename T>
struct Kind<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static std::string doc() { return "float"; }
  static std::string expected() { return "a number"; }
  static void read(const nlohmann::json& j, const std::string& path, T& out) {
    if (!j.is_number()) type_error(j, path, expected());
    out = j.get<T>();
  }
};

template <>
struct Kind<bool> {
  static std::string doc() { return "bool"; }
  static std::string expected() { return "a boolean"; }
  static void read(const nlohmann::json& j, const std::string& path, bool& out) {
    if (!j.is_boolean()) type_error(j, path, expected());
    out = j.get<bool>();
  }
};

template <>
struct Kind<std::string> {
  static std::string doc() { return "string"; }
  static std::string expected() { return "a string"; }
  static void read(const nlohmann::json& j, const std::string& path, std::string& out) {
    if (!j.is_string()) type_error(j, path, expected());
    out = j.get<std::string>();
  }
};

// "an integer" -> "integers": the element's name inside "an array of ...".
inline std::string plural(std::string expected) {
  if (expected.rfind("an ", 0) == 0) expected = expected.substr(3);
  if (expected.rfind("a ", 0) == 0) expected = expected.substr(2);
  return expected + "s";
}

template <typename T>
struct Kind<std::vector<T>> {
  static std::string doc() { return "array of " + Kind<T>::doc() + "s"; }
  static std::string expected() { return "an array of " + plural(Kind<T>::expected()); }
  static void read(const nlohmann::json& j, const std::string& path, std::vector<T>& out) {
    if (!j.is_array()) type_error(j, path, expected());
    std::vector<T> values(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      Kind<T>::read(j[i], path + "/" + std::to_string(i), values[i]);
    }
    out = std::move(values);
  }
};

template <typename T>
struct Kind<std::map<std::string, T>> {
  static std::string doc() { return "object of " + Kind<T>::doc() + "s"; }
  static std::string expected() { return "an object of " + plural(Kind<T>::expected()); }
  static void read(const nlohmann::json& j, const std::string& path,
                   std::map<std::string, T>& out) {
    if (!j.is_object()) type_error(j, path, expected());
    std::map<std::string, T> values;
    for (const auto& [key, item] : j.items()) Kind<T>::read(item, key_path(path, key), values[key]);
    out = std::move(values);
  }
};

// A value that may be null: null reads as "not set" (std::nullopt).
template <typename T>
struct Kind<std::optional<T>> {
  static std::string doc() { return Kind<T>::doc() + " or null"; }
  static std::string expected() { return Kind<T>::expected() + " or null"; }
  static void read(const nlohmann::json& j, const std::string& path, std::optional<T>& out) {
    if (j.is_null()) {
      out.reset();
      return;
    }
    T value{};
    Kind<T>::read(j, path, value);
    out = std::move(value);
  }
};

// Any JSON value, kept as given (the plugin checks it, e.g. with a Rule's `check`).
template <>
struct Kind<nlohmann::json> {
  static std::string doc() { return "JSON"; }
  static std::string expected() { return "a JSON value"; }
  static void read(const nlohmann::json& j, const std::string&, nlohmann::json& out) { out = j; }
};

// A field's value as JSON (std::optional as null or its value).
template <typename T>
nlohmann::json to_json_value(const T& value) {
  return nlohmann::json(value);
}
template <typename T>
nlohmann::json to_json_value(const std::optional<T>& value) {
  return value ? to_json_value(*value) : nlohmann::json(nullptr);
}

// A bound as the message prints it: 1 rather than 1.0 for a whole number.
inline std::string bound_text(double bound) {
  if (std::floor(bound) == bound && std::fabs(bound) < 1e15) {
    return std::to_string(static_cast<long long>(bound));
  }
  return nlohmann::json(bound).dump();
}

}  // namespace detail

// What a value must satisfy besides its type. Build one with the functions below.
struct Rule {
  std::optional<double> min;  // value >= min, or > min with min_exclusive
  std::optional<double> max;  // value <= max, or < max with max_exclusive
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> one_of;  // the allowed strings
  // Runs on the JSON value as given, before it is read (for checks whose message must
  // say more than the type); throws ConfigError naming `path`.
  std::function<void(const nlohmann::json& value, const std::string& path)> check;
  // The README's type column, when the field's C++ type says too little (a JSON field).
  std::string type;
};

// value >= minimum.
inline Rule at_least(double minimum) { return {minimum, std::nullopt, false, false, {}, {}}; }
// value > minimum.
inline Rule above(double minimum) { return {minimum, std::nullopt, true, false, {}, {}}; }
// low <= value <= high.
inline Rule between(double low, double high) { return {low, high, false, false, {}, {}}; }
// low <= value < high (a dropout: in_range(0, 1)).
inline Rule in_range(double low, double high) { return {low, high, false, true, {}, {}}; }
// low < value <= high (a share: above_up_to(0, 1)).
inline Rule above_up_to(double low, double high) { return {low, high, true, false, {}, {}}; }

// One of the given strings.
inline Rule one_of(std::vector<std::string> allowed) {
  Rule rule;
  rule.one_of = std::move(allowed);
  return rule;
}

// A check of the JSON value as given, before it is read.
inline Rule check(std::function<void(const nlohmann::json& value, const std::string& path)> f) {
  Rule rule;
  rule.check = std::move(f);
  return rule;
}

// `rule` with the README's type column set to `type`.
inline Rule typed(std::string type, Rule rule = {}) {
  rule.type = std::move(type);
  return rule;
}

// For a `validate` function: "<where>/<key>: must divide <of> (<total>), got <value>"
// unless `value` divides `total` (attention heads and the width they split).
inline void check_divides(const std::string& where, const char* key, int64_t value,
                          const char* of, int64_t total) {
  if (value >= 1 && total % value == 0) return;
  throw ConfigError(key_path(where, key) + ": must divide " + of + " (" + std::to_string(total) +
                    "), got " + std::to_string(value));
}

// The options of one plugin: each declared once, bound to a field of Options.
template <typename Options>
class OptionSet {
 public:
  // `prototype` holds the defaults (its fields' values).
  explicit OptionSet(Options prototype = Options()) : prototype_(std::move(prototype)) {
    refresh();
  }

  // Declares the option `key` bound to the field `access` (from UNITRAIN_OPTION(field)),
  // with a one-line meaning (Markdown, for the README table) and a rule.
  template <typename Access>
  OptionSet& add(const char* key, Access access, std::string meaning, Rule rule = {}) {
    using T = std::decay_t<decltype(access(std::declval<Options&>()))>;
    auto entry = std::make_shared<Field<T, Access>>(std::move(access), std::move(rule));
    entry->key = key;
    entry->meaning = std::move(meaning);
    entry->type = entry->rule.type.empty() ? detail::Kind<T>::doc() : entry->rule.type;
    entries_.push_back(std::move(entry));
    refresh();
    return *this;
  }

  // Declares the option group `key` (a JSON object such as a dataset's "image" block)
  // bound to the field `access`, whose options `group` declares. Keys the JSON leaves out
  // keep the field's value in this set's prototype, so one group (the SDK's image
  // transform) serves plugins with different defaults. Its keys appear in the README
  // table as `key/subkey` rows, with this plugin's defaults.
  template <typename Sub, typename Access>
  OptionSet& add_group(const char* key, Access access, const OptionSet<Sub>& group,
                       std::string meaning) {
    static_assert(std::is_same_v<std::decay_t<decltype(access(std::declval<Options&>()))>, Sub>,
                  "the group's OptionSet must declare the field's type");
    auto entry = std::make_shared<Group<Sub, Access>>(std::move(access), group);
    entry->key = key;
    entry->meaning = std::move(meaning);
    entry->type = "object";
    entries_.push_back(std::move(entry));
    refresh();
    return *this;
  }

  // Declares a key that is not a field: it is in the defaults and the README table, and
  // `parse` accepts it, but reading it is the plugin's (a `validate` function or its
  // factory). `type` is its name in the table ("object or null").
  OptionSet& add_json(const char* key, nlohmann::json default_value, std::string type,
                      std::string meaning) {
    auto entry = std::make_shared<Unbound>();
    entry->key = key;
    entry->meaning = std::move(meaning);
    entry->type = std::move(type);
    entry->default_value = std::move(default_value);
    entries_.push_back(std::move(entry));
    refresh();
    return *this;
  }

  // A check over the whole parsed Options (options that depend on each other), run
  // after every key is read; `where` is parse's. Throws ConfigError.
  OptionSet& validate(std::function<void(const Options& options, const nlohmann::json& given,
                                         const std::string& where)>
                          f) {
    validators_.push_back(std::move(f));
    return *this;
  }

  // JSON -> Options: every declared key present in `json` is checked and read, the others
  // keep their defaults; an undeclared key is an error. `where` (a file and JSON pointer)
  // prefixes the keys' paths in messages: "<where>/<key>: expected ..., found ...".
  Options parse(const nlohmann::json& json, const std::string& where = "") const {
    return parse_over(json, where, prototype_);
  }

  // As parse, but the keys the JSON leaves out keep their values in `base`.
  Options parse_over(const nlohmann::json& json, const std::string& where,
                     const Options& base) const {
    if (!json.is_object()) {
      detail::type_error(json, where.empty() ? "/" : where, "an object of options");
    }
    for (const auto& item : json.items()) {
      if (find(item.key()) != nullptr) continue;
      std::string keys;
      for (const auto& entry : entries_) keys += (keys.empty() ? "" : ", ") + entry->key;
      throw ConfigError(key_path(where, item.key()) + ": unknown key '" + item.key() +
                        "'; valid keys: " + keys);
    }
    Options options = base;
    for (const auto& entry : entries_) {
      if (json.contains(entry->key)) {
        entry->read(json.at(entry->key), key_path(where, entry->key), options);
      }
    }
    for (const auto& f : validators_) f(options, json, where);
    return options;
  }

  // Options -> JSON, every bound key (add_json keys are not fields and are left out).
  nlohmann::json to_json(const Options& options) const {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& entry : entries_) {
      if (entry->bound()) out[entry->key] = entry->get(options);
    }
    return out;
  }

  // Every key with its default, as an object and as the text UNITRAIN_PLUGIN takes.
  const nlohmann::json& defaults() const { return defaults_; }
  const std::string& defaults_json() const { return defaults_json_; }

  // The README key table: a header row and one row per key, in declaration order:
  // | `key` | type | default | meaning |
  const std::string& markdown() const { return markdown_; }

  // The table's rows for the options `o`, each key prefixed by `prefix` (a group's rows
  // inside its parent's table).
  void append_rows(const std::string& prefix, const Options& o, std::string& out) const {
    for (const auto& entry : entries_) entry->append_rows(prefix, o, out);
  }

 private:
  struct Entry {
    virtual ~Entry() = default;
    virtual bool bound() const { return true; }
    virtual void read(const nlohmann::json& given, const std::string& path, Options& o) const = 0;
    virtual nlohmann::json get(const Options& o) const = 0;
    // This key's README row(s) for the options `o`.
    virtual void append_rows(const std::string& prefix, const Options& o,
                             std::string& out) const {
      out += row(prefix + key, type, default_text(get(o)), meaning);
    }
    std::string key, type, meaning;
  };

  template <typename T, typename Access>
  struct Field : Entry {
    Field(Access a, Rule r) : access(std::move(a)), rule(std::move(r)) {}
    void read(const nlohmann::json& given, const std::string& path, Options& o) const override {
      if (rule.check) rule.check(given, path);
      T value{};
      detail::Kind<T>::read(given, path, value);
      check_rule(value, path);
      access(o) = std::move(value);
    }
    nlohmann::json get(const Options& o) const override {
      // NOTE: the accessor is a generic lambda; on a const Options it calls the const
      // TORCH_ARG getter.
      return detail::to_json_value(access(o));
    }
    void check_rule(const T& value, const std::string& path) const {
      if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
        const auto v = static_cast<double>(value);
        const std::string got = ", got " + detail::shown(nlohmann::json(value));
        const bool low = rule.min && (rule.min_exclusive ? v <= *rule.min : v < *rule.min);
        const bool high = rule.max && (rule.max_exclusive ? v >= *rule.max : v > *rule.max);
        if (rule.min && rule.max && (low || high)) {
          throw ConfigError(path + ": must be in " + (rule.min_exclusive ? "(" : "[") +
                            detail::bound_text(*rule.min) + ", " + detail::bound_text(*rule.max) +
                            (rule.max_exclusive ? ")" : "]") + got);
        }
        if (low) {
          throw ConfigError(path + ": must be " + (rule.min_exclusive ? "> " : ">= ") +
                            detail::bound_text(*rule.min) + got);
        }
        if (high) {
          throw ConfigError(path + ": must be " + (rule.max_exclusive ? "< " : "<= ") +
                            detail::bound_text(*rule.max) + got);
        }
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (rule.one_of.empty()) return;
        std::string allowed;
        for (const auto& a : rule.one_of) {
          if (a == value) return;
          allowed += (allowed.empty() ? "\"" : ", \"") + a + "\"";
        }
        throw ConfigError(path + ": expected one of " + allowed + ", got " +
                          detail::shown(nlohmann::json(value)));
      }
    }
    Access access;
    Rule rule;
  };

  template <typename Sub, typename Access>
  struct Group : Entry {
    Group(Access a, OptionSet<Sub> g) : access(std::move(a)), group(std::move(g)) {}
    void read(const nlohmann::json& given, const std::string& path, Options& o) const override {
      access(o) = group.parse_over(given, path, access(o));
    }
    nlohmann::json get(const Options& o) const override { return group.to_json(access(o)); }
    void append_rows(const std::string& prefix, const Options& o,
                     std::string& out) const override {
      out += row(prefix + this->key, this->type, "", this->meaning);
      group.append_rows(prefix + this->key + "/", access(o), out);
    }
    Access access;
    OptionSet<Sub> group;
  };

  struct Unbound : Entry {
    bool bound() const override { return false; }
    void read(const nlohmann::json&, const std::string&, Options&) const override {}
    nlohmann::json get(const Options&) const override { return default_value; }
    nlohmann::json default_value;
  };

  const Entry* find(const std::string& key) const {
    for (const auto& entry : entries_) {
      if (entry->key == key) return entry.get();
    }
    return nullptr;
  }

  // A default as the table shows it: numbers and booleans bare, the rest as JSON in code.
  static std::string default_text(const nlohmann::json& value) {
    if (value.is_number() || value.is_boolean()) return value.dump();
    return "`" + value.dump() + "`";
  }

  static std::string row(const std::string& key, const std::string& type,
                         const std::string& default_cell, const std::string& meaning) {
    return "| `" + key + "` | " + escaped(type) + " | " + escaped(default_cell) + " | " +
           escaped(meaning) + " |\n";
  }

  static std::string escaped(const std::string& cell) {
    std::string out;
    for (char c : cell) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
  }

  void refresh() {
    defaults_ = nlohmann::json::object();
    markdown_ = "| key | type | default | meaning |\n|-----|------|---------|---------|\n";
    for (const auto& entry : entries_) defaults_[entry->key] = entry->get(prototype_);
    append_rows("", prototype_, markdown_);
    defaults_json_ = defaults_.dump(2);
  }

  Options prototype_;
  std::vector<std::shared_ptr<const Entry>> entries_;
  std::vector<std::function<void(const Options&, const nlohmann::json&, const std::string&)>>
      validators_;
  nlohmann::json defaults_;
  std::string defaults_json_;
  std::string markdown_;
};

// Reads j[key] into `field` when present; ConfigError naming the key's path when the
// JSON type does not fit. (For options read by hand; an OptionSet does this for you.)
template <typename T>
void read(const nlohmann::json& j, const std::string& where, const char* key, T& field) {
  if (!j.contains(key)) return;
  detail::Kind<T>::read(j.at(key), key_path(where, key), field);
}

// One row of UNITRAIN_EXPORT_OPTION_TABLES.
struct TableEntry {
  const char* kind;
  const char* name;
  const std::string& (*markdown)();
};

// The table of the option set that `SetFn()` returns.
template <auto SetFn>
const std::string& markdown_of() {
  return SetFn().markdown();
}

}  // namespace unitrain::options

// The key and the field accessor of the Options field `field` (JSON keys are the field
// names), for OptionSet::add.
#define UNITRAIN_OPTION(field) #field, [](auto& o_) -> auto& { return o_.field(); }

// The same for a plain struct's data member `field` (a struct without TORCH_ARG getters).
#define UNITRAIN_FIELD(field) #field, [](auto& o_) -> auto& { return o_.field; }

// A row of UNITRAIN_EXPORT_OPTION_TABLES: the plugin KIND/NAME whose options SET_FN
// (a function returning its OptionSet) declares.
#define UNITRAIN_OPTION_TABLE(KIND, NAME, SET_FN) \
  ::unitrain::options::TableEntry { KIND, NAME, &::unitrain::options::markdown_of<SET_FN> }

// Exports `unitrain_plugin_options_markdown_v1(kind, name)`: the README key table of a
// plugin of this library, or NULL. Optional, once per library, beside
// UNITRAIN_EXPORT_PLUGINS; read by `unitrain plugins show NAME --options-markdown` and by
// the README check. Plain C across the boundary, as the plugin ABI.
#define UNITRAIN_EXPORT_OPTION_TABLES(...)                                                \
  extern "C" __attribute__((visibility("default"))) const char*                          \
  unitrain_plugin_options_markdown_v1(const char* kind, const char* name) {              \
    static const ::unitrain::options::TableEntry kTables[] = {__VA_ARGS__};              \
    try {                                                                                 \
      for (const auto& t : kTables) {                                                     \
        if (std::strcmp(t.kind, kind) == 0 && std::strcmp(t.name, name) == 0) {          \
          return t.markdown().c_str();                                                    \
        }                                                                                 \
      }                                                                                   \
    } catch (...) {                                                                       \
    }                                                                                     \
    return nullptr;                                                                       \
  }

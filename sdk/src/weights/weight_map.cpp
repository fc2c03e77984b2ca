#include "unitrain/weights/weight_map.h"

#include <sstream>

#include <fmt/format.h>

namespace unitrain::weights {

namespace {

std::vector<std::string> split(const std::string& name) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const auto dot = name.find('.', begin);
    parts.push_back(name.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (dot == std::string::npos) return parts;
    begin = dot + 1;
  }
}

bool is_placeholder(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

std::vector<int64_t> shape_of(const torch::Tensor& t) { return t.sizes().vec(); }

}  // namespace

bool match_pattern(const std::string& pattern, const std::string& name, Bindings* bindings) {
  const auto p = split(pattern), n = split(name);
  Bindings local;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == "*" && i + 1 == p.size()) {
      if (i >= n.size()) return false;
      std::string rest = n[i];
      for (size_t j = i + 1; j < n.size(); ++j) rest += "." + n[j];
      local["*"] = rest;
      if (bindings) *bindings = std::move(local);
      return true;
    }
    if (i >= n.size()) return false;
    if (is_placeholder(p[i])) {
      const auto key = p[i].substr(1, p[i].size() - 2);
      auto it = local.find(key);
      if (it != local.end() && it->second != n[i]) return false;
      local[key] = n[i];
    } else if (p[i] != n[i]) {
      return false;
    }
  }
  if (p.size() != n.size()) return false;
  if (bindings) *bindings = std::move(local);
  return true;
}

std::string fill_pattern(const std::string& pattern, const Bindings& bindings) {
  std::string out;
  for (const auto& segment : split(pattern)) {
    if (!out.empty()) out += '.';
    if (segment == "*") {
      out += bindings.at("*");
    } else if (is_placeholder(segment)) {
      out += bindings.at(segment.substr(1, segment.size() - 2));
    } else {
      out += segment;
    }
  }
  return out;
}

bool glob_match(const std::string& glob, const std::string& name) {
  // Iterative wildcard match with backtracking to the last '*'.
  size_t g = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == name[n])) {
      ++g, ++n;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = n;
    } else if (star != std::string::npos) {
      g = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

WeightMap& WeightMap::copy(const std::string& source, const std::string& target) {
  rules_.push_back({{source}, target, nullptr, ""});
  return *this;
}

WeightMap& WeightMap::fuse(const std::vector<std::string>& sources, const std::string& target) {
  Combine cat = [](const std::vector<torch::Tensor>& parts, const torch::Tensor& own,
                   const Bindings&) {
    for (const auto& p : parts) {
      if (p.dim() != own.dim() || (own.dim() > 1 && p.sizes().slice(1) != own.sizes().slice(1))) {
        return torch::Tensor();
      }
    }
    auto fused = torch::cat(parts, 0);
    return fused.sizes() == own.sizes() ? fused : torch::Tensor();
  };
  rules_.push_back({sources, target, std::move(cat), "concatenated along dim 0"});
  return *this;
}

WeightMap& WeightMap::custom(const std::vector<std::string>& sources, const std::string& target,
                             Combine combine, const std::string& note) {
  rules_.push_back({sources, target, std::move(combine), note});
  return *this;
}

WeightMap& WeightMap::ignore(const std::string& source, const std::string& note) {
  ignored_.emplace_back(source, note);
  return *this;
}

WeightMap& WeightMap::strip_prefix(const std::string& prefix) {
  prefixes_.push_back(prefix);
  return *this;
}

WeightMap& WeightMap::rename_last(const std::string& from, const std::string& to) {
  last_renames_.emplace_back(from, to);
  return *this;
}

std::string WeightMap::normalize(const std::string& file_name) const {
  std::string name = file_name;
  for (const auto& prefix : prefixes_) {
    if (name.rfind(prefix, 0) == 0) {
      name = name.substr(prefix.size());
      break;
    }
  }
  const auto dot = name.rfind('.');
  const auto last = dot == std::string::npos ? name : name.substr(dot + 1);
  for (const auto& [from, to] : last_renames_) {
    if (last == from) return name.substr(0, name.size() - last.size()) + to;
  }
  return name;
}

std::string WeightMap::table() const {
  std::ostringstream out;
  for (const auto& prefix : prefixes_) out << fmt::format("(a leading '{}' is dropped)\n", prefix);
  for (const auto& [from, to] : last_renames_) {
    out << fmt::format("(a last segment '{}' reads as '{}')\n", from, to);
  }
  for (const auto& rule : rules_) {
    out << fmt::format("{} -> {}", fmt::join(rule.sources, " + "), rule.target);
    if (!rule.note.empty()) out << "  (" << rule.note << ")";
    out << '\n';
  }
  for (const auto& [pattern, note] : ignored_) {
    out << fmt::format("{} -> (ignored{}{})\n", pattern, note.empty() ? "" : ": ", note);
  }
  return out.str();
}

ImportPlan plan_import(const WeightMap& map,
                       const std::vector<std::pair<std::string, torch::Tensor>>& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& own,
                       const std::vector<std::string>& skip) {
  auto skipped = [&](const std::string& name) {
    for (const auto& g : skip) {
      if (glob_match(g, name)) return true;
    }
    return false;
  };

  ImportPlan plan;
  // Normalized file name -> (original name, tensor).
  std::map<std::string, std::pair<std::string, torch::Tensor>> by_name;
  std::set<std::string> skipped_sources;  // normalized
  for (const auto& [name, tensor] : file) {
    const auto normal = map.normalize(name);
    if (skipped(name) || skipped(normal)) {
      plan.skipped_file.push_back(name);
      skipped_sources.insert(normal);
      continue;
    }
    by_name.emplace(normal, std::make_pair(name, tensor));
    for (const auto& [pattern, note] : map.ignored()) {
      if (glob_match(pattern, normal)) {
        plan.ignored.insert(name);
        plan.known.insert(name);
      }
    }
    for (const auto& rule : map.rules()) {
      for (const auto& source : rule.sources) {
        if (match_pattern(source, normal, nullptr)) plan.known.insert(name);
      }
    }
  }

  for (const auto& [target, value] : own) {
    if (skipped(target)) {
      plan.skipped.push_back(target);
      continue;
    }
    const WeightRule* rule = nullptr;
    Bindings bindings;
    for (const auto& r : map.rules()) {
      if (match_pattern(r.target, target, &bindings)) {
        rule = &r;
        break;
      }
    }
    if (!rule) {
      plan.kept.push_back(target);
      continue;
    }
    std::vector<std::string> names, absent;
    std::vector<torch::Tensor> sources;
    bool source_skipped = false;
    for (const auto& pattern : rule->sources) {
      const auto name = fill_pattern(pattern, bindings);
      auto it = by_name.find(name);
      if (it == by_name.end()) {
        source_skipped = source_skipped || skipped_sources.count(name) > 0;
        absent.push_back(name);
        continue;
      }
      names.push_back(it->second.first);
      sources.push_back(it->second.second);
    }
    if (source_skipped) {
      // What it would be made of was skipped: it keeps its initialisation.
      plan.skipped.push_back(target);
      continue;
    }
    if (!absent.empty()) {
      plan.missing.emplace_back(target, fmt::format("{}", fmt::join(absent, ", ")));
      continue;
    }
    for (const auto& n : names) plan.consumed.insert(n);
    const auto from = fmt::format("{}", fmt::join(names, " + "));
    torch::Tensor made;
    if (rule->combine) {
      made = rule->combine(sources, value, bindings);
    } else if (sources[0].sizes() == value.sizes()) {
      made = sources[0];
    }
    if (!made.defined() || made.sizes() != value.sizes()) {
      std::vector<int64_t> file_shape;
      for (size_t i = 0; i < sources.size(); ++i) {
        if (i == 0) {
          file_shape = shape_of(sources[0]);
        } else if (!file_shape.empty() && sources[i].dim() > 0) {
          file_shape[0] += sources[i].size(0);
        }
      }
      plan.mismatched.push_back({target, from, file_shape, shape_of(value)});
      continue;
    }
    plan.loaded[target] = made;
    plan.loaded_from[target] = from;
  }
  return plan;
}

}  // namespace unitrain::weights

#include "unitrain/weights/importer.h"

#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "unitrain/json_util.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"

namespace unitrain::weights {

using json = nlohmann::json;

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// MMF's dataset names and task_idx for UniT's eight datasets (configs/models/unit).
struct MmfTask {
  const char* ours;
  const char* name;
  int64_t index;
};
constexpr MmfTask kMmfTasks[] = {
    {"coco", "detection_coco", 0},     {"vg", "detection_visual_genome", 1},
    {"vqa2", "vqa2", 3},               {"snli_ve", "visual_entailment", 9},
    {"qnli", "glue_qnli", 5},          {"mnli_mm", "glue_mnli_mismatched", 6},
    {"sst2", "glue_sst2", 7},          {"qqp", "glue_qqp", 8},
};

template <typename T>
std::string first_of(const std::vector<T>& items, size_t n) {
  std::vector<T> head(items.begin(), items.begin() + std::min(n, items.size()));
  auto text = fmt::format("{}", fmt::join(head, "; "));
  if (items.size() > n) text += fmt::format("; ... ({} more)", items.size() - n);
  return text;
}

}  // namespace

const std::vector<std::string>& known_formats() {
  static const std::vector<std::string> formats = {"unitrain", "torchvision_resnet", "detr",
                                                   "hf_bert", "mmf_unit"};
  return formats;
}

InitFrom init_from_json(const json& value, const std::string& where) {
  InitFrom init;
  if (value.is_string()) {
    init.file = value.get<std::string>();
    return init;
  }
  if (!value.is_object()) {
    throw ConfigError(fmt::format("{}: expected a file name or {{\"file\", \"format\", \"strict\", "
                                  "\"skip\", \"tasks\"}}, found {}",
                                  where, json_text(value)));
  }
  static const std::vector<std::string> keys = {"file", "format", "strict", "skip", "tasks"};
  for (const auto& [key, v] : value.items()) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      throw ConfigError(fmt::format("{}/{}: unknown key '{}'; valid keys: {}", where, key, key,
                                    fmt::join(nearest_first(key, keys), ", ")));
    }
  }
  if (!value.contains("file") || !value["file"].is_string() || value["file"].get<std::string>().empty()) {
    throw ConfigError(fmt::format("{}/file: expected the weights file (a string)", where));
  }
  init.file = value["file"].get<std::string>();
  if (value.contains("format")) {
    const auto& f = value["format"];
    const auto given = f.is_string() ? f.get<std::string>() : json_text(f);
    const auto& formats = known_formats();
    if (!f.is_string() || std::find(formats.begin(), formats.end(), given) == formats.end()) {
      throw ConfigError(fmt::format("{}/format: unknown format {}; expected one of {}", where,
                                    json_text(f), fmt::join(nearest_first(given, formats), ", ")));
    }
    init.format = given;
  }
  if (value.contains("strict")) {
    if (!value["strict"].is_boolean()) {
      throw ConfigError(fmt::format("{}/strict: expected true or false, found {}", where,
                                    json_text(value["strict"])));
    }
    init.strict = value["strict"].get<bool>();
  }
  if (value.contains("skip")) {
    const auto& s = value["skip"];
    if (!s.is_array() || std::any_of(s.begin(), s.end(), [](const json& g) { return !g.is_string(); })) {
      throw ConfigError(fmt::format("{}/skip: expected a list of name globs (\"fc.*\"), found {}",
                                    where, json_text(s)));
    }
    for (const auto& g : s) init.skip.push_back(g.get<std::string>());
  }
  if (value.contains("tasks")) {
    const auto& t = value["tasks"];
    if (!t.is_object()) {
      throw ConfigError(fmt::format("{}/tasks: expected {{\"our task\": \"file's name\" or "
                                    "{{\"name\": ..., \"index\": ...}}}}, found {}",
                                    where, json_text(t)));
    }
    init.tasks = t;
  }
  return init;
}

std::vector<std::pair<std::string, torch::Tensor>> state_of(const TensorFile& file,
                                                            std::string* taken) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  std::string what = "every tensor";
  for (const char* entry : {"model.", "state_dict."}) {
    const std::string prefix = entry;
    for (const auto& [name, tensor] : file.tensors) {
      if (name.rfind(prefix, 0) == 0) state.emplace_back(name.substr(prefix.size()), tensor);
    }
    if (!state.empty()) {
      what = fmt::format("the '{}' entry", prefix.substr(0, prefix.size() - 1));
      break;
    }
  }
  if (state.empty()) state = file.tensors;
  const std::string module = "module.";
  const bool wrapped = !state.empty() && std::all_of(state.begin(), state.end(), [&](const auto& p) {
    return p.first.rfind(module, 0) == 0;
  });
  if (wrapped) {
    for (auto& p : state) p.first = p.first.substr(module.size());
    what += ", 'module.' dropped";
  }
  if (taken) *taken = what;
  return state;
}

std::string guess_layout(const TensorFile& file) {
  if (file.format == FileFormat::kUnitrain) return "unitrain";
  std::set<std::string> names;
  for (const auto& [name, tensor] : state_of(file)) names.insert(name);
  auto has_prefix = [&](const std::string& prefix) {
    auto it = names.lower_bound(prefix);
    return it != names.end() && it->rfind(prefix, 0) == 0;
  };
  if (has_prefix("unit_base_model.")) return "mmf_unit";
  if (has_prefix("backbone.0.body.") && has_prefix("transformer.")) return "detr";
  if (names.count("embeddings.word_embeddings.weight") ||
      names.count("bert.embeddings.word_embeddings.weight")) {
    return "hf_bert";
  }
  if (names.count("conv1.weight") && names.count("layer1.0.conv1.weight")) {
    return "torchvision_resnet";
  }
  return "";
}

void fill_task_names(const InitFrom& init, const std::vector<std::string>& tasks,
                     ImportContext* context, const std::string& where) {
  if (init.format == "mmf_unit") {
    for (const auto& t : kMmfTasks) {
      if (std::find(tasks.begin(), tasks.end(), t.ours) == tasks.end()) continue;
      context->task_names[t.ours] = t.name;
      context->task_indices[t.ours] = t.index;
    }
  }
  for (const auto& [task, value] : init.tasks.items()) {
    const auto at = fmt::format("{}/tasks/{}", where, task);
    if (std::find(tasks.begin(), tasks.end(), task) == tasks.end()) {
      throw ConfigError(fmt::format("{}: '{}' is not a task of this experiment; its tasks: {}", at,
                                    task, fmt::join(nearest_first(task, tasks), ", ")));
    }
    if (value.is_string()) {
      context->task_names[task] = value.get<std::string>();
    } else if (value.is_object() && value.contains("name") && value["name"].is_string() &&
               (!value.contains("index") || value["index"].is_number_integer())) {
      context->task_names[task] = value["name"].get<std::string>();
      if (value.contains("index")) context->task_indices[task] = value["index"].get<int64_t>();
    } else {
      throw ConfigError(fmt::format("{}: expected the file's name for the task (a string) or "
                                    "{{\"name\": string, \"index\": integer}}, found {}",
                                    at, json_text(value)));
    }
  }
}

Combine task_rows(const ImportContext& context) {
  std::vector<std::pair<int64_t, int64_t>> rows;  // ours, the file's
  for (size_t i = 0; i < context.tasks.size(); ++i) {
    auto it = context.task_indices.find(context.tasks[i]);
    if (it != context.task_indices.end()) rows.emplace_back(static_cast<int64_t>(i), it->second);
  }
  return [rows](const std::vector<torch::Tensor>& sources, const torch::Tensor& own,
                const Bindings&) {
    const auto& file = sources.at(0);
    if (file.dim() != 2 || own.dim() != 2 || file.size(1) != own.size(1)) return torch::Tensor();
    auto out = file.sizes() == own.sizes() ? file.clone() : own.detach().to(torch::kCPU).clone();
    for (const auto& [ours, theirs] : rows) {
      if (ours >= own.size(0) || theirs < 0 || theirs >= file.size(0)) return torch::Tensor();
      out[ours].copy_(file[theirs]);
    }
    return out;
  };
}

std::string mmf_task_type(const std::string& dataset) {
  if (dataset.rfind("detection_", 0) == 0) return "detection";
  if (dataset.rfind("glue_", 0) == 0) return "glue";
  return "vl";
}

ImportReport make_report(const std::string& component, const InitFrom& init, const TensorFile& file,
                         const std::string& taken, const ImportPlan& plan,
                         const std::vector<std::string>& unexpected, size_t other) {
  ImportReport r;
  r.component = component;
  r.file = file.file.string();
  r.format = init.format;
  r.taken = taken;
  r.loaded = plan.loaded.size();
  for (const auto& [name, from] : plan.loaded_from) {
    r.loaded_names.push_back(name == from ? name : fmt::format("{} <- {}", name, from));
  }
  r.kept = plan.kept.size();
  r.kept_names = plan.kept;
  r.skipped = plan.skipped.size();
  r.skipped_file = plan.skipped_file.size();
  r.skipped_names = plan.skipped;
  for (const auto& name : plan.skipped_file) r.skipped_names.push_back("(file) " + name);
  r.other = other;
  for (const auto& [name, from] : plan.missing) {
    r.missing.push_back(fmt::format("{} (wants {})", name, from));
  }
  r.unexpected = unexpected;
  for (const auto& m : plan.mismatched) {
    r.mismatched.push_back(fmt::format("{} <- {}: file {}, here {}", m.target, m.source,
                                       shape_string(m.file_shape), shape_string(m.own_shape)));
  }
  return r;
}

std::string ImportReport::summary(bool verbose) const {
  std::ostringstream out;
  out << fmt::format("{} <- {} ({}, {}): {} loaded, {} kept as initialised, {} missing, "
                     "{} unexpected, {} of another shape, {} skipped ({} of the file's left out)",
                     component, file, format, taken, loaded, kept, missing.size(),
                     unexpected.size(), mismatched.size(), skipped, skipped_file);
  if (other > 0) out << fmt::format(", {} for other components", other);
  if (!verbose) return out.str();
  auto list = [&](const char* heading, const std::vector<std::string>& names) {
    if (names.empty()) return;
    out << fmt::format("\n  {}:", heading);
    for (const auto& n : names) out << "\n    " << n;
  };
  list("loaded", loaded_names);
  list("kept as initialised (not in the format)", kept_names);
  list("missing", missing);
  list("unexpected", unexpected);
  list("of another shape", mismatched);
  list("skipped", skipped_names);
  return out.str();
}

void check_strict(const ImportReport& report, const TensorFile& file, const std::string& where) {
  if (file.tensors.empty()) {
    std::vector<std::string> values;
    for (const auto& [name, value] : file.values.items()) {
      values.push_back(fmt::format("{} = {}", name.empty() ? "(the whole file)" : name, json_text(value)));
    }
    throw CheckpointError(fmt::format(
        "{}: '{}' ({}) holds no tensor: it is not a state dict (names to tensors){}{}", where,
        report.file, format_name(file.format), values.empty() ? "" : "; it holds ",
        first_of(values, 6)));
  }
  if (report.clean() && report.loaded > 0) return;
  std::vector<std::string> parts;
  if (report.loaded == 0) parts.push_back("no tensor of the file is one this map reads");
  if (!report.missing.empty()) parts.push_back("missing: " + first_of(report.missing, 5));
  if (!report.unexpected.empty()) parts.push_back("unexpected: " + first_of(report.unexpected, 5));
  if (!report.mismatched.empty()) parts.push_back("of another shape: " + first_of(report.mismatched, 5));
  std::vector<std::string> holds;
  for (const auto& [name, tensor] : file.tensors) {
    holds.push_back(fmt::format("{} {}", name, shape_string(tensor.sizes().vec())));
  }
  throw CheckpointError(fmt::format(
      "{}: '{}' ({} read as {}, {}) does not fit {}: {} missing, {} unexpected, {} of another "
      "shape. {}. The file holds {} tensors: {} (`unitrain weights inspect {}` lists them all). "
      "\"strict\": false loads what fits; \"skip\": [globs] leaves names out",
      where, report.file, format_name(file.format), report.format, report.taken, report.component,
      report.missing.size(), report.unexpected.size(), report.mismatched.size(),
      fmt::join(parts, ". "), file.tensors.size(), first_of(holds, 6), report.file));
}

void apply_plan(torch::nn::Module& module, const ImportPlan& plan) {
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters(/*recurse=*/true);
  auto buffers = module.named_buffers(/*recurse=*/true);
  for (const auto& [name, value] : plan.loaded) {
    torch::Tensor* target = params.find(name);
    if (!target) target = buffers.find(name);
    TORCH_CHECK(target, "apply_plan: no tensor '", name, "' in the module");
    target->copy_(value.to(target->device(), target->scalar_type()));
  }
}

}  // namespace unitrain::weights

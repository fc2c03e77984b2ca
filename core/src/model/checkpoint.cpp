// Reading and writing weights: see docs/checkpoints.md for the formats.
#include "unitrain/checkpoint.h"

#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "unitrain/config.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/model.h"

namespace unitrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string shape(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

torch::serialize::InputArchive open_archive(const fs::path& file) {
  if (!fs::is_regular_file(file)) {
    throw CheckpointError(fmt::format("cannot read '{}': no such file", file.string()));
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("'{}' is not a torch archive: {}", file.string(),
                                      e.what_without_backtrace()));
  }
  return archive;
}

std::string read_string(torch::serialize::InputArchive& archive, const std::string& key,
                        const std::string& where) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isString()) {
    throw CheckpointError(fmt::format("{}: no string entry '{}'", where, key));
  }
  return value.toStringRef();
}

StateDict read_state(torch::serialize::InputArchive& archive, const std::string& key,
                     const std::string& where) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isGenericDict()) {
    throw CheckpointError(fmt::format("{}: no state entry '{}'", where, key));
  }
  return c10::impl::toTypedDict<std::string, torch::Tensor>(value.toGenericDict());
}

void check_format(torch::serialize::InputArchive& archive, const std::string& expected,
                  const std::string& where, const char* what) {
  c10::IValue value;
  const bool found = archive.try_read("format", value) && value.isString();
  if (!found || value.toStringRef() != expected) {
    throw CheckpointError(fmt::format("{}: not {} (format '{}', expected '{}')", where, what,
                                      found ? value.toStringRef() : std::string("none"), expected));
  }
}

// The component names a resolved experiment builds (UnitModel's naming) and the JSON
// pointer of each one's block.
std::map<std::string, std::string> components_of(const json& experiment) {
  std::map<std::string, std::string> out;
  const json& model = experiment.at("model");
  for (const auto& [name, block] : model.at("encoders").items()) {
    out["encoders/" + name] = pointer_join("/model/encoders", name);
  }
  if (model.value("share_decoders", true)) {
    out["decoder"] = "/model/decoder";
  } else {
    for (const auto& [task, spec] : experiment.at("tasks").items()) {
      out["decoders/" + task] = "/model/decoder";
    }
  }
  for (const auto& [task, block] : model.at("heads").items()) {
    out["heads/" + task] = pointer_join("/model/heads", task);
  }
  return out;
}

std::string kind_of(const std::string& component) {
  if (component.rfind("encoders/", 0) == 0) return "encoder";
  if (component.rfind("heads/", 0) == 0) return "head";
  return "decoder";
}

}  // namespace

StateDict state_dict(const torch::nn::Module& module) {
  StateDict state;
  for (const auto& item : module.named_parameters()) {
    state.insert(item.key(), item.value().detach().to(torch::kCPU));
  }
  for (const auto& item : module.named_buffers()) {
    state.insert(item.key(), item.value().detach().to(torch::kCPU));
  }
  return state;
}

void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& where) {
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& item : module.named_parameters()) targets.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) targets.emplace_back(item.key(), item.value());

  std::vector<std::string> problems;
  std::set<std::string> known;
  for (const auto& [name, tensor] : targets) {
    known.insert(name);
    auto it = state.find(name);
    if (it == state.end()) {
      problems.push_back(fmt::format("tensor '{}' {} is missing from the file", name, shape(tensor)));
    } else if (it->value().sizes() != tensor.sizes()) {
      problems.push_back(fmt::format("tensor '{}' has shape {} in the file but {} in the model", name,
                                     shape(it->value()), shape(tensor)));
    }
  }
  for (const auto& entry : state) {
    if (!known.count(entry.key())) {
      problems.push_back(fmt::format("the file has tensor '{}' {} that the model lacks", entry.key(),
                                     shape(entry.value())));
    }
  }
  if (!problems.empty()) {
    const size_t shown = std::min<size_t>(problems.size(), 12);
    std::string message = fmt::format("{}: {}", where,
                                      fmt::join(problems.begin(), problems.begin() + shown, "; "));
    if (shown < problems.size()) message += fmt::format("; and {} more", problems.size() - shown);
    throw CheckpointError(message);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : targets) tensor.copy_(state.at(name));
}

void save_component(const ComponentArchive& component, const fs::path& file) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kComponentFormat)));
  archive.write("component", c10::IValue(component.component));
  archive.write("kind", c10::IValue(component.kind));
  archive.write("type", c10::IValue(component.type));
  archive.write("options", c10::IValue(json_text(component.options)));
  archive.write("state", c10::IValue(component.state));
  try {
    if (file.has_parent_path()) fs::create_directories(file.parent_path());
    archive.save_to(file.string());
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("cannot write '{}': {}", file.string(), e.what()));
  }
}

ComponentArchive load_component(const fs::path& file) {
  auto archive = open_archive(file);
  const std::string where = "'" + file.string() + "'";
  check_format(archive, kComponentFormat, where, "an exported component (see `unitrain export`)");
  ComponentArchive out;
  out.component = read_string(archive, "component", where);
  out.kind = read_string(archive, "kind", where);
  out.type = read_string(archive, "type", where);
  try {
    out.options = json::parse(read_string(archive, "options", where));
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw CheckpointError(fmt::format("{}: the stored options are not JSON: {}", where, e.what()));
  }
  out.state = read_state(archive, "state", where);
  return out;
}

ComponentArchive export_component(const UnitModelImpl& model, const std::string& component) {
  const auto& spec = model.spec(component);
  return {spec.name, spec.kind, spec.type, spec.options, state_dict(*model.component(component))};
}

ComponentArchive export_component(const fs::path& checkpoint, const std::string& component) {
  auto archive = open_archive(checkpoint);
  const std::string where = "'" + checkpoint.string() + "'";
  check_format(archive, kCheckpointFormat, where, "a model checkpoint");
  const json experiment = read_checkpoint_experiment(archive, where);
  const auto components = components_of(experiment);
  auto found = components.find(component);
  if (found == components.end()) {
    std::vector<std::string> names;
    for (const auto& [name, pointer] : components) names.push_back(name);
    throw CheckpointError(fmt::format("{}: no component '{}'; the checkpoint's components: {}", where,
                                      component, fmt::join(nearest_first(component, names), ", ")));
  }
  const json& block = experiment.at(json::json_pointer(found->second));
  ComponentArchive out;
  out.component = component;
  out.kind = kind_of(component);
  out.type = block.at("type").get<std::string>();
  out.options = block;
  out.options.erase("type");
  out.options.erase("init_from");
  const std::string prefix = component_module_name(component) + ".";
  for (const auto& entry : read_state(archive, "model", where)) {
    if (entry.key().rfind(prefix, 0) == 0) out.state.insert(entry.key().substr(prefix.size()), entry.value());
  }
  if (out.state.size() == 0) {
    throw CheckpointError(fmt::format("{}: the model state has no tensor under '{}'", where, prefix));
  }
  return out;
}

void write_model_state(torch::serialize::OutputArchive& archive, const torch::nn::Module& model,
                       const json& experiment) {
  archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
  archive.write("experiment", c10::IValue(json_text(experiment)));
  archive.write("model", c10::IValue(state_dict(model)));
}

void read_model_state(torch::serialize::InputArchive& archive, torch::nn::Module& model,
                      const std::string& where) {
  check_format(archive, kCheckpointFormat, where, "a model checkpoint");
  load_state_dict(model, read_state(archive, "model", where), where);
}

void write_label_spaces(torch::serialize::OutputArchive& archive,
                        const std::map<std::string, LabelSpace>& labels) {
  json out = json::object();
  for (const auto& [task, space] : labels) {
    out[task] = {{"kind", space.kind}, {"names", space.names},
                 {"num_attributes", space.num_attributes}};
  }
  // Label names come from user files: invalid UTF-8 is stored replaced, never thrown.
  archive.write("labels", c10::IValue(json_text(out)));
}

std::map<std::string, LabelSpace> read_label_spaces(torch::serialize::InputArchive& archive,
                                                    const std::string& where) {
  std::map<std::string, LabelSpace> out;
  c10::IValue value;
  if (!archive.try_read("labels", value)) return out;
  try {
    if (!value.isString()) throw std::runtime_error("not a string");
    const json stored = json::parse(value.toStringRef());
    for (const auto& [task, space] : stored.items()) {
      LabelSpace labels;
      labels.kind = space.at("kind").get<std::string>();
      labels.names = space.at("names").get<std::vector<std::string>>();
      labels.num_attributes = space.at("num_attributes").get<int64_t>();
      out[task] = std::move(labels);
    }
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("{}: malformed \"labels\" entry: {}", where, e.what()));
  }
  return out;
}

json read_checkpoint_experiment(torch::serialize::InputArchive& archive, const std::string& where) {
  try {
    return json::parse(read_string(archive, "experiment", where));
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw CheckpointError(fmt::format("{}: the stored experiment is not JSON: {}", where, e.what()));
  }
}

torch::serialize::InputArchive open_checkpoint(const fs::path& file) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("{}: not a readable checkpoint (truncated or not a torch "
                                      "archive): {}", file.string(), e.what_without_backtrace()));
  }
  return archive;
}

fs::path load_model_weights(const fs::path& run_or_checkpoint, torch::nn::Module& model) {
  const fs::path file = find_checkpoint(run_or_checkpoint);
  torch::serialize::InputArchive archive = open_checkpoint(file);
  read_model_state(archive, model, file.string());
  return file;
}

fs::path find_checkpoint(const fs::path& run_or_checkpoint) {
  if (fs::is_regular_file(run_or_checkpoint)) return run_or_checkpoint;
  if (!fs::is_directory(run_or_checkpoint)) {
    throw CheckpointError(fmt::format("'{}': no such file or folder", run_or_checkpoint.string()));
  }
  const fs::path folder = run_or_checkpoint / "checkpoints";
  if (fs::is_regular_file(folder / "last.pt")) return folder / "last.pt";
  std::vector<fs::path> files;
  if (fs::is_directory(folder)) {
    for (const auto& entry : fs::directory_iterator(folder)) {
      if (entry.is_regular_file() && entry.path().extension() == ".pt") files.push_back(entry.path());
    }
  }
  if (!files.empty()) return *std::max_element(files.begin(), files.end());
  if (fs::is_regular_file(run_or_checkpoint / "last.pt")) return run_or_checkpoint / "last.pt";
  throw CheckpointError(fmt::format("'{}': no checkpoint (looked for checkpoints/last.pt, "
                                    "checkpoints/*.pt and last.pt)",
                                    run_or_checkpoint.string()));
}

OpenedCheckpoint open_resume_checkpoint(const fs::path& run_or_checkpoint, std::ostream& notes) {
  const fs::path first = find_checkpoint(run_or_checkpoint);
  try {
    return {first, open_checkpoint(first)};
  } catch (const CheckpointError& e) {
    const fs::path folder = run_or_checkpoint / "checkpoints";
    if (fs::is_regular_file(run_or_checkpoint) || !fs::is_directory(folder)) throw;
    std::vector<fs::path> steps;
    for (const auto& entry : fs::directory_iterator(folder)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.rfind("step_", 0) == 0 && entry.path().extension() == ".pt" &&
          entry.path() != first) {
        steps.push_back(entry.path());
      }
    }
    // Newest first: zero-padded step numbers sort by name.
    std::sort(steps.rbegin(), steps.rend());
    for (const auto& file : steps) {
      try {
        OpenedCheckpoint opened{file, open_checkpoint(file)};
        notes << fmt::format("resume: {}; resuming from {}, the newest step checkpoint that reads\n",
                             e.what(), file.string());
        return opened;
      } catch (const CheckpointError&) {
        notes << fmt::format("resume: {}: not readable either, skipped\n", file.string());
      }
    }
    throw CheckpointError(fmt::format("{}; no step checkpoint in '{}' reads either", e.what(),
                                      folder.string()));
  }
}

}  // namespace unitrain

// UnitModel: builds the components of an experiment and wires a task's forward pass.
#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "unitrain/checkpoint.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/sizes.h"

namespace unitrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Names become submodule names (no '.') and component names (no '/').
void check_name(const std::string& name, const char* what, const std::string& where) {
  if (name.empty() || name.find_first_of("./") != std::string::npos) {
    throw ConfigError(fmt::format("{}: {} name '{}' must be non-empty and contain no '.' or '/' "
                                  "(it names a submodule)",
                                  where, what, name));
  }
}

ComponentSpec make_spec(const std::string& name, const std::string& kind,
                        const std::string& pointer, const json& block) {
  ComponentSpec spec;
  spec.name = name;
  spec.kind = kind;
  spec.type = block.at("type").get<std::string>();
  spec.options = block;
  spec.options.erase("type");
  spec.options.erase("init_from");
  spec.pointer = pointer;
  spec.module_name = component_module_name(name);
  if (block.contains("init_from")) spec.init_from = block.at("init_from");
  return spec;
}

template <typename Interface>
std::shared_ptr<Interface> create(const ComponentFactory& factory, const ComponentSpec& spec,
                                  const Experiment& experiment, const char* interface_name) {
  const std::string where = experiment.where(spec.pointer);
  auto object = factory(spec.kind, spec.type, spec.options, where);
  auto typed = std::dynamic_pointer_cast<Interface>(object);
  if (!typed) {
    throw ConfigError(fmt::format("{}: plugin '{}' of kind {} did not create a unitrain::{}", where,
                                  spec.type, spec.kind, interface_name));
  }
  return typed;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

std::string with_commas(int64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// The file an init_from path is relative to: the file that wrote the key.
fs::path resolve_init_path(const Experiment& experiment, const std::string& pointer,
                           const std::string& value) {
  fs::path path(value);
  if (path.is_absolute()) return path;
  std::string p = pointer;
  while (true) {
    auto it = experiment.origin.find(p);
    if (it != experiment.origin.end()) {
      if (it->second == "--set") return path;  // relative to the working directory
      return fs::path(it->second).parent_path() / path;
    }
    if (p.empty()) break;
    p = p.substr(0, p.rfind('/'));
  }
  return experiment.file.parent_path() / path;
}

}  // namespace

ComponentFactory registry_factory(const Registry& registry) {
  return [&registry](const std::string& kind, const std::string& type, const json& options,
                     const std::string& where) { return registry.create(kind, type, options, where); };
}

std::string component_module_name(const std::string& component) {
  if (component == "decoder") return "decoder";
  const auto slash = component.find('/');
  if (slash != std::string::npos && slash + 1 < component.size() &&
      component.find('/', slash + 1) == std::string::npos) {
    const std::string group = component.substr(0, slash);
    const std::string rest = component.substr(slash + 1);
    if (group == "encoders") return "encoder_" + rest;
    if (group == "decoders") return "decoder_" + rest;
    if (group == "heads") return "head_" + rest;
  }
  throw ConfigError(fmt::format("'{}' is not a component name; expected encoders/<name>, decoder, "
                                "decoders/<task> or heads/<task>",
                                component));
}

namespace {

// objects_boxes reads the source head's boxes (BoxOutput, [B, Q, 4]): checked once on a
// zero decoder output, so that a head without boxes fails at construction, not mid-training.
void check_box_output(Head& head, const std::string& source, const std::string& type,
                      int64_t queries, int64_t d_model, const std::string& where) {
  std::ostringstream found;
  if (const auto* box_output = dynamic_cast<const BoxOutput*>(&head)) {
    torch::NoGradGuard no_grad;
    auto boxes = box_output->boxes(head.run(torch::zeros({1, 1, queries, d_model}), Batch{}, false));
    if (boxes.defined() && boxes.sizes() == torch::IntArrayRef({1, queries, 4})) return;
    found << "outputs boxes of shape ";
    if (boxes.defined()) {
      found << boxes.sizes();
    } else {
      found << "(undefined)";
    }
  } else {
    found << "outputs no \"pred_boxes\"";
  }
  throw ConfigError(fmt::format("{}: needs boxes from the head of task '{}' (\"pred_boxes\" "
                                "[B, {}, 4]), but that head ('{}') {}",
                                where, source, queries, type, found.str()));
}

}  // namespace

UnitModelImpl::UnitModelImpl(const Experiment& experiment, const ComponentFactory& factory,
                             bool load_init_from) {
  const json& root = experiment.json;
  const json& model = root.at("model");
  const json& tasks = root.at("tasks");
  for (const auto& [task, spec] : tasks.items()) {
    check_name(task, "task", experiment.where(pointer_join("/tasks", task)));
    tasks_.push_back(task);
  }

  // Registration order (encoders, decoders, heads; each sorted) fixes the state dict.
  for (const auto& [name, block] : model.at("encoders").items()) {
    const auto pointer = pointer_join("/model/encoders", name);
    check_name(name, "encoder", experiment.where(pointer));
    auto spec = make_spec("encoders/" + name, "encoder", pointer, block);
    encoders_[name] = register_module(spec.module_name, create<Encoder>(factory, spec, experiment, "Encoder"));
    specs_[spec.name] = spec;
  }

  const bool share = model.value("share_decoders", true);
  const json& decoder_block = model.at("decoder");
  if (share) {
    auto spec = make_spec("decoder", "decoder", "/model/decoder", decoder_block);
    auto decoder = register_module(spec.module_name, create<Decoder>(factory, spec, experiment, "Decoder"));
    for (const auto& task : tasks_) {
      decoder->add_task(task, tasks.at(task).value("num_queries", int64_t{25}));
      decoders_[task] = decoder;
    }
    specs_[spec.name] = spec;
  } else {
    for (const auto& task : tasks_) {
      auto spec = make_spec("decoders/" + task, "decoder", "/model/decoder", decoder_block);
      auto decoder = register_module(spec.module_name, create<Decoder>(factory, spec, experiment, "Decoder"));
      decoder->add_task(task, tasks.at(task).value("num_queries", int64_t{25}));
      decoders_[task] = decoder;
      specs_[spec.name] = spec;
    }
  }

  const json& heads = model.at("heads");
  for (const auto& task : tasks_) {
    if (!heads.contains(task)) {
      throw ConfigError(fmt::format("{}: no head for task '{}'", experiment.where("/model/heads"), task));
    }
    const auto pointer = pointer_join("/model/heads", task);
    auto spec = make_spec("heads/" + task, "head", pointer, heads.at(task));
    heads_[task] = register_module(spec.module_name, create<Head>(factory, spec, experiment, "Head"));
    specs_[spec.name] = spec;

    const int64_t d_model = decoders_.at(task)->d_model();
    const auto* width = dynamic_cast<const InputWidth*>(heads_.at(task).get());
    if (width && width->input_width() != d_model) {
      const auto option = width->input_width_option();
      throw ConfigError(fmt::format("{}: the head reads {} {} but the decoder's d_model is {}",
                                    experiment.where(pointer_join(pointer, option)), option,
                                    width->input_width(), d_model));
    }
  }

  for (const auto& task : tasks_) {
    const auto pointer = pointer_join("/tasks", task) + "/encoders";
    const int64_t d_model = decoders_.at(task)->d_model();
    const json& used = tasks.at(task).at("encoders");
    for (size_t i = 0; i < used.size(); ++i) {
      const auto name = used[i].get<std::string>();
      const auto where = experiment.where(pointer + "/" + std::to_string(i));
      auto it = encoders_.find(name);
      if (it == encoders_.end()) {
        throw ConfigError(fmt::format("{}: unknown encoder '{}'", where, name));
      }
      if (it->second->output_dim() != d_model) {
        throw ConfigError(fmt::format(
            "{}: encoder '{}' outputs {}-dim memory but the decoder's d_model is {}; the encoder's "
            "output width ({}) must equal the decoder's",
            where, name, it->second->output_dim(), d_model,
            experiment.where(pointer_join("/model/encoders", name))));
      }
      task_encoders_[task].push_back(name);
    }
  }
  for (const auto& task : tasks_) {
    const json& spec = tasks.at(task);
    if (!spec.contains("objects_from")) continue;
    const auto where = experiment.where(pointer_join("/tasks", task) + "/objects_from");
    const json& value = spec.at("objects_from");
    if (!value.is_string() || !tasks.contains(value.get<std::string>())) {
      const auto given = value.is_string() ? value.get<std::string>() : json_text(value);
      throw ConfigError(fmt::format("{}: expected the name of another task ({}), found {}", where,
                                    fmt::join(nearest_first(given, tasks_), ", "), json_text(value)));
    }
    const auto source = value.get<std::string>();
    if (source == task) {
      throw ConfigError(fmt::format("{}: a task cannot read its own decoder outputs", where));
    }
    if (tasks.at(source).contains("objects_from")) {
      throw ConfigError(fmt::format(
          "{}: task '{}' itself has objects_from; chains are not supported", where, source));
    }
    if (decoders_.at(source)->d_model() != decoders_.at(task)->d_model()) {
      throw ConfigError(fmt::format("{}: task '{}' decodes {}-dim outputs but this task's memory "
                                    "is {}-dim", where, source,
                                    decoders_.at(source)->d_model(),
                                    decoders_.at(task)->d_model()));
    }
    objects_from_[task] = source;
    if (spec.value("objects_boxes", false)) {
      check_box_output(*heads_.at(source), source, specs_.at("heads/" + source).type,
                       tasks.at(source).value("num_queries", int64_t{25}),
                       decoders_.at(source)->d_model(),
                       experiment.where(pointer_join("/tasks", task) + "/objects_boxes"));
      object_embeds_.emplace(task, register_module("objects_" + task,
                                                   ObjectEmbed(decoders_.at(task)->d_model())));
    }
  }

  if (load_init_from) {
    if (model.contains("init_from")) import_model(experiment);
    for (const auto& name : component_names()) {
      const auto& spec = specs_.at(name);
      if (!spec.init_from.is_null()) load_component(spec, experiment);
    }
  }
}

std::vector<std::string> UnitModelImpl::component_tasks(const ComponentSpec& spec) const {
  const auto slash = spec.name.find('/');
  if (spec.name.rfind("heads/", 0) == 0 || spec.name.rfind("decoders/", 0) == 0) {
    return {spec.name.substr(slash + 1)};
  }
  return tasks_;
}

void UnitModelImpl::load_component(const ComponentSpec& spec, const Experiment& experiment) {
  const std::string pointer = spec.pointer + "/init_from";
  const std::string where = experiment.where(pointer);
  const auto init = weights::init_from_json(spec.init_from, where);
  const fs::path file = resolve_init_path(experiment, pointer, init.file);
  if (init.format != "unitrain") {
    import_component(spec, init, file, where);
    return;
  }
  ComponentArchive archive;
  try {
    archive = unitrain::load_component(file);
  } catch (const CheckpointError& e) {
    throw CheckpointError(fmt::format("{}: {}", where, e.what()));
  }
  if (archive.kind != spec.kind || archive.type != spec.type) {
    throw CheckpointError(fmt::format(
        "{}: '{}' holds a {} of type '{}' (exported from {}), but this block builds a {} of type '{}'",
        where, file.string(), archive.kind, archive.type, archive.component, spec.kind, spec.type));
  }
  std::vector<std::string> differences;
  json all = archive.options;
  all.update(spec.options);
  for (const auto& [key, unused] : all.items()) {
    const json here = spec.options.contains(key) ? spec.options[key] : json();
    const json there = archive.options.contains(key) ? archive.options[key] : json();
    if (here != there) {
      differences.push_back(fmt::format("'{}' is {} here but {} in the file", key,
                                        here.is_null() ? "absent" : json_text(here),
                                        there.is_null() ? "absent" : json_text(there)));
    }
  }
  if (!differences.empty()) {
    throw CheckpointError(fmt::format(
        "{}: the options of this block differ from those that built '{}': {}; use the exported "
        "options ({})",
        where, file.string(), fmt::join(differences, "; "), json_text(archive.options)));
  }
  load_state_dict(*component(spec.name), archive.state, fmt::format("{} ('{}')", where, file.string()));
  weights::ImportReport report;
  report.component = spec.name;
  report.file = file.string();
  report.format = "unitrain";
  report.taken = "an exported " + archive.component;
  report.loaded = archive.state.size();
  for (const auto& entry : archive.state) report.loaded_names.push_back(entry.key());
  import_reports_.push_back(std::move(report));
}

namespace {

std::vector<std::pair<std::string, torch::Tensor>> own_state(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> own;
  for (const auto& entry : state_dict(module)) own.emplace_back(entry.key(), entry.value());
  return own;
}

weights::TensorFile read_weights(const fs::path& file, const std::string& where) {
  try {
    return weights::read_tensor_file(file);
  } catch (const CheckpointError& e) {
    throw CheckpointError(fmt::format("{}: {}", where, e.what()));
  }
}

// The component's importer for `format`, or a ConfigError saying which formats it reads.
const weights::WeightImporter& importer_for(const torch::nn::Module& module,
                                            const ComponentSpec& spec, const std::string& format,
                                            const std::string& where) {
  const auto* importer = dynamic_cast<const weights::WeightImporter*>(&module);
  std::vector<std::string> formats = {"unitrain"};
  if (importer) {
    for (const auto& f : importer->weight_formats()) formats.push_back(f);
  }
  if (std::find(formats.begin(), formats.end(), format) == formats.end()) {
    throw ConfigError(fmt::format("{}/format: {} '{}' ({}) cannot read \"{}\" weights; it reads {}",
                                  where, spec.kind, spec.name, spec.type, format,
                                  fmt::join(formats, ", ")));
  }
  return *importer;
}

}  // namespace

void UnitModelImpl::import_component(const ComponentSpec& spec, const weights::InitFrom& init,
                                     const fs::path& file, const std::string& where) {
  auto module = component(spec.name);
  const auto& importer = importer_for(*module, spec, init.format, where);
  const auto tensors = read_weights(file, where);
  weights::ImportContext context;
  context.format = init.format;
  context.component = spec.name;
  context.tasks = tasks_;
  context.component_tasks = component_tasks(spec);
  weights::fill_task_names(init, tasks_, &context, where);
  std::string taken;
  const auto state = weights::state_of(tensors, &taken);
  const auto plan = weights::plan_import(importer.weight_map(context), state, own_state(*module),
                                         init.skip);
  std::vector<std::string> unexpected;
  for (const auto& name : plan.known) {
    if (!plan.consumed.count(name) && !plan.ignored.count(name)) unexpected.push_back(name);
  }
  size_t other = 0;
  for (const auto& entry : state) {
    const std::string& name = entry.first;  // a lambda cannot capture a structured binding in C++17
    const bool skipped = std::any_of(init.skip.begin(), init.skip.end(),
                                     [&](const std::string& g) { return weights::glob_match(g, name); });
    if (!plan.known.count(name) && !skipped) ++other;
  }
  auto report = weights::make_report(spec.name, init, tensors, taken, plan, unexpected, other);
  if (init.strict) weights::check_strict(report, tensors, where);
  weights::apply_plan(*module, plan);
  import_reports_.push_back(std::move(report));
}

void UnitModelImpl::import_model(const Experiment& experiment) {
  const std::string pointer = "/model/init_from";
  const std::string where = experiment.where(pointer);
  const auto init = weights::init_from_json(experiment.json.at("model").at("init_from"), where);
  fs::path file = resolve_init_path(experiment, pointer, init.file);
  if (init.format == "unitrain") {
    try {
      file = find_checkpoint(file);
    } catch (const CheckpointError& e) {
      throw CheckpointError(fmt::format("{}: {}", where, e.what()));
    }
  }
  const auto tensors = read_weights(file, where);
  std::string taken;
  const auto state = weights::state_of(tensors, &taken);

  // Every component plans from the same file; what none of them takes is unexpected.
  std::set<std::string> consumed, ignored, skipped;
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, weights::ImportPlan>> plans;
  std::vector<weights::ImportReport> reports;
  for (const auto& name : component_names()) {
    const auto& spec = specs_.at(name);
    auto module = component(name);
    weights::WeightMap map;
    if (init.format == "unitrain") {
      // A unitrain checkpoint of the same model: the names are ours.
      map.copy(spec.module_name + ".*", "*");
    } else {
      const auto& importer = importer_for(*module, spec, init.format, where);
      weights::ImportContext context;
      context.format = init.format;
      context.component = name;
      context.tasks = tasks_;
      context.component_tasks = component_tasks(spec);
      weights::fill_task_names(init, tasks_, &context, where);
      map = importer.weight_map(context);
    }
    auto plan = weights::plan_import(map, state, own_state(*module), init.skip);
    consumed.insert(plan.consumed.begin(), plan.consumed.end());
    ignored.insert(plan.ignored.begin(), plan.ignored.end());
    skipped.insert(plan.skipped_file.begin(), plan.skipped_file.end());
    reports.push_back(weights::make_report(name, init, tensors, taken, plan, {}, 0));
    plans.emplace_back(module, std::move(plan));
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, tensor] : state) {
    if (!consumed.count(name) && !ignored.count(name) && !skipped.count(name)) {
      unexpected.push_back(name);
    }
  }
  weights::ImportReport whole;
  whole.component = "model";
  whole.file = file.string();
  whole.format = init.format;
  whole.taken = taken;
  whole.unexpected = unexpected;
  for (const auto& r : reports) {
    whole.loaded += r.loaded;
    whole.kept += r.kept;
    whole.skipped += r.skipped;
    whole.skipped_file = std::max(whole.skipped_file, r.skipped_file);
    for (const auto& m : r.missing) whole.missing.push_back(r.component + ": " + m);
    for (const auto& m : r.mismatched) whole.mismatched.push_back(r.component + ": " + m);
  }
  if (init.strict) weights::check_strict(whole, tensors, where);
  for (auto& [module, plan] : plans) weights::apply_plan(*module, plan);
  import_reports_.push_back(std::move(whole));
  for (auto& r : reports) import_reports_.push_back(std::move(r));
}

const std::string& UnitModelImpl::check_task(const std::string& task) const {
  for (const auto& t : tasks_) {
    if (t == task) return t;
  }
  throw ConfigError(fmt::format("unknown task '{}'; the model's tasks: {}", task,
                                fmt::join(nearest_first(task, tasks_), ", ")));
}

int64_t UnitModelImpl::task_index(const std::string& task) const {
  const auto& t = check_task(task);
  return std::find(tasks_.begin(), tasks_.end(), t) - tasks_.begin();
}

ObjectEmbedImpl::ObjectEmbedImpl(int64_t d_model)
    : feature_(register_module("feature", torch::nn::Linear(d_model, d_model))),
      box_(register_module("box", torch::nn::Linear(4, d_model))),
      feature_norm_(register_module("feature_norm",
                                    torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})))),
      box_norm_(register_module("box_norm",
                                torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})))) {}

torch::Tensor ObjectEmbedImpl::forward(const torch::Tensor& slots, const torch::Tensor& boxes) {
  return (feature_norm_(feature_(slots)) + box_norm_(box_(boxes))) / 2;
}

EncoderOutput UnitModelImpl::encode(const std::string& task, const Batch& batch) {
  const auto& t = check_task(task);
  auto own = encode_own(t, batch);
  auto source = objects_from_.find(t);
  if (source == objects_from_.end()) return own;
  const auto& s = source->second;
  auto embed = object_embeds_.find(t);
  torch::Tensor objects, boxes;
  {
    // Read-only: the source task's encoders and queries learn from the source task alone.
    torch::NoGradGuard no_grad;
    auto decoded = decoders_.at(s)->decode(s, encode_own(s, batch)).slice(0, -1);  // [1, B, Q, D]
    objects = decoded[0];
    if (embed != object_embeds_.end()) {
      const auto& head = heads_.at(s);
      boxes = dynamic_cast<const BoxOutput&>(*head).boxes(head->run(decoded, batch, /*with_loss=*/false));
    }
  }
  const auto b = objects.size(0), q = objects.size(1);
  TORCH_CHECK(b == own.memory.size(0), "objects_from '", s, "' decoded ", b,
              " samples for a batch of ", own.memory.size(0));
  if (embed != object_embeds_.end()) objects = embed->second->forward(objects, boxes);
  auto none = torch::zeros({b, q}, torch::dtype(torch::kBool).device(objects.device()));
  return {torch::cat({own.memory, objects}, 1), torch::cat({own.mask, none}, 1),
          torch::cat({own.pos, torch::zeros_like(objects)}, 1)};
}

EncoderOutput UnitModelImpl::encode_own(const std::string& t, const Batch& batch) {
  const int64_t index = task_index(t);
  const int64_t d_model = decoders_.at(t)->d_model();
  std::vector<torch::Tensor> memory, mask, pos;
  for (const auto& name : task_encoders_.at(t)) {
    EncoderOutput out = encoders_.at(name)->encode(batch, index);
    TORCH_CHECK(out.memory.defined() && out.memory.dim() == 3 && out.memory.size(2) == d_model,
                "encoder '", name, "' returned memory of shape ",
                out.memory.defined() ? out.memory.sizes() : torch::IntArrayRef{},
                "; expected [B, S, ", d_model, "]");
    const int64_t b = out.memory.size(0), s = out.memory.size(1);
    if (!out.mask.defined()) {
      out.mask = torch::zeros({b, s}, torch::dtype(torch::kBool).device(out.memory.device()));
    }
    if (!out.pos.defined()) out.pos = torch::zeros_like(out.memory);
    TORCH_CHECK(out.mask.sizes() == torch::IntArrayRef({b, s}) && out.pos.sizes() == out.memory.sizes(),
                "encoder '", name, "' returned memory ", out.memory.sizes(), " with mask ",
                out.mask.sizes(), " and pos ", out.pos.sizes());
    memory.push_back(out.memory);
    mask.push_back(out.mask.to(torch::kBool));
    pos.push_back(out.pos);
  }
  if (memory.size() == 1) return {memory[0], mask[0], pos[0]};
  return {torch::cat(memory, 1), torch::cat(mask, 1), torch::cat(pos, 1)};
}

HeadOutput UnitModelImpl::forward(const std::string& task, const Batch& batch, bool with_loss) {
  const auto& t = check_task(task);
  auto decoded = decoders_.at(t)->decode(t, encode(t, batch));  // [L, B, Q, D]
  return heads_.at(t)->run(decoded, batch, with_loss);
}

Predictions UnitModelImpl::predict(const std::string& task, const HeadOutput& output,
                                   const Batch& batch) {
  return heads_.at(check_task(task))->predict(output, batch);
}

std::vector<std::string> UnitModelImpl::component_names() const {
  // Same order as registration: encoders, decoder(s), heads.
  std::vector<std::string> names;
  for (const auto& [name, e] : encoders_) names.push_back("encoders/" + name);
  if (specs_.count("decoder")) {
    names.push_back("decoder");
  } else {
    for (const auto& task : tasks_) names.push_back("decoders/" + task);
  }
  for (const auto& task : tasks_) names.push_back("heads/" + task);
  return names;
}

const ComponentSpec& UnitModelImpl::spec(const std::string& component) const {
  auto it = specs_.find(component);
  if (it == specs_.end()) {
    throw ConfigError(fmt::format("unknown component '{}'; this model's components: {}", component,
                                  fmt::join(nearest_first(component, component_names()), ", ")));
  }
  return it->second;
}

std::shared_ptr<torch::nn::Module> UnitModelImpl::component(const std::string& component) const {
  return named_children()[spec(component).module_name];
}

std::shared_ptr<Encoder> UnitModelImpl::encoder(const std::string& name) const {
  spec("encoders/" + name);
  return encoders_.at(name);
}

std::shared_ptr<Decoder> UnitModelImpl::decoder(const std::string& task) const {
  return decoders_.at(check_task(task));
}

std::shared_ptr<Head> UnitModelImpl::head(const std::string& task) const {
  return heads_.at(check_task(task));
}

std::map<std::string, int64_t> UnitModelImpl::parameter_counts() const {
  std::map<std::string, int64_t> counts;
  for (const auto& name : component_names()) counts[name] = count_parameters(*component(name));
  return counts;
}

std::map<std::string, int64_t> UnitModelImpl::other_parameter_counts() const {
  std::set<std::string> components;
  for (const auto& name : component_names()) components.insert(specs_.at(name).module_name);
  std::map<std::string, int64_t> counts;
  for (const auto& child : named_children()) {
    if (!components.count(child.key())) counts[child.key()] = count_parameters(*child.value());
  }
  return counts;
}

int64_t UnitModelImpl::parameter_count() const { return count_parameters(*this); }

namespace {

void summarize_children(const torch::nn::Module& module, int level, int depth, std::ostream& out) {
  if (level > depth) return;
  for (const auto& child : module.named_children()) {
    out << fmt::format("{:<40} {:<24} {:>14}\n", std::string(2 * level, ' ') + child.key(), "",
                       with_commas(count_parameters(*child.value())));
    summarize_children(*child.value(), level + 1, depth, out);
  }
}

}  // namespace

std::string model_summary(const UnitModelImpl& model, int depth) {
  std::ostringstream out;
  out << fmt::format("{:<40} {:<24} {:>14}\n", "component", "type", "parameters");
  for (const auto& name : model.component_names()) {
    const auto& spec = model.spec(name);
    auto module = model.component(name);
    out << fmt::format("{:<40} {:<24} {:>14}\n", name, spec.type, with_commas(count_parameters(*module)));
    summarize_children(*module, 1, depth, out);
  }
  const auto children = model.named_children();
  for (const auto& [name, count] : model.other_parameter_counts()) {
    out << fmt::format("{:<40} {:<24} {:>14}\n", name, "", with_commas(count));
    summarize_children(*children[name], 1, depth, out);
  }
  out << fmt::format("{:<40} {:<24} {:>14}\n", "total", "", with_commas(model.parameter_count()));
  return out.str();
}

}  // namespace unitrain

// The experiment schema, top to bottom. Plugin options are checked against each
// plugin's declared defaults; everything else against the defaults below.
#include <fmt/format.h>

#include "unitrain/config.h"
#include "unitrain/distributed.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"
#include "unitrain/weights/importer.h"

namespace unitrain {

using json = nlohmann::json;

json training_defaults() {
  return json::parse(R"({
    "max_steps": 1000,
    "lr": 5e-5,
    "backbone_lr": 1e-5,
    "weight_decay": 1e-4,
    "adam_eps": 1e-8,
    "adam_betas": [0.9, 0.999],
    "warmup_steps": 0,
    "lr_schedule": "cosine",
    "min_lr_ratio": 0.0,
    "clip_grad_norm": 0.1,
    "accumulate_steps": 1,
    "log_every": 10,
    "eval_every": 0,
    "eval_max_batches": 0,
    "checkpoint_every": 0,
    "keep_checkpoints": 2,
    "autocast": "off"
  })");
}

json data_defaults() {
  return json::parse(R"({"workers": 0, "prefetch": 4, "max_queued_mb": 0, "worker_nice": 0})");
}

json log_defaults() {
  return json::parse(R"({"tensorboard": false, "report": true})");
}

namespace {

class SchemaChecker {
 public:
  SchemaChecker(Experiment& experiment, const Registry* registry)
      : e_(experiment), registry_(registry) {}

  void check() {
    json& root = e_.json;
    only_keys(root, "", {"name", "description", "seed", "device", "threads", "plugin_dirs",
                         "plugins", "model", "tasks", "scheduler", "training", "data",
                         "distributed", "output_dir", "log", "step"});
    required(root, "", "name", json("string"));
    optional(root, "", "description", json(""));
    optional(root, "", "seed", json(0));
    optional(root, "", "device", json("cpu"));
    optional(root, "", "threads", json(0));
    optional(root, "", "plugin_dirs", json::array());
    optional(root, "", "plugins", json::array());
    optional(root, "", "output_dir", json(""));
    strings(root["plugin_dirs"], "/plugin_dirs");
    strings(root["plugins"], "/plugins");

    json& model = required(root, "", "model", json::object());
    only_keys(model, "/model", {"encoders", "decoder", "share_decoders", "heads", "init_from"});
    if (model.contains("init_from")) {
      const auto where = e_.where("/model/init_from");
      const auto init = weights::init_from_json(model["init_from"], where);
      if (init.format != "mmf_unit" && init.format != "unitrain") {
        throw ConfigError(fmt::format("{}/format: the whole model reads \"mmf_unit\" (an MMF UniT "
                                      "checkpoint) or \"unitrain\" (a unitrain checkpoint or run "
                                      "folder's last.pt); \"{}\" belongs on a component's block",
                                      where, init.format));
      }
    }
    json& encoders = required(model, "/model", "encoders", json::object());
    for (auto& [name, block] : encoders.items()) {
      component(block, pointer_join("/model/encoders", name), "encoder");
    }
    component(required(model, "/model", "decoder", json::object()), "/model/decoder", "decoder");
    optional(model, "/model", "share_decoders", json(true));
    json& heads = required(model, "/model", "heads", json::object());

    json& tasks = required(root, "", "tasks", json::object());
    if (tasks.empty()) throw ConfigError(e_.where("/tasks") + ": at least one task is required");
    std::vector<std::string> task_names;
    for (auto& [task, spec] : tasks.items()) {
      task_names.push_back(task);
      check_task(task, spec, encoders);
      if (!heads.contains(task)) {
        throw ConfigError(fmt::format("{}: missing required key '{}' (every task needs a head)",
                                      e_.where("/model/heads"), task));
      }
    }
    only_keys(heads, "/model/heads", task_names);
    for (auto& [task, spec] : tasks.items()) {
      if (!spec.contains("objects_from")) continue;
      const std::string p = pointer_join("/tasks", task) + "/objects_from";
      const json& source = spec.at("objects_from");
      if (!source.is_string() || !tasks.contains(source.get<std::string>())) {
        throw ConfigError(fmt::format("{}: expected the name of another task ({}), found {}",
                                      e_.where(p), fmt::join(task_names, ", "), json_text(source)));
      }
    }
    for (auto& [task, block] : heads.items()) {
      component(block, pointer_join("/model/heads", task), "head");
    }

    if (!root.contains("scheduler") && registry_ != nullptr) {
      // The scheduler a plugin library names as the default (UNITRAIN_EXPORT_DEFAULTS).
      const auto type = registry_->default_plugin("scheduler");
      if (!type) {
        throw ConfigError(fmt::format(
            "{}: no \"scheduler\" block, and no loaded plugin library names a default "
            "scheduler; add {{\"scheduler\": {{\"type\": ...}}}} (`unitrain plugins` lists them)",
            e_.where("")));
      }
      root["scheduler"] = json{{"type", *type}};
    }
    if (root.contains("scheduler")) component(root["scheduler"], "/scheduler", "scheduler");
    check_step(root, tasks.size());

    root["training"] = merge_checked(training_defaults(),
                                     root.value("training", json::object()), e_, "/training");
    root["data"] = merge_checked(data_defaults(), root.value("data", json::object()), e_, "/data");
    if (root["data"]["workers"].get<int64_t>() < 0) {
      throw ConfigError(fmt::format("{}: expected 0 (one budget from the available cores) or a "
                                    "positive number of threads per task, found {}",
                                    e_.where("/data/workers"), json_text(root["data"]["workers"])));
    }
    positive(root["data"], "/data", "prefetch");
    if (root["data"]["max_queued_mb"].get<int64_t>() < 0) {
      throw ConfigError(fmt::format(
          "{}: expected 0 (an eighth of the memory, 256 MiB to 4 GiB) or a positive number of "
          "MiB, found {}",
          e_.where("/data/max_queued_mb"), json_text(root["data"]["max_queued_mb"])));
    }
    const json& nice = root["data"]["worker_nice"];
    if (!nice.is_number_integer() || nice.get<int64_t>() < 0 || nice.get<int64_t>() > 19) {
      throw ConfigError(fmt::format("{}: expected an integer from 0 (the training thread's "
                                    "priority) to 19 (the lowest), found {}",
                                    e_.where("/data/worker_nice"), json_text(nice)));
    }
    root["log"] = merge_checked(log_defaults(), root.value("log", json::object()), e_, "/log");
    root["distributed"] = merge_checked(distributed_defaults(),
                                        root.value("distributed", json::object()), e_,
                                        "/distributed");
    distributed_options_from_json(root["distributed"], e_);
  }

 private:
  void check_task(const std::string& task, json& spec, const json& encoders) {
    const std::string p = pointer_join("/tasks", task);
    expect(spec, p, json::object());
    only_keys(spec, p, {"dataset", "encoders", "num_queries", "batch_size", "eval_batch_size",
                        "ratio", "loss_weight", "train_split", "val_split", "objects_from",
                        "objects_boxes"});
    component(required(spec, p, "dataset", json::object()), p + "/dataset", "dataset");
    if (spec.contains("objects_boxes")) {
      const json& boxes = spec.at("objects_boxes");
      if (!boxes.is_boolean()) {
        throw ConfigError(fmt::format("{}: expected true or false, found {}",
                                      e_.where(p + "/objects_boxes"), json_text(boxes)));
      }
      if (boxes.get<bool>() && !spec.contains("objects_from")) {
        throw ConfigError(fmt::format("{}: needs objects_from (the task whose boxes it reads)",
                                      e_.where(p + "/objects_boxes")));
      }
    }
    json& used = required(spec, p, "encoders", json::array());
    strings(used, p + "/encoders");
    if (used.empty()) throw ConfigError(e_.where(p + "/encoders") + ": a task needs at least one encoder");
    for (size_t i = 0; i < used.size(); ++i) {
      const auto name = used[i].get<std::string>();
      if (!encoders.contains(name)) {
        std::vector<std::string> known;
        for (const auto& [k, v] : encoders.items()) known.push_back(k);
        throw ConfigError(fmt::format("{}: unknown encoder '{}'; encoders in /model/encoders: {}",
                                      e_.where(p + "/encoders/" + std::to_string(i)), name,
                                      fmt::join(nearest_first(name, known), ", ")));
      }
    }
    optional(spec, p, "num_queries", json(25));
    optional(spec, p, "batch_size", json(8));
    optional(spec, p, "eval_batch_size", json(0));
    optional(spec, p, "ratio", json(1.0));
    optional(spec, p, "loss_weight", json(1.0));
    optional(spec, p, "train_split", json("train"));
    optional(spec, p, "val_split", json("val"));
    positive(spec, p, "num_queries");
    positive(spec, p, "batch_size");
    if (spec["ratio"].get<double>() < 0) {
      throw ConfigError(e_.where(p + "/ratio") + ": expected a ratio >= 0");
    }
  }

  // "step": {"tasks": k or "all", "combine": {"type": RULE, ...}, "cosine_every": n}
  // (docs/multitask.md).
  void check_step(json& root, size_t num_tasks) {
    if (!root.contains("step")) root["step"] = json::object();
    json& step = root["step"];
    expect(step, "/step", json::object());
    only_keys(step, "/step", {"tasks", "combine", "cosine_every"});
    if (!step.contains("tasks")) step["tasks"] = 1;
    const json& k = step["tasks"];
    const bool all = k.is_string() && k.get<std::string>() == "all";
    if (!all && !(k.is_number_integer() && k.get<int64_t>() >= 1 &&
                  k.get<int64_t>() <= static_cast<int64_t>(num_tasks))) {
      throw ConfigError(fmt::format("{}: expected \"all\" or an integer from 1 to {} (the number "
                                    "of tasks), found {}",
                                    e_.where("/step/tasks"), num_tasks, json_text(k)));
    }
    optional(step, "/step", "cosine_every", json(0));
    if (step["cosine_every"].get<int64_t>() < 0) {
      throw ConfigError(fmt::format("{}: expected an integer >= 0 (0 = never), found {}",
                                    e_.where("/step/cosine_every"), json_text(step["cosine_every"])));
    }
    // The default needs no plugin: one task per update never combines anything.
    if (!step.contains("combine")) {
      step["combine"] = json{{"type", "sum"}};
    } else {
      component(step["combine"], "/step/combine", "combine");
    }
  }

  // {"type": NAME, "init_from": FILE or {...}?, ...options}: options checked against the
  // plugin.
  void component(json& block, const std::string& p, const std::string& kind) {
    expect(block, p, json::object());
    const std::string type = required(block, p, "type", json("string")).get<std::string>();
    if (block.contains("init_from")) {
      const auto init = weights::init_from_json(block["init_from"], e_.where(p + "/init_from"));
      if (init.format == "mmf_unit") {
        throw ConfigError(fmt::format("{}: \"format\": \"mmf_unit\" reads a whole MMF UniT "
                                      "checkpoint: put it on the model, as /model/init_from",
                                      e_.where(p + "/init_from/format")));
      }
    }
    if (registry_ == nullptr) return;
    try {
      registry_->find(kind, type);
    } catch (const RegistryError& error) {
      throw ConfigError(fmt::format("{}: {}", e_.where(p + "/type"), error.what()));
    }
    json options = block;
    options.erase("type");
    options.erase("init_from");
    json merged = registry_->resolve_options(
        kind, type, options, [&](const std::string& pointer) { return e_.where(pointer); }, p);
    merged["type"] = type;
    if (block.contains("init_from")) merged["init_from"] = block["init_from"];
    block = merged;
  }

  void only_keys(const json& object, const std::string& p, const std::vector<std::string>& keys) {
    for (const auto& [key, value] : object.items()) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
        throw ConfigError(fmt::format("{}: unknown key '{}'; valid keys: {}",
                                      e_.where(pointer_join(p, key)), key,
                                      fmt::join(nearest_first(key, keys), ", ")));
      }
    }
  }

  // `example` gives the expected JSON type ("string" stands for any string).
  void expect(const json& value, const std::string& p, const json& example) {
    bool ok = example.is_number_integer() ? value.is_number_integer()
              : example.is_number()       ? value.is_number()
                                          : value.type() == example.type();
    if (!ok) {
      static const std::map<json::value_t, const char*> kNames = {
          {json::value_t::string, "a string"},        {json::value_t::object, "an object"},
          {json::value_t::array, "an array"},         {json::value_t::boolean, "a boolean"},
          {json::value_t::number_integer, "an integer"}, {json::value_t::number_float, "a number"},
          {json::value_t::number_unsigned, "an integer"}, {json::value_t::null, "null"}};
      std::string found = json_text(value);
      found = shorten(found, 60);
      throw ConfigError(fmt::format("{}: expected {}, found {}", e_.where(p),
                                    kNames.at(example.type()), found));
    }
  }

  json& required(json& object, const std::string& p, const std::string& key, const json& example) {
    if (!object.contains(key)) {
      throw ConfigError(fmt::format("{}: missing required key '{}'", e_.where(p), key));
    }
    expect(object[key], pointer_join(p, key), example);
    return object[key];
  }

  void optional(json& object, const std::string& p, const std::string& key, const json& fallback) {
    if (object.contains(key)) {
      expect(object[key], pointer_join(p, key), fallback);
    } else {
      object[key] = fallback;
    }
  }

  void strings(const json& array, const std::string& p) {
    for (size_t i = 0; i < array.size(); ++i) {
      expect(array[i], p + "/" + std::to_string(i), json("string"));
    }
  }

  void positive(const json& object, const std::string& p, const std::string& key) {
    if (object[key].get<int64_t>() <= 0) {
      throw ConfigError(fmt::format("{}: expected a positive integer, found {}",
                                    e_.where(pointer_join(p, key)), json_text(object[key])));
    }
  }

  Experiment& e_;
  const Registry* registry_;
};

}  // namespace

void validate_experiment(Experiment& experiment, const Registry* registry) {
  SchemaChecker(experiment, registry).check();
}

}  // namespace unitrain

// Building a run: the parts training and evaluation share, then the optimizer and the
// task scheduler.
#include "train/build.h"

#include <iostream>

#include <fmt/format.h>

#include "unitrain/distributed.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"
#include "unitrain/sizes.h"

namespace unitrain::train {
using json = nlohmann::json;

namespace {

// Every rank checks that the others run the same experiment and plugins, then starts
// from rank 0's weights.
std::unique_ptr<DataParallel> start_data_parallel(const Experiment& experiment,
                                                  const Registry& registry,
                                                  std::shared_ptr<ProcessGroup> group,
                                                  UnitModelImpl& model) {
  std::vector<std::string> names;
  for (const auto& [name, spec] : experiment.json.at("tasks").items()) names.push_back(name);
  auto parallel = std::make_unique<DataParallel>(
      std::move(group),
      distributed_options_from_json(experiment.json.at("distributed"), experiment), names);
  json plugins = json::array();
  for (const auto& info : registry.list()) {
    plugins.push_back(info.kind + "/" + info.name + " " + info.version);
  }
  parallel->check_same_setup({{"experiment", experiment.json}, {"plugins", plugins}});
  parallel->broadcast_model(model);
  return parallel;
}

// The task's head against its dataset's label count and its text encoders against the
// dataset's tokenizer, where the components state them (unitrain/sizes.h).
void check_sizes(const Experiment& experiment, UnitModelImpl& model, const TaskData& t) {
  const Dataset& data = t.train ? *t.train : *t.eval;
  const std::string split = t.train ? t.spec.at("train_split").get<std::string>() : t.eval_split;
  const std::string data_where = experiment.where("/tasks/" + t.name + "/dataset");
  const LabelSpace labels = data.labels();
  const auto* count = dynamic_cast<const LabelCount*>(model.head(t.name).get());
  const auto expected = static_cast<int64_t>(labels.names.size());
  if (count && expected > 0 && count->num_labels() != expected) {
    const auto& head = model.spec("heads/" + t.name);
    throw ConfigError(fmt::format(
        "{}: the head of task '{}' scores {} labels, but the '{}' split of its dataset ({}) "
        "has {} ({}): set the head's label count to {}",
        experiment.where(head.pointer), t.name, count->num_labels(), split, data_where,
        expected, labels.kind, expected));
  }
  const auto* tokens = dynamic_cast<const TokenVocabulary*>(&data);
  if (!tokens) return;
  for (const auto& name : t.spec.at("encoders")) {
    const auto encoder = model.encoder(name.get<std::string>());
    const auto* vocabulary = dynamic_cast<const TokenVocabulary*>(encoder.get());
    if (!vocabulary || tokens->vocabulary_size() <= vocabulary->vocabulary_size()) continue;
    throw ConfigError(fmt::format(
        "{}: the tokenizer of task '{}' makes token ids up to {}, but text encoder '{}' ({}) "
        "embeds only ids below {}: give the encoder the task's tokenizer (its \"tokenizer\" "
        "option sets vocab_size) or a vocab_size of at least {}",
        data_where, t.name, tokens->vocabulary_size() - 1, name.get<std::string>(),
        experiment.where(model.spec("encoders/" + name.get<std::string>()).pointer),
        vocabulary->vocabulary_size(), tokens->vocabulary_size()));
  }
}

}  // namespace

RunSetup::RunSetup(const Experiment& e, const Registry& r, RunSetupOptions options)
    : experiment(e), registry(r) {
  const json& j = experiment.json;
  device = parse_device(j.at("device").get<std::string>(), experiment.where("/device"));
  seed = j.at("seed").get<uint64_t>();
  configure_threads(j.at("threads").get<int64_t>());
  const auto budget = data::loader_budget(j.at("data").at("workers").get<int64_t>(),
                                          j.at("data").at("prefetch").get<int64_t>(),
                                          static_cast<int64_t>(j.at("tasks").size()));
  workers = budget.workers;
  prefetch = budget.prefetch;
  worker_nice = j.at("data").at("worker_nice").get<int64_t>();
  const int64_t queued_mb = j.at("data").at("max_queued_mb").get<int64_t>();
  queue_budget = std::make_shared<data::QueueBudget>(
      queued_mb > 0 ? queued_mb * (int64_t{1} << 20) : data::default_queue_bytes());

  torch::manual_seed(seed);
  model = UnitModel(experiment, registry_factory(registry), options.load_init_from);
  if (options.console) {
    for (const auto& report : model->import_reports()) {
      std::cerr << "init_from: " << report.summary(options.verbose) << "\n";
    }
  }
  model->to(device);
  if (options.group && options.group->world_size() > 1) {
    parallel = start_data_parallel(experiment, registry, options.group, *model);
    writer = parallel->rank() == 0;
  }

  for (const auto& [name, spec] : j.at("tasks").items()) {
    TaskData t;
    t.name = name;
    t.spec = spec;
    t.loss_weight = spec.at("loss_weight").get<double>();
    t.batch_size = spec.at("batch_size").get<int64_t>();
    const int64_t eval_batch = spec.at("eval_batch_size").get<int64_t>();
    t.eval_batch_size = eval_batch > 0 ? eval_batch : t.batch_size;
    const auto train_split = spec.at("train_split").get<std::string>();
    if (options.open_training_splits) {
      t.train = make_dataset(name, train_split);
      if (t.train->size() == 0) {
        throw DataError(fmt::format("{}: the '{}' split of task '{}' has no records",
                                    experiment.where("/tasks/" + name + "/dataset"),
                                    train_split, name));
      }
    }
    t.eval_split = options.eval_split.empty() ? spec.at("val_split").get<std::string>()
                                              : options.eval_split;
    t.eval = t.train && t.eval_split == train_split ? t.train : make_dataset(name, t.eval_split);
    check_sizes(experiment, *model, t);
    tasks.push_back(std::move(t));
  }
}

std::shared_ptr<const Dataset> RunSetup::make_dataset(const std::string& task,
                                                      const std::string& split) const {
  const std::string pointer = "/tasks/" + task + "/dataset";
  json block = experiment.json.at("tasks").at(task).at("dataset");
  const std::string type = block.at("type").get<std::string>();
  block.erase("type");
  block.erase("init_from");
  block["split"] = split;
  return registry.create_as<Dataset>("dataset", type, block, experiment.where(pointer));
}

data::LoaderOptions RunSetup::loader_options(const TaskData& t, bool training) const {
  data::LoaderOptions o;
  o.batch_size = training ? t.batch_size : t.eval_batch_size;
  o.num_workers = workers;
  o.prefetch = prefetch;
  o.shuffle = training;
  o.infinite = training;
  o.seed = seed;
  o.task = t.name;
  o.device = device;
  o.queue_budget = queue_budget;
  o.worker_nice = worker_nice;
  if (parallel) {
    o.rank = parallel->rank();
    o.world_size = parallel->world_size();
  }
  return o;
}

Optimization build_optimizer(UnitModelImpl& model, const TrainingOptions& options) {
  Optimization out;
  std::vector<torch::Tensor> groups[4];
  for (const auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    // "backbone" as a whole segment of the dotted name (encoders.image.backbone.conv1...).
    const std::string& name = item.key();
    const bool backbone = name.rfind("backbone.", 0) == 0 || name.find(".backbone.") != std::string::npos;
    const bool decay = item.value().dim() > 1;
    groups[(backbone ? 2 : 0) + (decay ? 0 : 1)].push_back(item.value());
    out.parameters.push_back(item.value());
    out.parameter_names.push_back(item.key());
  }
  std::vector<FlatAdamW::Group> param_groups;
  for (int g = 0; g < 4; ++g) {
    if (groups[g].empty()) continue;
    const double lr = g >= 2 ? options.backbone_lr : options.lr;
    param_groups.push_back({groups[g], lr, g % 2 == 0 ? options.weight_decay : 0.0});
    out.group_base_lr.push_back(lr);
  }
  out.optimizer = std::make_unique<FlatAdamW>(std::move(param_groups), options.adam_beta1,
                                              options.adam_beta2, options.adam_eps);
  return out;
}

std::shared_ptr<TaskScheduler> build_scheduler(const RunSetup& setup) {
  json block = setup.experiment.json.at("scheduler");
  const std::string type = block.at("type").get<std::string>();
  block.erase("type");
  block.erase("init_from");
  auto scheduler = setup.registry.create_as<TaskScheduler>("scheduler", type, block,
                                                           setup.experiment.where("/scheduler"));
  std::vector<SchedulerTask> infos;
  for (const auto& t : setup.tasks) {
    infos.push_back({t.name, t.train->size(), (t.train->size() + t.batch_size - 1) / t.batch_size,
                     t.spec.at("ratio").get<double>()});
  }
  scheduler->setup(infos);
  return scheduler;
}

std::shared_ptr<GradientCombiner> build_combiner(const RunSetup& setup) {
  json block = setup.experiment.json.at("step").at("combine");
  const std::string type = block.at("type").get<std::string>();
  block.erase("type");
  return setup.registry.create_as<GradientCombiner>("combine", type, block,
                                                    setup.experiment.where("/step/combine"));
}

std::vector<std::string> task_names(const RunSetup& setup) {
  std::vector<std::string> names;
  for (const auto& t : setup.tasks) names.push_back(t.name);
  return names;
}

}  // namespace unitrain::train

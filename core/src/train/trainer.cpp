// The training loop. Reads top to bottom: build (model, data, optimizer, scheduler),
// resume, step, evaluate, checkpoint.
#include "unitrain/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include "unitrain/adamw.h"
#include "unitrain/checkpoint.h"
#include "unitrain/data/loader.h"
#include "unitrain/dataset.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"
#include "unitrain/scheduler.h"
#include "unitrain/sizes.h"
#include "train/data_parallel.h"
#include "train/durable_file.h"
#include "train/run_folder.h"

namespace unitrain {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kTrainerStateKey = "trainer";
constexpr const char* kOptimizerKey = "optimizer";
constexpr const char* kTorchRngKey = "torch_rng";
constexpr const char* kCudaRngKey = "cuda_rng";  // one state per CUDA device, when there are any

using Clock = std::chrono::steady_clock;

struct TaskData {
  std::string name;
  json spec;  // tasks.<name>
  double loss_weight = 1.0;
  int64_t batch_size = 1;
  int64_t eval_batch_size = 1;
  std::shared_ptr<const Dataset> train;  // null when the trainer only evaluates
  // The split evaluate() reads by default (TrainerConfig::eval_split, else val_split),
  // opened with the training split so that a missing file stops the run at its start.
  std::string eval_split;
  std::shared_ptr<const Dataset> eval;
  std::unique_ptr<data::DataLoader> loader;
  double last_loss = NAN;
  // Throughput of this process (not restored on resume): optimizer updates whose last
  // micro-batch came from this task, samples of every micro-batch, and the wall time of
  // its steps, `seconds`, split into waiting for the batch (data_s), forward with the
  // loss (forward_s), backward (backward_s) and clipping + optimizer step (update_s).
  int64_t steps = 0;
  int64_t samples = 0;
  double seconds = 0;
  double data_s = 0, forward_s = 0, backward_s = 0, update_s = 0;
};

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{:02}:{:02}", s / 60, s % 60);
}

}  // namespace

struct Trainer::Impl {
  Experiment experiment;
  const Registry& registry;
  TrainerConfig config;
  TrainingOptions options;
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;
  int64_t workers = 1;
  int64_t prefetch = 4;
  std::shared_ptr<data::QueueBudget> queue_budget;  // shared by every loader of the run

  UnitModel model{nullptr};
  std::unique_ptr<FlatAdamW> optimizer;
  std::vector<double> group_base_lr;  // peak lr of each parameter group
  std::vector<torch::Tensor> parameters;
  std::vector<std::string> parameter_names;  // of `parameters`, for messages
  std::shared_ptr<TaskScheduler> scheduler;
  TaskRng task_rng;
  std::vector<TaskData> tasks;

  int64_t step = 0;
  std::vector<StepRecord> history;
  std::ofstream metrics;
  // Data parallelism (null in one process); only rank 0 writes files and progress.
  std::unique_ptr<train::DataParallel> parallel;
  bool writer = true;

  Impl(const Experiment& e, const Registry& r, TrainerConfig c)
      : experiment(e), registry(r), config(std::move(c)) {
    const json& j = experiment.json;
    options = training_options_from_json(j.at("training"), experiment);
    device = parse_device(j.at("device").get<std::string>(), experiment.where("/device"));
    seed = j.at("seed").get<uint64_t>();
    configure_threads(j.at("threads").get<int64_t>());
    const auto budget = data::loader_budget(j.at("data").at("workers").get<int64_t>(),
                                            j.at("data").at("prefetch").get<int64_t>(),
                                            static_cast<int64_t>(j.at("tasks").size()));
    workers = budget.workers;
    prefetch = budget.prefetch;
    const int64_t queued_mb = j.at("data").at("max_queued_mb").get<int64_t>();
    queue_budget = std::make_shared<data::QueueBudget>(
        queued_mb > 0 ? queued_mb * (int64_t{1} << 20) : data::default_queue_bytes());
    task_rng = TaskRng(seed);

    torch::manual_seed(seed);
    // A resumed run's weights come from its checkpoint: init_from files are not read.
    model = UnitModel(experiment, registry_factory(registry),
                      /*load_init_from=*/!config.resume && !config.evaluate_only);
    if (config.console) {
      for (const auto& report : model->import_reports()) {
        std::cerr << "init_from: " << report.summary(config.verbose) << "\n";
      }
    }
    model->to(device);
    if (config.group && config.group->world_size() > 1) start_data_parallel();
    build_datasets();
    if (config.evaluate_only) return;
    build_optimizer();
    build_scheduler();
  }

  // --- build -----------------------------------------------------------------------

  // Every rank checks that the others run the same experiment and plugins, then starts
  // from rank 0's weights.
  void start_data_parallel() {
    std::vector<std::string> names;
    for (const auto& [name, spec] : experiment.json.at("tasks").items()) names.push_back(name);
    parallel = std::make_unique<train::DataParallel>(
        config.group,
        distributed_options_from_json(experiment.json.at("distributed"), experiment), names);
    writer = parallel->rank() == 0;
    json plugins = json::array();
    for (const auto& info : registry.list()) {
      plugins.push_back(info.kind + "/" + info.name + " " + info.version);
    }
    parallel->check_same_setup({{"experiment", experiment.json}, {"plugins", plugins}});
    parallel->broadcast_model(*model);
  }

  std::shared_ptr<const Dataset> make_dataset(const std::string& task, const std::string& split) {
    const std::string pointer = "/tasks/" + task + "/dataset";
    json block = experiment.json.at("tasks").at(task).at("dataset");
    const std::string type = block.at("type").get<std::string>();
    block.erase("type");
    block.erase("init_from");
    block["split"] = split;
    return registry.create_as<Dataset>("dataset", type, block, experiment.where(pointer));
  }

  void build_datasets() {
    for (const auto& [name, spec] : experiment.json.at("tasks").items()) {
      TaskData t;
      t.name = name;
      t.spec = spec;
      t.loss_weight = spec.at("loss_weight").get<double>();
      t.batch_size = spec.at("batch_size").get<int64_t>();
      int64_t eval_batch = spec.at("eval_batch_size").get<int64_t>();
      t.eval_batch_size = eval_batch > 0 ? eval_batch : t.batch_size;
      const auto train_split = spec.at("train_split").get<std::string>();
      if (!config.evaluate_only) {
        t.train = make_dataset(name, train_split);
        if (t.train->size() == 0) {
          throw DataError(fmt::format("{}: the '{}' split of task '{}' has no records",
                                      experiment.where("/tasks/" + name + "/dataset"),
                                      train_split, name));
        }
      }
      t.eval_split = config.eval_split.empty() ? spec.at("val_split").get<std::string>()
                                               : config.eval_split;
      t.eval = t.train && t.eval_split == train_split ? t.train : make_dataset(name, t.eval_split);
      check_sizes(t);
      tasks.push_back(std::move(t));
    }
  }

  // The task's head against its dataset's label count and its text encoders against the
  // dataset's tokenizer, where the components state them (unitrain/sizes.h).
  void check_sizes(const TaskData& t) const {
    const Dataset& data = t.train ? *t.train : *t.eval;
    const std::string split = t.train ? t.spec.at("train_split").get<std::string>() : t.eval_split;
    const std::string data_where = experiment.where("/tasks/" + t.name + "/dataset");
    const LabelSpace labels = data.labels();
    const auto* count = dynamic_cast<const LabelCount*>(model->head(t.name).get());
    const auto expected = static_cast<int64_t>(labels.names.size());
    if (count && expected > 0 && count->num_labels() != expected) {
      const auto& head = model->spec("heads/" + t.name);
      throw ConfigError(fmt::format(
          "{}: the head of task '{}' scores {} labels, but the '{}' split of its dataset ({}) "
          "has {} ({}): set the head's label count to {}",
          experiment.where(head.pointer), t.name, count->num_labels(), split, data_where,
          expected, labels.kind, expected));
    }
    const auto* tokens = dynamic_cast<const TokenVocabulary*>(&data);
    if (!tokens) return;
    for (const auto& name : t.spec.at("encoders")) {
      const auto encoder = model->encoder(name.get<std::string>());
      const auto* vocabulary = dynamic_cast<const TokenVocabulary*>(encoder.get());
      if (!vocabulary || tokens->vocabulary_size() <= vocabulary->vocabulary_size()) continue;
      throw ConfigError(fmt::format(
          "{}: the tokenizer of task '{}' makes token ids up to {}, but text encoder '{}' ({}) "
          "embeds only ids below {}: give the encoder the task's tokenizer (its \"tokenizer\" "
          "option sets vocab_size) or a vocab_size of at least {}",
          data_where, t.name, tokens->vocabulary_size() - 1, name.get<std::string>(),
          experiment.where(model->spec("encoders/" + name.get<std::string>()).pointer),
          vocabulary->vocabulary_size(), tokens->vocabulary_size()));
    }
  }

  data::LoaderOptions loader_options(const TaskData& t, bool training) const {
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
    if (parallel) {
      o.rank = parallel->rank();
      o.world_size = parallel->world_size();
    }
    return o;
  }

  void start_loaders(const std::vector<data::LoaderState>& states) {
    for (size_t i = 0; i < tasks.size(); ++i) {
      tasks[i].loader = std::make_unique<data::DataLoader>(
          tasks[i].train, loader_options(tasks[i], true),
          i < states.size() ? states[i] : data::LoaderState{});
    }
  }

  // Four groups: {backbone, rest} x {decay, no decay}. Biases and norm weights (1-D)
  // get no weight decay; parameters under a "backbone" module get backbone_lr.
  void build_optimizer() {
    std::vector<torch::Tensor> groups[4];
    for (const auto& item : model->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      const bool backbone = item.key().find("backbone.") != std::string::npos;
      const bool decay = item.value().dim() > 1;
      groups[(backbone ? 2 : 0) + (decay ? 0 : 1)].push_back(item.value());
      parameters.push_back(item.value());
      parameter_names.push_back(item.key());
    }
    std::vector<FlatAdamW::Group> param_groups;
    for (int g = 0; g < 4; ++g) {
      if (groups[g].empty()) continue;
      const double lr = g >= 2 ? options.backbone_lr : options.lr;
      param_groups.push_back({groups[g], lr, g % 2 == 0 ? options.weight_decay : 0.0});
      group_base_lr.push_back(lr);
    }
    optimizer = std::make_unique<FlatAdamW>(std::move(param_groups), options.adam_beta1,
                                            options.adam_beta2, options.adam_eps);
  }

  void build_scheduler() {
    json block = experiment.json.at("scheduler");
    const std::string type = block.at("type").get<std::string>();
    block.erase("type");
    block.erase("init_from");
    scheduler = registry.create_as<TaskScheduler>("scheduler", type, block,
                                                  experiment.where("/scheduler"));
    std::vector<SchedulerTask> infos;
    for (const auto& t : tasks) {
      infos.push_back({t.name, t.train->size(), (t.train->size() + t.batch_size - 1) / t.batch_size,
                       t.spec.at("ratio").get<double>()});
    }
    scheduler->setup(infos);
  }

  void set_lr(int64_t at_step) {
    const double factor = lr_factor(options, at_step);
    for (size_t g = 0; g < optimizer->num_groups(); ++g) {
      optimizer->set_lr(g, group_base_lr[g] * factor);
    }
  }

  double current_lr() const {
    return optimizer->num_groups() > 0 ? optimizer->lr(0) : 0.0;
  }

  // --- checkpoints -------------------------------------------------------------------

  fs::path checkpoint_dir() const { return config.run_dir / train::kCheckpointFolder; }

  // NOTE: a crash at any point leaves last.pt and every step file either complete or as
  // before: each file is synced before its rename and the folder after it, and older
  // checkpoints are deleted only once the new file has been read back.
  void save_checkpoint() {
    fs::create_directories(checkpoint_dir());
    torch::serialize::OutputArchive archive;
    write_model_state(archive, *model, experiment.json);
    std::map<std::string, LabelSpace> labels;
    for (const auto& t : tasks) labels[t.name] = t.train->labels();
    write_label_spaces(archive, labels);
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write(kOptimizerKey, optimizer_archive);
    json state = {{"step", step},
                  {"task_rng", task_rng.state()},
                  {"scheduler", scheduler->state()},
                  {"loaders", json::object()}};
    for (const auto& t : tasks) {
      auto s = t.loader->state();
      state["loaders"][t.name] = {{"epoch", s.epoch}, {"position", s.position}};
    }
    archive.write(kTrainerStateKey, c10::IValue(json_text(state)));
    {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      archive.write(kTorchRngKey, generator.get_state());
    }
    // Dropout on a CUDA device draws from that device's generator.
    if (torch::cuda::is_available()) {
      c10::List<torch::Tensor> states;
      for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
        at::Generator generator = at::globalContext().defaultGenerator(
            torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(i)));
        std::lock_guard<std::mutex> lock(generator.mutex());
        states.push_back(generator.get_state());
      }
      archive.write(kCudaRngKey, c10::IValue(states));
    }
    const fs::path file = checkpoint_dir() / fmt::format("step_{:08}.pt", step);
    const fs::path tmp = file.string() + ".tmp";
    try {
      train::write_durably(file, [&](const fs::path& path) { train::save_archive(archive, path); });
    } catch (const std::exception& e) {
      std::error_code ec;
      fs::remove(tmp, ec);
      const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
      throw CheckpointError(fmt::format(
          "step {}: {}; last.pt and the older checkpoints were kept", step,
          torch_error ? torch_error->what_without_backtrace() : e.what()));
    }
    verify_checkpoint(file);
    // last.pt: a hard link to the newest step file, swapped in atomically.
    const fs::path last_tmp = checkpoint_dir() / "last.pt.tmp";
    std::error_code ec;
    fs::remove(last_tmp, ec);
    fs::create_hard_link(file, last_tmp, ec);
    if (ec) {
      fs::copy_file(file, last_tmp, fs::copy_options::overwrite_existing);
      train::sync_file(last_tmp);
    }
    fs::rename(last_tmp, checkpoint_dir() / "last.pt");
    train::sync_folder(checkpoint_dir());
    prune_checkpoints();
  }

  // The file just written reads back as a checkpoint of this trainer (a full disk or a
  // failing device can leave a file that saved without error but does not load).
  void verify_checkpoint(const fs::path& file) const {
    try {
      torch::serialize::InputArchive archive = open_checkpoint(file);
      c10::IValue format, state;
      if (!archive.try_read("format", format) || !format.isString() ||
          format.toStringRef() != kCheckpointFormat ||
          !archive.try_read(kTrainerStateKey, state) || !state.isString()) {
        throw CheckpointError(fmt::format("{}: no format or trainer state entry", file.string()));
      }
    } catch (const CheckpointError& e) {
      throw CheckpointError(fmt::format(
          "step {}: the checkpoint just written does not read back ({}); last.pt and the older "
          "checkpoints were kept; check the disk of '{}'",
          step, e.what(), checkpoint_dir().string()));
    }
  }

  // Step files after the current step belong to a run that was resumed from an older
  // checkpoint: they are left alone (and replaced when this run reaches their step), so
  // they neither push this run's own checkpoints out nor get deleted by it.
  void prune_checkpoints() {
    std::vector<fs::path> steps;
    const std::string newest = fmt::format("step_{:08}.pt", step);
    for (const auto& item : fs::directory_iterator(checkpoint_dir())) {
      const auto name = item.path().filename().string();
      if (name.rfind("step_", 0) == 0 && item.path().extension() == ".pt" && name <= newest) {
        steps.push_back(item.path());
      }
    }
    std::sort(steps.begin(), steps.end());
    // The newest one is last.pt's twin; keep it plus keep_checkpoints more.
    const auto keep = static_cast<size_t>(options.keep_checkpoints) + 1;
    for (size_t i = 0; i + keep < steps.size(); ++i) fs::remove(steps[i]);
  }

  // Every failure is a CheckpointError naming the file.
  std::vector<data::LoaderState> restore(const fs::path& run_or_checkpoint) {
    OpenedCheckpoint opened = open_resume_checkpoint(run_or_checkpoint, std::cerr);
    const std::string where = opened.file.string();
    try {
      return restore(opened.archive, where);
    } catch (const CheckpointError&) {
      throw;
    } catch (const c10::Error& e) {
      throw CheckpointError(
          fmt::format("{}: cannot resume from it: {}", where, e.what_without_backtrace()));
    } catch (const std::exception& e) {
      throw CheckpointError(fmt::format("{}: cannot resume from it: {}", where, e.what()));
    }
  }

  std::vector<data::LoaderState> restore(torch::serialize::InputArchive& archive,
                                         const std::string& where) {
    read_model_state(archive, *model, where);
    c10::IValue state_text;
    if (!archive.try_read(kTrainerStateKey, state_text) || !state_text.isString()) {
      throw CheckpointError(fmt::format("{}: has no trainer state (a model-only file, e.g. from "
                                        "'unitrain export'?); cannot resume from it", where));
    }
    json state;
    try {
      state = json::parse(state_text.toStringRef());
      step = state.at("step").get<int64_t>();
      task_rng.load_state(state.at("task_rng"));
      scheduler->load_state(state.at("scheduler"));
    } catch (const json::exception& e) {
      throw CheckpointError(fmt::format("{}: malformed trainer state: {}", where, e.what()));
    }
    torch::serialize::InputArchive optimizer_archive;
    try {
      archive.read(kOptimizerKey, optimizer_archive);
      optimizer->load(optimizer_archive);
    } catch (const c10::Error& e) {
      throw CheckpointError(fmt::format("{}: optimizer state does not fit this model: {}", where,
                                        e.what_without_backtrace()));
    }
    torch::Tensor rng_state;
    if (archive.try_read(kTorchRngKey, rng_state)) {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng_state);
    }
    c10::IValue cuda_states;
    if (torch::cuda::is_available() && archive.try_read(kCudaRngKey, cuda_states) &&
        cuda_states.isTensorList()) {
      // Resumed on fewer devices: the states of those that exist.
      const auto states = cuda_states.toTensorVector();
      const auto devices = static_cast<size_t>(torch::cuda::device_count());
      for (size_t i = 0; i < std::min(states.size(), devices); ++i) {
        at::Generator generator = at::globalContext().defaultGenerator(
            torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(i)));
        std::lock_guard<std::mutex> lock(generator.mutex());
        generator.set_state(states[i]);
      }
    }
    std::vector<data::LoaderState> loaders;
    for (const auto& t : tasks) {
      if (!state.at("loaders").contains(t.name)) {
        throw CheckpointError(fmt::format("{}: no data position for task '{}' (the checkpoint is "
                                          "of another experiment)", where, t.name));
      }
      const json& s = state["loaders"][t.name];
      // Resumed with another world size: continue at the last global batch boundary of
      // the new size at or before the saved position (a few samples are read again).
      const int64_t global_batch = t.batch_size * (parallel ? parallel->world_size() : 1);
      const int64_t position = s.at("position").get<int64_t>();
      loaders.push_back({s.at("epoch").get<int64_t>(), position / global_batch * global_batch});
    }
    return loaders;
  }

  // --- evaluation --------------------------------------------------------------------

  EvalResult evaluate(const std::string& split_override, int64_t max_batches) {
    torch::NoGradGuard no_grad;
    model->eval();
    EvalResult result = json::object();
    for (const auto& t : tasks) {
      const std::string split = split_override.empty() ? t.eval_split : split_override;
      auto dataset = split == t.eval_split ? t.eval : make_dataset(t.name, split);
      auto evaluator = dataset->evaluator();
      data::DataLoader loader(dataset, loader_options(t, false));
      if (parallel) {
        result[t.name] = evaluate_sharded(t, loader, *evaluator, max_batches);
        report_skips(t, loader, split);
        continue;
      }
      int64_t batches = 0;
      while (auto batch = loader.next()) {
        auto out = model->forward(t.name, *batch, /*with_loss=*/false);
        evaluator->add(model->predict(t.name, out, *batch), *batch);
        if (max_batches > 0 && ++batches >= max_batches) break;
      }
      result[t.name] = evaluator->compute();
      report_skips(t, loader, split);
    }
    model->train();
    return result;
  }

  // Each rank predicts its slices of the split's global batches; rank 0 adds every
  // rank's predictions to the evaluator in file order and computes the metrics over all
  // of them (COCO AP over every image, never a mean of per-rank values), which every rank
  // then returns. max_batches counts global batches.
  json evaluate_sharded(const TaskData& t, data::DataLoader& loader, Evaluator& evaluator,
                        int64_t max_batches) {
    int64_t rounds = loader.batches_per_epoch();
    if (max_batches > 0) rounds = std::min(rounds, max_batches);
    for (int64_t round = 0; round < rounds; ++round) {
      std::string payload;
      if (auto batch = loader.next()) {
        auto out = model->forward(t.name, *batch, /*with_loss=*/false);
        payload = train::pack_for_evaluation(model->predict(t.name, out, *batch), *batch);
      }
      const auto all = parallel->gather(
          payload, fmt::format("the evaluation of task '{}' (batch {})", t.name, round));
      if (!writer) continue;
      for (const auto& bytes : all) {
        if (bytes.empty()) continue;
        Predictions predictions;
        Batch batch;
        train::unpack_for_evaluation(bytes, &predictions, &batch);
        evaluator.add(predictions, batch);
      }
    }
    const std::string metrics = writer ? json_text(evaluator.compute()) : std::string();
    return json::parse(parallel->share_from_rank0(
        metrics, fmt::format("the metrics of task '{}'", t.name)));
  }

  // --- records left out at read time ---------------------------------------------------

  // Says once, on stderr and in metrics.jsonl, which records a loader has left out since
  // the last call (a corrupt image under on_bad_record "skip"), so that a run that goes
  // on without them says so.
  void report_skips(const TaskData& t, data::DataLoader& loader, const std::string& split) {
    const bool training = &loader == t.loader.get();
    for (const auto& skip : loader.take_new_skips()) {
      std::cerr << fmt::format(
          "{}{}warning: task '{}', split '{}': record {} left out ({}): {}{}\n",
          config.console && isatty(STDERR_FILENO) ? "\r\033[K" : "",
          parallel ? fmt::format("rank {}: ", parallel->rank()) : "", t.name, split, skip.index,
          skip.reason, skip.message,
          training ? "; the next readable record takes its place" : "; not evaluated");
      log_json({{"step", step},
                {"skipped", {{"task", t.name}, {"split", split}, {"index", skip.index},
                             {"reason", skip.reason}, {"message", skip.message}}}});
    }
  }

  // --- training ----------------------------------------------------------------------

  void log_json(const json& line) {
    if (metrics.is_open()) metrics << json_text(line) << "\n" << std::flush;
  }

  EvalResult train() {
    if (config.evaluate_only) {
      throw TrainingError("this trainer was built to evaluate only (TrainerConfig::evaluate_only)");
    }
    // Held until train() returns; only the process that writes the folder takes it.
    train::RunFolderLock lock;
    if (writer) {
      lock = train::RunFolderLock(config.run_dir);
      train::prepare_run_folder(config.run_dir, config.resume, config.force);
    }
    std::vector<data::LoaderState> starts;
    if (config.resume) {
      starts = restore(config.resume_from.empty() ? config.run_dir : config.resume_from);
    }
    if (writer) {
      train::write_text_durably(config.run_dir / train::kResolvedExperimentFile,
                                json_text(experiment.json, 2) + "\n");
      metrics.open(config.run_dir / train::kMetricsFile, std::ios::app);
    }
    start_loaders(starts);
    model->train();

    const bool tty = config.console && isatty(STDERR_FILENO);
    const auto started = Clock::now();
    const int64_t first_step = step;
    auto window_start = Clock::now();
    int64_t window_samples = 0;
    EvalResult last_eval;

    while (step < options.max_steps) {
      // Gradients are reset to undefined, not zero (PyTorch's set_to_none): AdamW then
      // skips the parameters this step's task does not use, so a task's head and
      // queries keep their own moment estimates and step count instead of decaying
      // and drifting on every other task's steps. It also keeps resume exact: a restored
      // model starts without gradients (Trainer.ResumeWithTwoTasksKeepsTheTaskSequence).
      for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
      set_lr(step);
      std::map<std::string, double> named;
      double step_loss = 0;
      std::string task_name;
      TaskData* last_task = nullptr;
      std::vector<size_t> drawn;  // task index of each micro-batch
      // Seconds since the previous lap, added to the task's total and to one phase.
      auto mark = Clock::now();
      auto lap = [&mark](TaskData& t, double TaskData::*phase) {
        const auto now = Clock::now();
        const double seconds = std::chrono::duration<double>(now - mark).count();
        t.seconds += seconds;
        t.*phase += seconds;
        mark = now;
      };
      for (int64_t micro = 0; micro < options.accumulate_steps; ++micro) {
        const size_t task_index = scheduler->next(task_rng);
        drawn.push_back(task_index);
        if (parallel) parallel->check_task(step, task_index);
        TaskData& t = tasks[task_index];
        std::optional<Batch> batch =
            config.batch_source ? std::optional<Batch>(config.batch_source(t.name)) : t.loader->next();
        if (!config.batch_source) {
          report_skips(t, *t.loader, t.spec.at("train_split").get<std::string>());
        }
        if (parallel) parallel->attach(*batch);
        lap(t, &TaskData::data_s);
        auto out = model->forward(t.name, *batch, /*with_loss=*/true);
        if (out.losses.empty()) {
          throw TrainingError(fmt::format("step {}: the head of task '{}' returned no loss", step, t.name));
        }
        torch::Tensor loss = torch::zeros({}, out.losses.begin()->second.options());
        for (const auto& [name, value] : out.losses) loss = loss + value;
        const double value = loss.item<double>();
        lap(t, &TaskData::forward_s);
        if (!std::isfinite(value)) {
          std::string parts;
          for (const auto& [name, v] : out.losses) parts += fmt::format(" {}={}", name, v.item<double>());
          throw TrainingError(fmt::format(
              "step {}: loss of task '{}' is {} (losses:{}); lower training.lr or check the "
              "task's data (batch from {})",
              step, t.name, value, parts, batch->sources.empty() ? "?" : batch->sources.front()));
        }
        (loss * (t.loss_weight / static_cast<double>(options.accumulate_steps))).backward();
        for (const auto& [name, v] : out.losses) named[name] += v.item<double>() / options.accumulate_steps;
        step_loss += value / static_cast<double>(options.accumulate_steps);
        task_name = t.name;
        window_samples += batch->size;
        t.samples += batch->size;
        lap(t, &TaskData::backward_s);
        last_task = &t;
      }
      if (parallel) {
        // The step's losses travel with the gradients: every rank logs the mean.
        std::vector<double> values{step_loss};
        for (const auto& [name, v] : named) values.push_back(v);
        parallel->reduce_step(step, drawn, parameters, values);
        step_loss = values[0];
        size_t k = 1;
        for (auto& [name, v] : named) v = values[k++];
      }
      last_task->last_loss = step_loss;
      // FlatAdamW updates nothing when the norm is not finite (a finite loss can still
      // have inf / NaN gradients, e.g. sqrt at 0): stop before a checkpoint holds them.
      const double grad_norm = optimizer->step(options.clip_grad_norm);
      if (!std::isfinite(grad_norm)) throw non_finite_gradient(grad_norm, task_name);
      lap(*last_task, &TaskData::update_s);
      ++last_task->steps;
      history.push_back({step, task_name, step_loss});
      ++step;
      if (parallel) parallel->check_sequence(step);

      if (step % options.log_every == 0 || step == options.max_steps) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - window_start).count();
        // grad_norm: this step's global gradient norm before clipping (loss weight included).
        json line = {{"step", step}, {"task", task_name}, {"loss", step_loss}, {"lr", current_lr()},
                     {"grad_norm", grad_norm},
                     {"samples_per_s", elapsed > 0 ? window_samples / elapsed : 0.0}};
        for (const auto& [name, v] : named) line[name] = v;
        log_json(line);
        window_start = Clock::now();
        window_samples = 0;
      }
      if (config.console) print_progress(tty, started, first_step);
      if (options.eval_every > 0 && step % options.eval_every == 0 && step < options.max_steps) {
        last_eval = evaluate("", options.eval_max_batches);
        log_json({{"step", step}, {"eval", last_eval}});
      }
      if (writer && options.checkpoint_every > 0 && step % options.checkpoint_every == 0 &&
          step < options.max_steps) {
        save_checkpoint();
      }
    }
    if (config.console && tty) std::cerr << "\n";
    if (writer) save_checkpoint();
    last_eval = evaluate("", options.eval_max_batches);
    log_json({{"step", step}, {"eval", last_eval}});
    if (writer) {
      train::write_text_durably(config.run_dir / train::kEvalFile, json_text(last_eval, 2) + "\n");
      train::write_text_durably(config.run_dir / train::kThroughputFile,
                                json_text(throughput(), 2) + "\n");
    }
    return last_eval;
  }

  // The TrainingError for a step whose gradient norm is `norm` (inf or NaN), naming the
  // first parameter, in named_parameters() order, whose gradient holds one.
  TrainingError non_finite_gradient(double norm, const std::string& task) const {
    for (size_t i = 0; i < parameters.size(); ++i) {
      const torch::Tensor& grad = parameters[i].grad();
      if (!grad.defined()) continue;
      const torch::Tensor bad = grad.isfinite().logical_not();
      if (!bad.any().item<bool>()) continue;
      const int64_t count = bad.sum().item<int64_t>();
      const double first = grad.reshape({-1}).index({bad.reshape({-1})})[0].item<double>();
      return TrainingError(fmt::format(
          "step {}: the gradient of task '{}' is not finite (norm {}) although its loss is: "
          "parameter '{}' has {} of {} non-finite values (first: {}); no update was applied; "
          "lower training.lr or look for an operation without a finite derivative (sqrt or "
          "log at 0, division by a zero norm) in that component",
          step, task, norm, parameter_names[i], count, grad.numel(), first));
    }
    return TrainingError(fmt::format(
        "step {}: the gradient norm of task '{}' is {} although every gradient is finite (the "
        "sum of squares overflowed); no update was applied; lower training.lr or the loss "
        "weight",
        step, task, norm));
  }

  // {task: {steps, share, samples, seconds, it_per_s, samples_per_s, phases}} for the
  // updates of this process, plus "all" for every task together (training time only,
  // evaluation and checkpoints excluded).
  json throughput() const {
    json out = json::object();
    TaskData all;
    for (const auto& t : tasks) {
      all.steps += t.steps;
      all.samples += t.samples;
      all.seconds += t.seconds;
      all.data_s += t.data_s;
      all.forward_s += t.forward_s;
      all.backward_s += t.backward_s;
      all.update_s += t.update_s;
    }
    auto entry = [&all](const TaskData& t) {
      const double n = static_cast<double>(t.steps), sec = t.seconds;
      return json{{"steps", t.steps},
                  {"share", all.steps > 0 ? n / static_cast<double>(all.steps) : 0.0},
                  {"samples", t.samples},
                  {"seconds", sec},
                  {"it_per_s", sec > 0 ? n / sec : 0.0},
                  {"samples_per_s", sec > 0 ? static_cast<double>(t.samples) / sec : 0.0},
                  {"phases",
                   {{"data", t.data_s},
                    {"forward", t.forward_s},
                    {"backward", t.backward_s},
                    {"update", t.update_s}}}};
    };
    for (const auto& t : tasks) out[t.name] = entry(t);
    out["all"] = entry(all);
    return out;
  }

  void print_progress(bool tty, Clock::time_point started, int64_t first_step) {
    const bool line_due = step % options.log_every == 0 || step == options.max_steps;
    if (!tty && !line_due) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    const double rate = elapsed > 0 ? static_cast<double>(step - first_step) / elapsed : 0.0;
    std::string losses;
    for (const auto& t : tasks) {
      if (!std::isnan(t.last_loss)) losses += fmt::format(" {} {:.3f}", t.name, t.last_loss);
    }
    const std::string text =
        fmt::format("step {}/{}  {:.2f} it/s  ETA {} |{}", step, options.max_steps, rate,
                    format_duration(rate > 0 ? (options.max_steps - step) / rate : NAN), losses);
    if (tty) {
      std::cerr << "\r\033[K" << text << std::flush;
    } else {
      std::cerr << text << "\n";
    }
  }
};

Trainer::Trainer(const Experiment& experiment, const Registry& registry, TrainerConfig config)
    : impl_(std::make_unique<Impl>(experiment, registry, std::move(config))) {}
Trainer::~Trainer() = default;

EvalResult Trainer::train() { return impl_->train(); }
EvalResult Trainer::evaluate(const std::string& split, int64_t max_batches) {
  return impl_->evaluate(split, max_batches);
}
const std::vector<Trainer::StepRecord>& Trainer::history() const { return impl_->history; }
int64_t Trainer::step() const { return impl_->step; }
torch::nn::Module& Trainer::model() { return *impl_->model; }

nlohmann::json Trainer::throughput() const { return impl_->throughput(); }

std::string Trainer::throughput_table() const {
  const json t = impl_->throughput();
  // The phase columns are milliseconds per update (a step's data, forward, backward and
  // clip + optimizer time).
  std::string table =
      fmt::format("{:<12} {:>7} {:>7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "task",
                  "steps", "share", "it/s", "samples/s", "seconds", "data ms", "fwd ms",
                  "bwd ms", "upd ms");
  auto row = [&table](const std::string& name, const json& v) {
    const double steps = static_cast<double>(v.at("steps").get<int64_t>());
    auto ms = [&](const char* phase) {
      return steps > 0 ? 1000.0 * v.at("phases").at(phase).get<double>() / steps : 0.0;
    };
    table += fmt::format(
        "{:<12} {:>7} {:>7.3f} {:>9.2f} {:>10.1f} {:>8.1f} {:>8.1f} {:>8.1f} {:>8.1f} {:>8.1f}\n",
        name, v.at("steps").get<int64_t>(), v.at("share").get<double>(),
        v.at("it_per_s").get<double>(), v.at("samples_per_s").get<double>(),
        v.at("seconds").get<double>(), ms("data"), ms("forward"), ms("backward"), ms("update"));
  };
  for (const auto& task : impl_->tasks) row(task.name, t.at(task.name));
  row("all", t.at("all"));
  return table;
}

std::string Trainer::eval_table(const EvalResult& result) const {
  std::string table = fmt::format("{:<12} {:<14} {:>8} {:>8}\n", "task", "metric", "value", "chance");
  for (const auto& t : impl_->tasks) {
    if (!result.contains(t.name) || result[t.name].empty()) continue;
    const auto& metrics = result[t.name];
    const std::string metric = metrics.items().begin().key();
    const LabelSpace labels = t.train->labels();
    const double chance = labels.kind == "detection" || labels.names.empty()
                              ? 0.0
                              : 1.0 / static_cast<double>(labels.names.size());
    table += fmt::format("{:<12} {:<14} {:>8.3f} {:>8.3f}\n", t.name, metric,
                         metrics[metric].get<double>(), chance);
    if (labels.kind == "detection" && metrics.contains("ap50") && metric != "ap50") {
      table += fmt::format("{:<12} {:<14} {:>8.3f} {:>8.3f}\n", "", "ap50",
                           metrics["ap50"].get<double>(), 0.0);
    }
  }
  return table;
}

void Trainer::load_weights(const fs::path& checkpoint) {
  load_model_weights(checkpoint, *impl_->model);
}

}  // namespace unitrain

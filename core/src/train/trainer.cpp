// The training loop. Reads top to bottom: build (train/build.h), resume
// (train/run_checkpoint.h), step, evaluate (train/evaluation.h), checkpoint, report
// (train/reports.h).
#include "unitrain/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "unitrain/checkpoint.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "train/build.h"
#include "train/durable_file.h"
#include "train/evaluation.h"
#include "train/mixed_precision.h"
#include "train/multitask_step.h"
#include "train/uncertainty.h"
#include "train/reports.h"
#include "train/run_checkpoint.h"
#include "train/run_folder.h"

namespace unitrain {
namespace fs = std::filesystem;
using json = nlohmann::json;
using train::TaskData;

namespace {

using Clock = std::chrono::steady_clock;

// Below this float16 loss scale (2^-16: 32 halvings from the initial 2^16 with no good
// update between) the overflows are the model's own, not its gradients'.
constexpr double kSmallestLossScale = 1.0 / 65536.0;

train::RunSetupOptions setup_options(const TrainerConfig& config) {
  train::RunSetupOptions o;
  // A resumed run's weights come from its checkpoint: init_from files are not read.
  o.load_init_from = !config.resume && !config.evaluate_only;
  o.open_training_splits = !config.evaluate_only;
  o.eval_split = config.eval_split;
  o.console = config.console;
  o.verbose = config.verbose;
  o.group = config.group;
  return o;
}

}  // namespace

struct Trainer::Impl {
  TrainerConfig config;
  TrainingOptions options;
  train::RunSetup setup;
  train::RunLog run_log;
  train::RunState state;
  // The scheduler, when it listens to losses and evaluations (else null).
  SchedulerFeedback* feedback = nullptr;
  // The scheduler, when it picks by the model's uncertainty (else null).
  UncertaintySampling* uncertainty = nullptr;
  // Updates over several tasks with a combine rule (the "step" block); null: one task
  // per update.
  std::unique_ptr<train::MultitaskStep> multitask;
  std::vector<StepRecord> history;
  json last_uncertainty = json::object();  // each task's mean entropy at the last draw

  // The training block is read first: a bad value stops the run before anything is built.
  Impl(const Experiment& experiment, const Registry& registry, TrainerConfig c)
      : config(std::move(c)),
        options(training_options_from_json(experiment.json.at("training"), experiment)),
        setup(experiment, registry, setup_options(config)),
        run_log(config.console, setup.parallel ? setup.parallel->rank() : -1) {
    state.task_rng = TaskRng(setup.seed);
    if (config.evaluate_only) return;
    state.optimization = train::build_optimizer(*setup.model, options);
    state.scheduler = train::build_scheduler(setup);
    feedback = dynamic_cast<SchedulerFeedback*>(state.scheduler.get());
    uncertainty = dynamic_cast<UncertaintySampling*>(state.scheduler.get());
    const json& j = experiment.json;
    const StepOptions step = j.contains("step") ? step_options_from_json(j.at("step")) : StepOptions{};
    if (step.multitask()) {
      multitask = std::make_unique<train::MultitaskStep>(
          step, train::build_combiner(setup), train::task_names(setup));
      state.combiner = multitask->combiner_ptr();
    }
    if (options.autocast == "fp16") {
      if (multitask) {
        throw ConfigError(fmt::format(
            "{}: \"fp16\" (with its loss scale) does not combine with multi-task updates "
            "(/step); use \"bf16\", which needs no loss scale",
            experiment.where("/training/autocast")));
      }
      state.loss_scaler = std::make_shared<train::LossScaler>();
    }
  }

  // An evaluation's metrics to a scheduler that listens, with each task's headline
  // metric first when it asks for them.
  void tell_scheduler(const EvalResult& metrics) {
    if (!feedback) return;
    if (auto* headlines = dynamic_cast<HeadlineMetrics*>(state.scheduler.get())) {
      std::vector<std::string> names;
      for (const auto& t : setup.tasks) {
        const bool evaluated = metrics.contains(t.name) && !metrics.at(t.name).empty();
        names.push_back(evaluated ? (t.eval ? t.eval : t.train)->evaluator()->headline(metrics.at(t.name))
                                  : std::string());
      }
      headlines->observe_headlines(names);
    }
    feedback->observe_evaluation(state.step, metrics);
  }

  EvalResult evaluate(const std::string& split, int64_t max_batches) {
    train::AutocastScope autocast(options.autocast, setup.device);
    return train::evaluate(setup, run_log, split, max_batches, state.step);
  }

  void save_checkpoint() {
    train::save_run_checkpoint(config.run_dir, setup, state, options.keep_checkpoints);
  }

  void start_loaders(const std::vector<data::LoaderState>& starts) {
    for (size_t i = 0; i < setup.tasks.size(); ++i) {
      TaskData& t = setup.tasks[i];
      t.loader = std::make_unique<data::DataLoader>(
          t.train, setup.loader_options(t, true), i < starts.size() ? starts[i] : data::LoaderState{});
    }
  }

  void set_lr(int64_t at_step) {
    const double factor = lr_factor(options, at_step);
    FlatAdamW& optimizer = *state.optimization.optimizer;
    for (size_t g = 0; g < optimizer.num_groups(); ++g) {
      optimizer.set_lr(g, state.optimization.group_base_lr[g] * factor);
    }
  }

  double current_lr() const {
    const FlatAdamW& optimizer = *state.optimization.optimizer;
    return optimizer.num_groups() > 0 ? optimizer.lr(0) : 0.0;
  }

  EvalResult train() {
    if (config.evaluate_only) {
      throw TrainingError("this trainer was built to evaluate only (TrainerConfig::evaluate_only)");
    }
    // Held until train() returns; only the process that writes the folder takes it.
    train::RunFolderLock lock;
    if (setup.writer) {
      lock = train::RunFolderLock(config.run_dir);
      train::prepare_run_folder(config.run_dir, config.resume, config.force);
    }
    std::vector<data::LoaderState> starts;
    if (config.resume) {
      starts = train::restore_run_checkpoint(
          config.resume_from.empty() ? config.run_dir : config.resume_from, setup, state);
    }
    if (setup.writer) {
      train::write_text_durably(config.run_dir / train::kResolvedExperimentFile,
                                json_text(setup.experiment.json, 2) + "\n");
      run_log.open(config.run_dir / train::kMetricsFile, config.resume ? state.step : -1);
      run_log.start_reports(setup, config.run_dir, state.scheduler->probabilities(),
                            config.resume ? state.step : -1);
    }
    start_loaders(starts);
    setup.model->train();

    const bool tty = config.console && isatty(STDERR_FILENO);
    const auto started = Clock::now();
    const int64_t first_step = state.step;
    auto window_start = Clock::now();
    int64_t window_samples = 0;
    EvalResult last_eval;
    int64_t& step = state.step;
    train::DataParallel* parallel = setup.parallel.get();
    std::vector<torch::Tensor>& parameters = state.optimization.parameters;

    while (step < options.max_steps) {
      // Gradients are reset to undefined, not zero (PyTorch's set_to_none): AdamW then
      // skips the parameters this step's task does not use, so a task's head and
      // queries keep their own moment estimates and step count instead of decaying
      // and drifting on every other task's steps. It also keeps resume exact: a restored
      // model starts without gradients (Trainer.ResumeWithTwoTasksKeepsTheTaskSequence).
      for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
      set_lr(step);
      const double collectives_before = parallel ? parallel->seconds_in_collectives() : 0.0;
      std::map<std::string, double> named;
      double step_loss = 0;
      std::string task_name;
      TaskData* last_task = nullptr;
      std::vector<size_t> drawn;          // task index of each micro-batch
      std::vector<double> drawn_losses;   // and its loss
      // Seconds since the previous lap, added to the task's total and to one phase.
      auto mark = Clock::now();
      auto lap = [&mark](TaskData& t, double TaskData::*phase) {
        const auto now = Clock::now();
        const double seconds = std::chrono::duration<double>(now - mark).count();
        t.seconds += seconds;
        t.*phase += seconds;
        mark = now;
      };
      // One micro-batch of task `task_index`: forward, loss, backward (scaled by the
      // task's loss_weight / accumulate_steps); returns the loss before that scaling.
      // `given`: a batch already drawn (uncertainty sampling's choice), else the task's next.
      auto micro_batch = [&](size_t task_index, std::optional<Batch> given) -> double {
        TaskData& t = setup.tasks[task_index];
        std::optional<Batch> batch = given ? std::move(given) : next_batch(t, step);
        if (parallel) parallel->attach(*batch);
        lap(t, &TaskData::data_s);
        HeadOutput out;
        {
          train::AutocastScope autocast(options.autocast, setup.device);
          out = setup.model->forward(t.name, *batch, /*with_loss=*/true);
        }
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
        // float16: scaled up so that small gradients survive; unscaled before the update.
        const double loss_scale = state.loss_scaler ? state.loss_scaler->scale() : 1.0;
        (loss.to(torch::kFloat) * (loss_scale * t.loss_weight / static_cast<double>(options.accumulate_steps)))
            .backward();
        for (const auto& [name, v] : out.losses) named[name] += v.item<double>() / options.accumulate_steps;
        window_samples += batch->size;
        t.samples += batch->size;
        lap(t, &TaskData::backward_s);
        last_task = &t;
        return value;
      };
      json step_log = json::object();
      if (multitask) {
        step_log = multitask_update([&](size_t t) { return micro_batch(t, std::nullopt); }, drawn,
                                    drawn_losses, named, step_loss, task_name);
      } else {
        for (int64_t micro = 0; micro < options.accumulate_steps; ++micro) {
          std::optional<Batch> chosen;
          size_t task_index = 0;
          if (uncertainty) {
            auto [task, batch] = choose_by_uncertainty(mark);
            task_index = task;
            chosen = std::move(batch);
          } else {
            task_index = state.scheduler->next(state.task_rng);
          }
          drawn.push_back(task_index);
          if (parallel) parallel->check_task(step, task_index);
          const double value = micro_batch(task_index, std::move(chosen));
          step_loss += value / static_cast<double>(options.accumulate_steps);
          drawn_losses.push_back(value);
          task_name = setup.tasks[task_index].name;
        }
      }
      if (parallel && !multitask) {
        // The step's losses travel with the gradients: every rank logs the mean.
        std::vector<double> values{step_loss};
        for (const auto& [name, v] : named) values.push_back(v);
        values.insert(values.end(), drawn_losses.begin(), drawn_losses.end());
        parallel->reduce_step(step, drawn, parameters, values);
        step_loss = values[0];
        size_t k = 1;
        for (auto& [name, v] : named) v = values[k++];
        for (auto& v : drawn_losses) v = values[k++];
      }
      if (!multitask) last_task->last_loss = step_loss;
      // FlatAdamW updates nothing when the norm is not finite (a finite loss can still
      // have inf / NaN gradients, e.g. sqrt at 0): stop before a checkpoint holds them.
      // Under a float16 loss scale that is an overflow: the update is skipped and the
      // scale halved, as PyTorch's GradScaler does (the same on every rank: the
      // gradients were averaged).
      if (state.loss_scaler) state.loss_scaler->unscale(parameters);
      const double grad_norm = state.optimization.optimizer->step(options.clip_grad_norm);
      if (state.loss_scaler) {
        state.loss_scaler->update(std::isfinite(grad_norm));
        if (state.loss_scaler->scale() < kSmallestLossScale) {
          throw TrainingError(fmt::format(
              "step {}: the gradients of task '{}' stayed non-finite while the float16 loss "
              "scale fell to {}; the model overflows float16 itself: use training.autocast "
              "\"bf16\" or \"off\", or lower training.lr",
              step, task_name, state.loss_scaler->scale()));
        }
      } else if (!std::isfinite(grad_norm)) {
        throw non_finite_gradient(grad_norm, task_name);
      }
      lap(*last_task, &TaskData::update_s);
      if (parallel) last_task->collectives_s += parallel->seconds_in_collectives() - collectives_before;
      if (multitask) {
        for (size_t m = 0; m < drawn.size(); ++m) {
          if (&setup.tasks[drawn[m]] != last_task) ++setup.tasks[drawn[m]].steps;
        }
      }
      ++last_task->steps;
      if (feedback) {
        for (size_t m = 0; m < drawn.size(); ++m) feedback->observe_loss(drawn[m], drawn_losses[m]);
      }
      history.push_back({step, task_name, step_loss});
      if (step_log.contains("grad_cosine")) {
        run_log.write({{"step", step + 1}, {"grad_cosine", step_log["grad_cosine"]}});
      }
      ++step;
      if (parallel) parallel->check_sequence(step);

      if (step % options.log_every == 0 || step == options.max_steps) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - window_start).count();
        // grad_norm: this step's global gradient norm before clipping (loss weight included).
        json line = {{"step", step}, {"task", task_name}, {"loss", step_loss}, {"lr", current_lr()},
                     {"grad_norm", grad_norm},
                     {"samples_per_s", elapsed > 0 ? window_samples / elapsed : 0.0}};
        for (const auto& [name, v] : named) line[name] = v;
        if (state.loss_scaler) line["loss_scale"] = state.loss_scaler->scale();
        if (uncertainty && !multitask) line["uncertainty"] = last_uncertainty;
        if (multitask) {
          json losses = json::object();
          for (size_t m = 0; m < drawn.size(); ++m) losses[setup.tasks[drawn[m]].name] = drawn_losses[m];
          line["task_losses"] = losses;
          if (step_log.contains("combine")) line["combine"] = step_log["combine"];
        }
        run_log.write(line);
        window_start = Clock::now();
        window_samples = 0;
      }
      if (config.console) {
        train::print_progress(tty, started, first_step, step, options, setup.tasks);
      }
      if (options.eval_every > 0 && step % options.eval_every == 0 && step < options.max_steps) {
        last_eval = evaluate("", options.eval_max_batches);
        run_log.write({{"step", step}, {"eval", last_eval}});
        tell_scheduler(last_eval);
      }
      if (setup.writer && options.checkpoint_every > 0 && step % options.checkpoint_every == 0 &&
          step < options.max_steps) {
        save_checkpoint();
      }
    }
    if (config.console && tty) std::cerr << "\n";
    if (setup.writer) save_checkpoint();
    last_eval = evaluate("", options.eval_max_batches);
    run_log.write({{"step", step}, {"eval", last_eval}});
    tell_scheduler(last_eval);
    if (setup.writer) {
      train::write_text_durably(config.run_dir / train::kEvalFile, json_text(last_eval, 2) + "\n");
      train::write_text_durably(config.run_dir / train::kThroughputFile,
                                json_text(train::throughput(setup.tasks), 2) + "\n");
    }
    return last_eval;
  }

  // The task's next training batch (from the batch source when the config has one).
  std::optional<Batch> next_batch(TaskData& t, int64_t step) {
    if (config.batch_source) return config.batch_source(t.name);
    std::optional<Batch> batch = t.loader->next();
    run_log.report_skips(t.name, *t.loader, t.spec.at("train_split").get<std::string>(),
                         /*training=*/true, step);
    return batch;
  }

  // Uncertainty sampling: a candidate batch of every task, predicted in evaluation mode
  // without gradients, each example scored by its normalized entropy; the scheduler
  // picks the task and the rows to train on. The scoring counts as the candidates'
  // tasks' data time (`mark`: the throughput clock of this step).
  std::pair<size_t, Batch> choose_by_uncertainty(std::chrono::steady_clock::time_point& mark) {
    std::vector<Batch> candidates;
    std::vector<std::vector<double>> entropy;
    std::vector<double> means;
    {
      torch::NoGradGuard no_grad;
      setup.model->eval();
      for (TaskData& t : setup.tasks) {
        std::optional<Batch> batch = next_batch(t, state.step);
        auto out = setup.model->forward(t.name, *batch, /*with_loss=*/false);
        entropy.push_back(train::normalized_entropies(setup.model->predict(t.name, out, *batch)));
        const auto& e = entropy.back();
        means.push_back(e.empty() ? 0.0 : std::accumulate(e.begin(), e.end(), 0.0) / e.size());
        candidates.push_back(std::move(*batch));
        const auto now = Clock::now();
        const double seconds = std::chrono::duration<double>(now - mark).count();
        t.seconds += seconds;
        t.data_s += seconds;
        mark = now;
      }
      setup.model->train();
    }
    if (setup.parallel) {
      setup.parallel->average(means, fmt::format("step {}'s uncertainty of each task", state.step));
    }
    const UncertaintySampling::Choice choice = uncertainty->choose(means, entropy, state.task_rng);
    if (choice.task >= candidates.size() || choice.examples.empty()) {
      throw TrainingError(fmt::format("step {}: the scheduler chose task {} and {} examples; "
                                      "expected a task below {} and at least one example",
                                      state.step, choice.task, choice.examples.size(),
                                      candidates.size()));
    }
    last_uncertainty = json::object();
    for (size_t i = 0; i < means.size(); ++i) last_uncertainty[setup.tasks[i].name] = means[i];
    return {choice.task, select_rows(candidates[choice.task], choice.examples)};
  }

  // The micro-batches and combination of one multi-task update: each drawn task's
  // micro-batches run with the gradients of the tasks before it set aside (in
  // data-parallel runs each task's gradients are averaged over the ranks before the
  // combination, so every rank combines the same rows and keeps the same rule state);
  // then the rule gives the update's gradient. Fills the step's tasks, their losses
  // (the mean over their micro-batches, before loss_weight), the named losses (summed
  // over the tasks), the step's loss (their sum) and its name ("a+b"); returns what to
  // log (MultitaskStep::finish).
  json multitask_update(const std::function<double(size_t)>& micro_batch, std::vector<size_t>& drawn,
                        std::vector<double>& losses, std::map<std::string, double>& named,
                        double& step_loss, std::string& task_name) {
    const int64_t step = state.step;
    train::DataParallel* parallel = setup.parallel.get();
    std::vector<torch::Tensor>& parameters = state.optimization.parameters;
    drawn = multitask->draw(*state.scheduler, state.task_rng, step);
    multitask->begin();
    std::vector<double> weighted;
    for (size_t m = 0; m < drawn.size(); ++m) {
      if (m > 0) task_name += "+";
      task_name += setup.tasks[drawn[m]].name;
      if (parallel) parallel->check_task(step, drawn[m]);
      double loss = 0;
      for (int64_t micro = 0; micro < options.accumulate_steps; ++micro) {
        loss += micro_batch(drawn[m]) / static_cast<double>(options.accumulate_steps);
      }
      if (parallel) {
        std::vector<double> values{loss};
        const bool last = m + 1 == drawn.size();
        if (last) {
          for (const auto& [name, v] : named) values.push_back(v);
        }
        parallel->reduce_step(step, {drawn[m]}, parameters, values);
        loss = values[0];
        size_t k = 1;
        if (last) {
          for (auto& [name, v] : named) v = values[k++];
        }
      }
      multitask->capture(parameters);
      losses.push_back(loss);
      setup.tasks[drawn[m]].last_loss = loss;
      weighted.push_back(loss * setup.tasks[drawn[m]].loss_weight);
      step_loss += loss;
    }
    return multitask->finish(step, drawn, weighted, parameters, state.task_rng);
  }

  // The TrainingError for a step whose gradient norm is `norm` (inf or NaN), naming the
  // first parameter, in named_parameters() order, whose gradient holds one.
  TrainingError non_finite_gradient(double norm, const std::string& task) const {
    const auto& parameters = state.optimization.parameters;
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
          state.step, task, norm, state.optimization.parameter_names[i], count, grad.numel(),
          first));
    }
    return TrainingError(fmt::format(
        "step {}: the gradient norm of task '{}' is {} although every gradient is finite (the "
        "sum of squares overflowed); no update was applied; lower training.lr or the loss "
        "weight",
        state.step, task, norm));
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
int64_t Trainer::step() const { return impl_->state.step; }
torch::nn::Module& Trainer::model() { return *impl_->setup.model; }

nlohmann::json Trainer::throughput() const { return train::throughput(impl_->setup.tasks); }

std::string Trainer::throughput_table() const {
  return train::throughput_table(throughput(), impl_->setup.tasks);
}

std::string Trainer::eval_table(const EvalResult& result) const {
  return train::eval_table(result, impl_->setup.tasks);
}

void Trainer::load_weights(const fs::path& checkpoint) {
  load_model_weights(checkpoint, *impl_->setup.model);
}

}  // namespace unitrain

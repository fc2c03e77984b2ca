// The evaluation runner, in one process or sharded over a data-parallel group.
#include "train/evaluation.h"

#include <iostream>
#include <map>

#include <fmt/format.h>

#include "unitrain/checkpoint.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/results.h"

namespace unitrain::train {
using json = nlohmann::json;

namespace {

// Each rank predicts its slices of the split's global batches; rank 0 adds every
// rank's predictions to the evaluator in file order and computes the metrics over all
// of them (COCO AP over every image), which every rank then returns.
json evaluate_sharded(RunSetup& setup, const TaskData& t, data::DataLoader& loader,
                      Evaluator& evaluator, ResultWriter* results, int64_t max_batches) {
  UnitModelImpl& model = *setup.model;
  int64_t rounds = loader.batches_per_epoch();
  if (max_batches > 0) rounds = std::min(rounds, max_batches);
  for (int64_t round = 0; round < rounds; ++round) {
    std::string payload;
    if (auto batch = loader.next()) {
      auto out = model.forward(t.name, *batch, /*with_loss=*/false);
      payload = pack_for_evaluation(model.predict(t.name, out, *batch), *batch);
    }
    const auto all = setup.parallel->gather(
        payload, fmt::format("the evaluation of task '{}' (batch {})", t.name, round));
    if (!setup.writer) continue;
    for (const auto& bytes : all) {
      if (bytes.empty()) continue;
      Predictions predictions;
      Batch batch;
      unpack_for_evaluation(bytes, &predictions, &batch);
      evaluator.add(predictions, batch);
      if (results) results->add(predictions, batch);
    }
  }
  const std::string metrics = setup.writer ? json_text(evaluator.compute()) : std::string();
  return json::parse(setup.parallel->share_from_rank0(
      metrics, fmt::format("the metrics of task '{}'", t.name)));
}

// The result writer of a task's evaluation split, when result files are asked for and
// its dataset writes them (rank 0 only: the other ranks send their predictions).
std::unique_ptr<ResultWriter> result_writer(const RunSetup& setup, const Dataset& dataset,
                                            const std::string& task,
                                            const std::filesystem::path& predictions_dir) {
  if (predictions_dir.empty() || !setup.writer) return nullptr;
  if (const auto* files = dynamic_cast<const ResultFiles*>(&dataset)) return files->result_writer();
  std::cerr << fmt::format("task '{}': its dataset writes no result files; none written\n", task);
  return nullptr;
}

// `written`: file -> task, over the tasks written so far; two tasks writing one file
// (two GLUE tasks of one kind share the server's file name) is an error.
void write_results(const ResultWriter& results, const std::filesystem::path& dir,
                   const std::string& task, std::map<std::string, std::string>& written) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw DataError(fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
  for (const auto& file : results.write(dir, task)) {
    const auto [it, inserted] = written.emplace(file.string(), task);
    if (!inserted) {
      throw DataError(fmt::format("task '{}' wrote the result file '{}' that task '{}' wrote "
                                  "before; evaluate them in separate runs", task,
                                  file.string(), it->second));
    }
    std::cerr << fmt::format("task '{}': wrote {}\n", task, file.string());
  }
}

}  // namespace

EvalResult evaluate(RunSetup& setup, RunLog& log, const std::string& split_override,
                    int64_t max_batches, int64_t step,
                    const std::filesystem::path& predictions_dir) {
  torch::NoGradGuard no_grad;
  UnitModelImpl& model = *setup.model;
  model.eval();
  EvalResult result = json::object();
  std::map<std::string, std::string> written;  // result file -> task
  for (const auto& t : setup.tasks) {
    const std::string split = split_override.empty() ? t.eval_split : split_override;
    auto dataset = split == t.eval_split ? t.eval : setup.make_dataset(t.name, split);
    auto evaluator = dataset->evaluator();
    auto results = result_writer(setup, *dataset, t.name, predictions_dir);
    data::DataLoader loader(dataset, setup.loader_options(t, false));
    if (setup.parallel) {
      result[t.name] = evaluate_sharded(setup, t, loader, *evaluator, results.get(), max_batches);
    } else {
      int64_t batches = 0;
      while (auto batch = loader.next()) {
        auto out = model.forward(t.name, *batch, /*with_loss=*/false);
        const Predictions predictions = model.predict(t.name, out, *batch);
        evaluator->add(predictions, *batch);
        if (results) results->add(predictions, *batch);
        if (max_batches > 0 && ++batches >= max_batches) break;
      }
      result[t.name] = evaluator->compute();
    }
    if (results) write_results(*results, predictions_dir, t.name, written);
    log.report_skips(t.name, loader, split, /*training=*/false, step);
  }
  model.train();
  return result;
}

EvalResult evaluate_checkpoint(const Experiment& experiment, const Registry& registry,
                               const std::filesystem::path& checkpoint, const std::string& split,
                               int64_t max_batches, std::shared_ptr<ProcessGroup> group,
                               const std::filesystem::path& predictions_dir) {
  RunSetupOptions options;
  options.load_init_from = false;  // the checkpoint's weights replace them
  options.open_training_splits = false;
  options.eval_split = split;
  options.console = false;
  options.group = std::move(group);
  RunSetup setup(experiment, registry, std::move(options));
  load_model_weights(checkpoint, *setup.model);
  RunLog log(/*console=*/false, setup.parallel ? setup.parallel->rank() : -1);
  return evaluate(setup, log, split, max_batches, /*step=*/0, predictions_dir);
}

}  // namespace unitrain::train

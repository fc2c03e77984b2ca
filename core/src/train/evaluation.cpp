// The evaluation runner, in one process or sharded over a data-parallel group.
#include "train/evaluation.h"

#include <fmt/format.h>

#include "unitrain/checkpoint.h"
#include "unitrain/json_text.h"

namespace unitrain::train {
using json = nlohmann::json;

namespace {

// Each rank predicts its slices of the split's global batches; rank 0 adds every
// rank's predictions to the evaluator in file order and computes the metrics over all
// of them (COCO AP over every image), which every rank then returns.
json evaluate_sharded(RunSetup& setup, const TaskData& t, data::DataLoader& loader,
                      Evaluator& evaluator, int64_t max_batches) {
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
    }
  }
  const std::string metrics = setup.writer ? json_text(evaluator.compute()) : std::string();
  return json::parse(setup.parallel->share_from_rank0(
      metrics, fmt::format("the metrics of task '{}'", t.name)));
}

}  // namespace

EvalResult evaluate(RunSetup& setup, RunLog& log, const std::string& split_override,
                    int64_t max_batches, int64_t step) {
  torch::NoGradGuard no_grad;
  UnitModelImpl& model = *setup.model;
  model.eval();
  EvalResult result = json::object();
  for (const auto& t : setup.tasks) {
    const std::string split = split_override.empty() ? t.eval_split : split_override;
    auto dataset = split == t.eval_split ? t.eval : setup.make_dataset(t.name, split);
    auto evaluator = dataset->evaluator();
    data::DataLoader loader(dataset, setup.loader_options(t, false));
    if (setup.parallel) {
      result[t.name] = evaluate_sharded(setup, t, loader, *evaluator, max_batches);
      log.report_skips(t.name, loader, split, /*training=*/false, step);
      continue;
    }
    int64_t batches = 0;
    while (auto batch = loader.next()) {
      auto out = model.forward(t.name, *batch, /*with_loss=*/false);
      evaluator->add(model.predict(t.name, out, *batch), *batch);
      if (max_batches > 0 && ++batches >= max_batches) break;
    }
    result[t.name] = evaluator->compute();
    log.report_skips(t.name, loader, split, /*training=*/false, step);
  }
  model.train();
  return result;
}

EvalResult evaluate_checkpoint(const Experiment& experiment, const Registry& registry,
                               const std::filesystem::path& checkpoint, const std::string& split,
                               int64_t max_batches, std::shared_ptr<ProcessGroup> group) {
  RunSetupOptions options;
  options.load_init_from = false;  // the checkpoint's weights replace them
  options.open_training_splits = false;
  options.eval_split = split;
  options.console = false;
  options.group = std::move(group);
  RunSetup setup(experiment, registry, std::move(options));
  load_model_weights(checkpoint, *setup.model);
  RunLog log(/*console=*/false, setup.parallel ? setup.parallel->rank() : -1);
  return evaluate(setup, log, split, max_batches, /*step=*/0);
}

}  // namespace unitrain::train

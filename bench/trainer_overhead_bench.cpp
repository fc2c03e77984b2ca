// Framework overhead of the trainer. The same UnitModel (the real text encoder,
// unit_decoder and mlp_classifier plugins at small sizes) on the same pre-built batches
// of the toy SST-2 task, stepped two ways:
//   plain:   a LibTorch loop: drop gradients (zero_grad with set_to_none, as the
//            trainer does), forward, sum of losses, backward, clip_grad_norm_, AdamW
//            step, loss.item();
//   trainer: unitrain::Trainer fed the batches through TrainerConfig::batch_source
//            (task draw, lr schedule, loss checks and bookkeeping; logging, progress
//            and intermediate checkpoints off). Its optimizer is FlatAdamW (the same
//            update on flat buffers), so a ratio below 1 is the optimizer's saving
//            outweighing the trainer's bookkeeping.
// Each run is timed from the start of its 2nd step to the start of its last one, so
// set-up, the final checkpoint and evaluation are left out. Runs alternate; the table
// shows the median ms/step of `repeats` runs of each and the trainer/plain ratio. Both
// start from the same weights and see the same batches, so their losses agree (up to
// the clipping arithmetic); the largest difference is printed as a check.
//
//   trainer_overhead_bench [steps=60] [repeats=5] [threads=1]
// threads: intra-op threads (0 = cores). One by default: on a shared machine, OpenMP
// threads that wait for a descheduled peer swamp the ms being measured.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "unitrain/config.h"
#include "unitrain/data/loader.h"
#include "unitrain/dataset.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"
#include "unitrain/toy/toy_suite.h"
#include "unitrain/trainer.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kTask = "sst2";
constexpr int64_t kBatches = 8;  // distinct pre-built batches, cycled

struct Size {
  std::string name;
  int64_t dim, layers;
};

json experiment_json(const fs::path& toy, const Size& size, int64_t steps, int64_t threads) {
  const int64_t d = size.dim;
  const json tokenizer = {{"vocab", (toy / "vocab.txt").string()}};
  return {
      {"name", "trainer_overhead"},
      {"seed", 5},
      {"threads", threads},
      {"model",
       {{"encoders",
         {{"text",
           {{"type", "text"}, {"tokenizer", tokenizer}, {"hidden_dim", d},
            {"num_layers", size.layers}, {"num_heads", 4}, {"intermediate_dim", 2 * d},
            {"max_position", 64}, {"output_dim", d}, {"keep_only_cls", true}}}}},
        {"decoder",
         {{"type", "unit_decoder"}, {"d_model", d}, {"num_layers", size.layers}, {"num_heads", 4},
          {"dim_feedforward", 2 * d}}},
        {"heads", {{kTask, {{"type", "mlp_classifier"}, {"in_dim", d}, {"num_labels", 2}}}}}}},
      {"tasks",
       {{kTask,
         {{"dataset",
           {{"type", "glue"}, {"task", "sst2"}, {"root", (toy / "glue/SST-2").string()},
            {"tokenizer", tokenizer}, {"max_length", 32}}},
          {"encoders", {"text"}},
          {"num_queries", 4},
          {"batch_size", 16},
          {"val_split", "dev"}}}}},
      {"training",
       {{"max_steps", steps}, {"lr", 1e-4}, {"warmup_steps", 0}, {"lr_schedule", "constant"},
        {"clip_grad_norm", 0.1}, {"log_every", 1000000000}, {"checkpoint_every", 0},
        {"eval_max_batches", 1}}},
      {"data", {{"workers", 1}, {"prefetch", 1}}}};
}

std::vector<unitrain::Batch> prebuilt_batches(const unitrain::Experiment& e,
                                              const unitrain::Registry& registry) {
  json block = e.json["tasks"][kTask]["dataset"];
  const std::string type = block["type"];
  block.erase("type");
  block["split"] = "train";
  auto dataset = registry.create_as<unitrain::Dataset>("dataset", type, block, "bench");
  unitrain::data::LoaderOptions options;
  options.batch_size = e.json["tasks"][kTask]["batch_size"].get<int64_t>();
  options.num_workers = 0;
  options.shuffle = false;
  options.infinite = false;
  options.task = kTask;
  unitrain::data::DataLoader loader(dataset, options);
  std::vector<unitrain::Batch> batches;
  while (auto batch = loader.next()) {
    batches.push_back(*batch);
    if (static_cast<int64_t>(batches.size()) == kBatches) break;
  }
  return batches;
}

// ms per step between the starts of step 1 and of the last step.
double ms_per_step(const std::vector<Clock::time_point>& starts) {
  return std::chrono::duration<double, std::milli>(starts.back() - starts[1]).count() /
         static_cast<double>(starts.size() - 2);
}

struct Run {
  double ms;
  std::vector<double> losses;
};

Run run_plain(const unitrain::Experiment& e, const unitrain::Registry& registry,
              const std::vector<unitrain::Batch>& batches, int64_t steps) {
  const json& t = e.json["training"];
  torch::manual_seed(e.json["seed"].get<uint64_t>());
  unitrain::UnitModel model(e, unitrain::registry_factory(registry));
  model->train();
  auto parameters = model->parameters();
  torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(t["lr"].get<double>())
                                                .betas({t["adam_betas"][0].get<double>(), t["adam_betas"][1].get<double>()})
                                                .eps(t["adam_eps"].get<double>())
                                                .weight_decay(t["weight_decay"].get<double>()));
  const double clip = t["clip_grad_norm"].get<double>();
  Run run;
  std::vector<Clock::time_point> starts;
  for (int64_t i = 0; i < steps; ++i) {
    starts.push_back(Clock::now());
    const unitrain::Batch& batch = batches[i % batches.size()];
    model->zero_grad(/*set_to_none=*/true);  // as the trainer does
    auto out = model->forward(kTask, batch, /*with_loss=*/true);
    torch::Tensor loss = torch::zeros({});
    for (const auto& [name, value] : out.losses) loss = loss + value;
    loss.backward();
    torch::nn::utils::clip_grad_norm_(parameters, clip);
    optimizer.step();
    run.losses.push_back(loss.item<double>());
  }
  run.ms = ms_per_step(starts);
  return run;
}

Run run_trainer(const unitrain::Experiment& e, const unitrain::Registry& registry,
                const std::vector<unitrain::Batch>& batches, const fs::path& run_dir) {
  std::vector<Clock::time_point> starts;
  unitrain::TrainerConfig config;
  config.run_dir = run_dir;
  config.console = false;
  config.batch_source = [&](const std::string&) {
    starts.push_back(Clock::now());
    return batches[(starts.size() - 1) % batches.size()];
  };
  unitrain::Trainer trainer(e, registry, config);
  trainer.train();
  Run run;
  run.ms = ms_per_step(starts);
  for (const auto& record : trainer.history()) run.losses.push_back(record.loss);
  return run;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::stoll(argv[1]) : 60;
  const int repeats = argc > 2 ? std::stoi(argv[2]) : 5;
  const int64_t threads = argc > 3 ? std::stoll(argv[3]) : 1;
  if (steps < 3 || repeats < 1 || threads < 0) {
    std::fprintf(stderr, "usage: trainer_overhead_bench [steps >= 3] [repeats >= 1] [threads >= 0]\n");
    return 2;
  }
  unitrain::configure_threads(threads);
  std::random_device rd;
  const fs::path root = fs::temp_directory_path() / ("unitrain_overhead_bench_" + std::to_string(rd()));
  unitrain::toy::ToySuiteOptions toy;
  toy.images = 5;
  toy.image_size = 32;
  toy.text_examples = 400;
  unitrain::toy::make_toy_suite(root / "toy", toy);
  unitrain::Registry registry;
  registry.load_directory(UNITRAIN_BENCH_PLUGIN_DIR);

  std::printf("trainer overhead: %lld steps per run, median of %d runs, batch 16 x 32 tokens, %d threads\n",
              static_cast<long long>(steps), repeats, torch::get_num_threads());
  std::printf("%-14s %10s %14s %16s %8s %14s\n", "model", "params", "plain ms/step",
              "trainer ms/step", "ratio", "max |dloss|");
  std::fflush(stdout);
  for (const Size& size : {Size{"tiny d=32", 32, 1}, Size{"small d=128", 128, 2}}) {
    const fs::path file = root / (size.name.substr(0, size.name.find(' ')) + ".json");
    std::FILE* out = std::fopen(file.c_str(), "w");
    const std::string text = experiment_json(root / "toy", size, steps, threads).dump(2);
    std::fwrite(text.data(), 1, text.size(), out);
    std::fclose(out);
    unitrain::Experiment e = unitrain::load_experiment(file);
    unitrain::validate_experiment(e, &registry);
    const auto batches = prebuilt_batches(e, registry);

    std::vector<double> plain_ms, trainer_ms;
    double max_diff = 0;
    int64_t params = 0;
    for (int r = 0; r < repeats; ++r) {
      Run plain, trainer;
      const fs::path run_dir = root / ("run" + std::to_string(r));
      if (r % 2 == 0) {
        plain = run_plain(e, registry, batches, steps);
        trainer = run_trainer(e, registry, batches, run_dir);
      } else {
        trainer = run_trainer(e, registry, batches, run_dir);
        plain = run_plain(e, registry, batches, steps);
      }
      fs::remove_all(run_dir);
      plain_ms.push_back(plain.ms);
      trainer_ms.push_back(trainer.ms);
      for (size_t i = 0; i < plain.losses.size() && i < trainer.losses.size(); ++i) {
        max_diff = std::max(max_diff, std::abs(plain.losses[i] - trainer.losses[i]));
      }
    }
    {
      torch::manual_seed(0);
      unitrain::UnitModel model(e, unitrain::registry_factory(registry));
      params = model->parameter_count();
    }
    const double p = median(plain_ms), t = median(trainer_ms);
    std::printf("%-14s %10lld %14.3f %16.3f %8.3f %14.2e\n", size.name.c_str(),
                static_cast<long long>(params), p, t, t / p, max_diff);
    std::fflush(stdout);
  }
  fs::remove_all(root);
  return 0;
}

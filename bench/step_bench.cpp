// Step time per task: ms of forward, backward and update (clip + AdamW) of one training
// step of unitrain's model, against a plain-LibTorch implementation of the same shapes
// (bench/step_reference.h: LibTorch's own modules, torch::optim::AdamW, no unitrain
// code) on the same pre-built batches, in the same process.
//
//   step_bench [--experiment FILE] [--toy DIR] [--threads N] [--steps N] [--warmup N]
//              [--rounds N] [--tasks a,b,...] [--device cpu|cuda] [--autocast off|bf16|fp16]
//              [--no-reference] [--json FILE] [--profile STEPS] [--profile-shapes]
//
// --profile N runs N steps per task and side under LibTorch's autograd profiler
// (after the warm-up) and prints, per task and side, the operators with the most self
// time (time inside an operator not spent in the operators it called), summed over
// the steps and all threads. --profile-shapes splits each operator's row by the
// shapes of its inputs.
//
// --experiment defaults to experiments/bench/unit_small.json; its data roots point at
// the toy suite in $UNITRAIN_TOY_SUITE, which the bench generates (64 px scenes) in a
// temporary folder unless --toy names one. Each round times every task on both sides,
// step by step, alternating which side goes first; a task's figure is the median over
// all timed steps of all rounds, with the interquartile range as its spread. Data loading is
// excluded: the batches are built before timing and reused. The weighted row weighs
// each task by its sampling ratio in the experiment (UniT's ratios in unit_small).
//
// The update phase of unitrain is the trainer's: gradients dropped before the forward
// (set to none), FlatAdamW over the trainer's four parameter groups, clipping inside
// the step. The reference drops gradients with zero_grad(set_to_none), then
// clip_grad_norm_ and torch::optim::AdamW with the same groups.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include "step_reference.h"
#include "train/mixed_precision.h"
#include "unitrain/adamw.h"
#include "unitrain/config.h"
#include "unitrain/data/loader.h"
#include "unitrain/dataset.h"
#include "unitrain/model.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"
#include "unitrain/toy/toy_suite.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int64_t kBatchesPerTask = 4;  // distinct pre-built batches, cycled

struct Args {
  fs::path experiment = UNITRAIN_BENCH_SOURCE_DIR "/experiments/bench/unit_small.json";
  fs::path toy;
  int64_t threads = 1;
  int64_t steps = 20;
  int64_t warmup = 3;
  int64_t rounds = 3;
  std::vector<std::string> tasks;
  std::string device = "cpu";
  std::string autocast = "off";
  bool reference = true;
  int64_t profile = 0;  // > 0: profile this many steps per task and side instead of timing
  bool profile_shapes = false;  // the profile's rows are operator + input shapes
  fs::path json_out;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "step_bench: %s\nusage: step_bench [--experiment FILE] [--toy DIR] [--threads N] "
               "[--steps N] [--warmup N] [--rounds N] [--tasks a,b] [--device cpu|cuda] "
               "[--autocast off|bf16|fp16] [--no-reference] [--json FILE] [--profile STEPS] "
               "[--profile-shapes]\n",
               problem.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(flag + " needs a value");
      return argv[++i];
    };
    auto number = [&](int64_t min) {
      const std::string v = value();
      try {
        size_t used = 0;
        const int64_t n = std::stoll(v, &used);
        if (used == v.size() && n >= min) return n;
      } catch (const std::exception&) {
      }
      usage(flag + " expects an integer >= " + std::to_string(min) + ", got '" + v + "'");
    };
    if (flag == "--experiment") a.experiment = value();
    else if (flag == "--toy") a.toy = value();
    else if (flag == "--threads") a.threads = number(0);
    else if (flag == "--steps") a.steps = number(1);
    else if (flag == "--warmup") a.warmup = number(0);
    else if (flag == "--rounds") a.rounds = number(1);
    else if (flag == "--device") a.device = value();
    else if (flag == "--autocast") a.autocast = value();
    else if (flag == "--no-reference") a.reference = false;
    else if (flag == "--json") a.json_out = value();
    else if (flag == "--profile") a.profile = number(1);
    else if (flag == "--profile-shapes") a.profile_shapes = true;
    else if (flag == "--tasks") {
      std::stringstream list(value());
      for (std::string t; std::getline(list, t, ',');) {
        if (!t.empty()) a.tasks.push_back(t);
      }
    } else {
      usage("unknown argument '" + flag + "'");
    }
  }
  if (a.device != "cpu" && a.device != "cuda") usage("--device must be cpu or cuda");
  if (a.autocast != "off" && a.autocast != "bf16" && a.autocast != "fp16") {
    usage("--autocast must be off, bf16 or fp16");
  }
  if (a.autocast == "fp16" && a.device != "cuda") usage("--autocast fp16 needs --device cuda (bf16 runs on both)");
  return a;
}

// One step's phases in ms.
struct Phases {
  double forward = 0, backward = 0, update = 0;
  double total() const { return forward + backward + update; }
};

struct Spread {
  double median = 0, q1 = 0, q3 = 0;
};

Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)]; };
  return {at(0.5), at(0.25), at(0.75)};
}

struct Timings {
  std::vector<Phases> steps;
  Spread of(double Phases::*phase) const {
    std::vector<double> v;
    for (const auto& s : steps) v.push_back(s.*phase);
    return spread(v);
  }
  Spread total() const {
    std::vector<double> v;
    for (const auto& s : steps) v.push_back(s.total());
    return spread(v);
  }
};

// A clock that waits for the device first, so each phase is charged its own kernels.
struct Stopwatch {
  torch::Device device;
  Clock::time_point mark = Clock::now();
  double lap() {
    if (device.is_cuda()) torch::cuda::synchronize();
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - mark).count();
    mark = now;
    return ms;
  }
};

// The trainer's four parameter groups, {rest, backbone} x {decay, no decay}: group g
// has lr `lr` (rest) or `backbone_lr`, and weight decay on matrices only. Every
// parameter that requires a gradient is also appended to `all`.
std::array<std::vector<torch::Tensor>, 4> trainer_groups(
    const torch::OrderedDict<std::string, torch::Tensor>& named, std::vector<torch::Tensor>* all) {
  std::array<std::vector<torch::Tensor>, 4> groups;
  for (const auto& item : named) {
    if (!item.value().requires_grad()) continue;
    const bool backbone = item.key().find("backbone.") != std::string::npos;
    groups[(backbone ? 2 : 0) + (item.value().dim() > 1 ? 0 : 1)].push_back(item.value());
    all->push_back(item.value());
  }
  return groups;
}
double group_lr(const json& training, int g) {
  return training[g >= 2 ? "backbone_lr" : "lr"].get<double>();
}
double group_decay(const json& training, int g) {
  return g % 2 == 0 ? training["weight_decay"].get<double>() : 0.0;
}

// ---------------------------------------------------------------------------------
// unitrain's side: UnitModel + FlatAdamW with the trainer's groups.

struct UnitrainSide {
  unitrain::UnitModel model{nullptr};
  std::unique_ptr<unitrain::FlatAdamW> optimizer;
  std::vector<torch::Tensor> parameters;
  double clip = 0;

  UnitrainSide(const unitrain::Experiment& e, const unitrain::Registry& registry,
               const torch::Device& device) {
    torch::manual_seed(e.json["seed"].get<uint64_t>());
    model = unitrain::UnitModel(e, unitrain::registry_factory(registry));
    model->to(device);
    model->train();
    const json& t = e.json["training"];
    clip = t["clip_grad_norm"].get<double>();
    const auto groups = trainer_groups(model->named_parameters(), &parameters);
    std::vector<unitrain::FlatAdamW::Group> flat;
    for (int g = 0; g < 4; ++g) {
      if (groups[g].empty()) continue;
      flat.push_back({groups[g], group_lr(t, g), group_decay(t, g)});
    }
    optimizer = std::make_unique<unitrain::FlatAdamW>(std::move(flat), t["adam_betas"][0].get<double>(),
                                                      t["adam_betas"][1].get<double>(),
                                                      t["adam_eps"].get<double>());
  }

  Phases step(const std::string& task, const unitrain::Batch& batch, const std::string& autocast,
              double* loss_out) {
    Stopwatch watch{batch.image.defined() ? batch.image.device() : batch.input_ids.device()};
    Phases p;
    for (auto& param : parameters) param.mutable_grad() = torch::Tensor();
    torch::Tensor loss;
    {
      // The trainer's scope: forward only, the cast cache cleared after it.
      unitrain::train::AutocastScope scope(autocast, watch.device);
      auto out = model->forward(task, batch, /*with_loss=*/true);
      for (const auto& [name, value] : out.losses) {
        loss = loss.defined() ? loss + value.to(torch::kFloat32) : value.to(torch::kFloat32);
      }
    }
    *loss_out = loss.item<double>();
    p.forward = watch.lap();
    loss.backward();
    p.backward = watch.lap();
    optimizer->step(clip);
    p.update = watch.lap();
    return p;
  }
};

// ---------------------------------------------------------------------------------
// The plain-LibTorch side.

struct ReferenceSide {
  step_reference::UnitSmall model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> parameters;
  double clip = 0;

  ReferenceSide(const unitrain::Experiment& e, const std::vector<step_reference::TaskSpec>& specs,
                int64_t vocab_size, int64_t max_position, const torch::Device& device) {
    torch::manual_seed(e.json["seed"].get<uint64_t>());
    model = step_reference::UnitSmall(specs, vocab_size, max_position);
    model->to(device);
    model->train();
    const json& t = e.json["training"];
    clip = t["clip_grad_norm"].get<double>();
    const auto groups = trainer_groups(model->named_parameters(), &parameters);
    std::vector<torch::optim::OptimizerParamGroup> param_groups;
    const auto betas = std::make_tuple(t["adam_betas"][0].get<double>(), t["adam_betas"][1].get<double>());
    for (int g = 0; g < 4; ++g) {
      if (groups[g].empty()) continue;
      auto options = std::make_unique<torch::optim::AdamWOptions>(group_lr(t, g));
      options->betas(betas).eps(t["adam_eps"].get<double>()).weight_decay(group_decay(t, g));
      param_groups.emplace_back(groups[g], std::move(options));
    }
    optimizer = std::make_unique<torch::optim::AdamW>(
        std::move(param_groups), torch::optim::AdamWOptions(t["lr"].get<double>()));
  }

  Phases step(const std::string& task, const step_reference::Inputs& in, const std::string& autocast,
              double* loss_out) {
    Stopwatch watch{in.image.defined() ? in.image.device() : in.input_ids.device()};
    Phases p;
    for (auto& param : parameters) param.mutable_grad() = torch::Tensor();  // set_to_none
    torch::Tensor loss;
    {
      unitrain::train::AutocastScope scope(autocast, watch.device);
      loss = model->loss(task, in).to(torch::kFloat32);
    }
    *loss_out = loss.item<double>();
    p.forward = watch.lap();
    loss.backward();
    p.backward = watch.lap();
    torch::nn::utils::clip_grad_norm_(parameters, clip);
    optimizer->step();
    p.update = watch.lap();
    return p;
  }
};

step_reference::Inputs reference_inputs(const unitrain::Batch& b) {
  step_reference::Inputs in;
  in.image = b.image;
  in.image_mask = b.image_mask;
  in.input_ids = b.input_ids;
  in.text_mask = b.text_mask;
  in.segment_ids = b.segment_ids;
  in.labels = b.labels;
  in.soft_labels = b.soft_labels;
  in.boxes = b.boxes;
  in.classes = b.classes;
  in.attributes = b.attributes;
  return in;
}


// Self time per operator name over the recorded events of all threads: each pop
// closes its thread's innermost open range; its time minus its children's is its own.
std::vector<std::pair<std::string, std::pair<double, int64_t>>> self_times(
    const torch::autograd::profiler::thread_event_lists& lists, bool with_shapes) {
  using torch::autograd::profiler::EventKind;
  using torch::autograd::profiler::LegacyEvent;
  std::map<std::string, std::pair<double, int64_t>> total;  // name -> (us, calls)
  for (const auto& events : lists) {
    struct Open {
      const LegacyEvent* event;
      double children_us;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == EventKind::PopRange && !stack.empty()) {
        const Open open = stack.back();
        stack.pop_back();
        const double us = open.event->cpuElapsedUs(e);
        std::string key = open.event->name();
        if (with_shapes) {
          for (const auto& shape : open.event->shapes()) {
            key += " [";
            for (size_t d = 0; d < shape.size(); ++d) {
              key += (d ? "," : "") + std::to_string(shape[d]);
            }
            key += "]";
          }
        }
        auto& entry = total[key];
        entry.first += us - open.children_us;
        entry.second += 1;
        if (!stack.empty()) stack.back().children_us += us;
      }
    }
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> sorted(total.begin(), total.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  return sorted;
}

template <typename StepFn>
void profile_steps(const std::string& title, int64_t steps, bool with_shapes, StepFn step) {
  torch::autograd::profiler::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(
      torch::profiler::impl::ProfilerState::CPU, /*report_input_shapes=*/with_shapes));
  for (int64_t i = 0; i < steps; ++i) step(i);
  const auto lists = torch::autograd::profiler::disableProfilerLegacy();
  const auto sorted = self_times(lists, with_shapes);
  double all = 0;
  for (const auto& item : sorted) all += item.second.first;
  std::printf("\n  %s: self ms per step by operator (all threads; %.1f ms per step in all)\n",
              title.c_str(), all / 1000.0 / static_cast<double>(steps));
  for (size_t i = 0; i < sorted.size() && i < 25; ++i) {
    std::printf("    %8.2f  %6.1f%%  %6lld calls  %s\n",
                sorted[i].second.first / 1000.0 / static_cast<double>(steps),
                100.0 * sorted[i].second.first / all,
                static_cast<long long>(sorted[i].second.second / steps), sorted[i].first.c_str());
  }
}

// ---------------------------------------------------------------------------------

struct Task {
  std::string name;
  double ratio = 0;
  std::vector<unitrain::Batch> batches;
  std::vector<step_reference::Inputs> inputs;
  step_reference::TaskSpec spec;
  Timings unitrain, reference;
  double last_unitrain_loss = 0, last_reference_loss = 0;
};

std::vector<unitrain::Batch> prebuilt_batches(const unitrain::Experiment& e,
                                              const unitrain::Registry& registry,
                                              const std::string& task, const torch::Device& device) {
  const json& spec = e.json["tasks"][task];
  json block = spec["dataset"];
  const std::string type = block["type"];
  block.erase("type");
  block["split"] = spec.value("train_split", "train");
  auto dataset = registry.create_as<unitrain::Dataset>("dataset", type, block, "step_bench");
  unitrain::data::LoaderOptions options;
  options.batch_size = spec["batch_size"].get<int64_t>();
  options.num_workers = 1;
  options.shuffle = true;
  options.seed = 7;
  options.infinite = true;
  options.task = task;
  unitrain::data::DataLoader loader(dataset, options);
  std::vector<unitrain::Batch> batches;
  while (static_cast<int64_t>(batches.size()) < kBatchesPerTask) {
    auto batch = loader.next();
    if (!batch) break;
    batches.push_back(batch->to(device));
  }
  return batches;
}

// What the reference needs to know of a task: its encoders, queries and label space,
// read from the experiment.
step_reference::TaskSpec task_spec(const unitrain::Experiment& e, const std::string& task) {
  step_reference::TaskSpec s;
  s.name = task;
  const json& spec = e.json["tasks"][task];
  for (const auto& enc : spec["encoders"]) {
    if (enc == "image") s.image = true;
    if (enc == "text") s.text = true;
  }
  s.num_queries = spec["num_queries"].get<int64_t>();
  const json& head = e.json["model"]["heads"][task];
  if (head["type"] == "detr") {
    s.kind = "detection";
    s.num_classes = head["num_classes"].get<int64_t>();
    s.num_attributes = head.value("num_attributes", int64_t{0});
  } else {
    s.kind = head.value("loss", std::string("cross_entropy")) == "soft_bce" ? "soft_classification"
                                                                            : "classification";
    s.num_classes = head["num_labels"].get<int64_t>();
  }
  return s;
}

void print_row(const char* side, const std::string& task, const Timings& t) {
  const auto f = t.of(&Phases::forward), b = t.of(&Phases::backward), u = t.of(&Phases::update);
  const auto s = t.total();
  std::printf("  %-9s %-9s %8.1f %8.1f %8.1f %8.1f  [%6.1f %6.1f]\n", task.c_str(), side, f.median,
              b.median, u.median, s.median, s.q1, s.q3);
}

json timings_json(const Timings& t) {
  auto one = [](const Spread& s) { return json{{"median", s.median}, {"q1", s.q1}, {"q3", s.q3}}; };
  return {{"forward_ms", one(t.of(&Phases::forward))}, {"backward_ms", one(t.of(&Phases::backward))},
          {"update_ms", one(t.of(&Phases::update))}, {"total_ms", one(t.total())},
          {"steps", t.steps.size()}};
}

}  // namespace

int main(int argc, char** argv) try {
  Args args = parse(argc, argv);
  const torch::Device device(args.device);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "step_bench: --device cuda, but this LibTorch sees no CUDA device\n");
    return 1;
  }
  unitrain::configure_threads(args.threads);
  // As `unitrain train` runs (cli.cpp): large blocks stay in the heap instead of being
  // mapped and unmapped (and faulted in again) every step. The reference shares the
  // process, so it runs under the same allocator settings.
  unitrain::tune_allocator();

  fs::path generated;
  if (args.toy.empty()) {
    std::random_device rd;
    generated = fs::temp_directory_path() / ("unitrain_step_bench_" + std::to_string(rd()));
    unitrain::toy::ToySuiteOptions toy;
    toy.images = 48;
    toy.image_size = 64;
    toy.text_examples = 200;
    unitrain::toy::make_toy_suite(generated, toy);
    args.toy = generated;
  }
  setenv("UNITRAIN_TOY_SUITE", args.toy.c_str(), 1);

  unitrain::Registry registry;
  registry.load_directory(UNITRAIN_BENCH_PLUGIN_DIR);
  unitrain::Experiment e = unitrain::load_experiment(args.experiment);
  unitrain::validate_experiment(e, &registry);

  std::vector<Task> tasks;
  for (const auto& [name, spec] : e.json["tasks"].items()) {
    if (!args.tasks.empty() && std::find(args.tasks.begin(), args.tasks.end(), name) == args.tasks.end()) {
      continue;
    }
    Task t;
    t.name = name;
    t.ratio = spec.value("ratio", 1.0);
    t.batches = prebuilt_batches(e, registry, name, device);
    for (const auto& b : t.batches) t.inputs.push_back(reference_inputs(b));
    t.spec = task_spec(e, name);
    tasks.push_back(std::move(t));
  }
  if (tasks.empty()) usage("no task of the experiment matches --tasks");

  UnitrainSide ours(e, registry, device);
  std::unique_ptr<ReferenceSide> theirs;
  int64_t reference_params = 0;
  if (args.reference) {
    std::vector<step_reference::TaskSpec> specs;
    for (const auto& t : tasks) specs.push_back(t.spec);
    const json& text = e.json["model"]["encoders"]["text"];
    // The vocabulary the text encoder was built with (its word embedding's rows).
    int64_t vocab = 0;
    for (const auto& item : ours.model->named_parameters()) {
      if (item.key().find("word_embeddings") != std::string::npos) vocab = item.value().size(0);
    }
    theirs = std::make_unique<ReferenceSide>(e, specs, vocab, text["max_position"].get<int64_t>(),
                                             device);
    for (const auto& p : theirs->parameters) reference_params += p.numel();
  }

  std::printf("step_bench: %s, %s, %d intra-op thread(s)%s, %lld rounds x (%lld warm-up + %lld "
              "timed) steps per task\n",
              e.json["name"].get<std::string>().c_str(), args.device.c_str(), torch::get_num_threads(),
              args.autocast == "off" ? "" : (", autocast " + args.autocast).c_str(),
              static_cast<long long>(args.rounds), static_cast<long long>(args.warmup),
              static_cast<long long>(args.steps));
  std::printf("  parameters: unitrain %lld", static_cast<long long>(ours.model->parameter_count()));
  if (theirs) std::printf(", reference %lld", static_cast<long long>(reference_params));
  std::printf("\n");
  std::fflush(stdout);

  if (args.profile > 0) {
    for (auto& t : tasks) {
      double loss = 0;
      for (int64_t i = 0; i < args.warmup; ++i) ours.step(t.name, t.batches[i % t.batches.size()], args.autocast, &loss);
      profile_steps(t.name + ", unitrain", args.profile, args.profile_shapes, [&](int64_t i) {
        ours.step(t.name, t.batches[i % t.batches.size()], args.autocast, &loss);
      });
      if (!theirs) continue;
      for (int64_t i = 0; i < args.warmup; ++i) theirs->step(t.name, t.inputs[i % t.inputs.size()], args.autocast, &loss);
      profile_steps(t.name + ", reference", args.profile, args.profile_shapes, [&](int64_t i) {
        theirs->step(t.name, t.inputs[i % t.inputs.size()], args.autocast, &loss);
      });
    }
    if (!generated.empty()) fs::remove_all(generated);
    return 0;
  }

  for (int64_t round = 0; round < args.rounds; ++round) {
    for (auto& t : tasks) {
      // Steps alternate between the sides (which goes first alternating too), so both
      // see the same moments of a noisy machine.
      for (int64_t i = 0; i < args.warmup + args.steps; ++i) {
        auto mine = [&] {
          auto p = ours.step(t.name, t.batches[i % t.batches.size()], args.autocast,
                             &t.last_unitrain_loss);
          if (i >= args.warmup) t.unitrain.steps.push_back(p);
        };
        auto reference = [&] {
          auto p = theirs->step(t.name, t.inputs[i % t.inputs.size()], args.autocast,
                                &t.last_reference_loss);
          if (i >= args.warmup) t.reference.steps.push_back(p);
        };
        if (!theirs) {
          mine();
        } else if ((i + round) % 2 == 0) {
          mine();
          reference();
        } else {
          reference();
          mine();
        }
      }
    }
  }

  std::printf("\n  %-9s %-9s %8s %8s %8s %8s  %s\n", "task", "side", "fwd ms", "bwd ms", "upd ms",
              "step ms", "[q1 q3]");
  double weight = 0, ours_weighted = 0, theirs_weighted = 0;
  json report = {{"experiment", e.json["name"]}, {"device", args.device},
                 {"threads", torch::get_num_threads()}, {"autocast", args.autocast}, {"tasks", json::object()}};
  for (const auto& t : tasks) {
    print_row("unitrain", t.name, t.unitrain);
    json entry = {{"sampling_ratio", t.ratio}, {"unitrain", timings_json(t.unitrain)}};
    const double mine = t.unitrain.total().median;
    weight += t.ratio;
    ours_weighted += t.ratio * mine;
    if (theirs) {
      print_row("reference", t.name, t.reference);
      const double ref = t.reference.total().median;
      theirs_weighted += t.ratio * ref;
      std::printf("  %-9s %-9s %35.3f\n", t.name.c_str(), "ratio", mine / ref);
      entry["reference"] = timings_json(t.reference);
      entry["ratio_to_reference"] = mine / ref;
    }
    report["tasks"][t.name] = entry;
  }
  ours_weighted /= weight;
  std::printf("\n  ratio-weighted step ms: unitrain %.1f", ours_weighted);
  report["weighted_unitrain_ms"] = ours_weighted;
  if (theirs) {
    theirs_weighted /= weight;
    std::printf(", reference %.1f, ratio %.3f", theirs_weighted, ours_weighted / theirs_weighted);
    report["weighted_reference_ms"] = theirs_weighted;
    report["weighted_ratio"] = ours_weighted / theirs_weighted;
  }
  std::printf("\n");
  if (!args.json_out.empty()) std::ofstream(args.json_out) << report.dump(2) << "\n";
  if (!generated.empty()) fs::remove_all(generated);
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "step_bench: %s\n", error.what());
  return 1;
}

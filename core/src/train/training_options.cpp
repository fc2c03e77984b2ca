// The "training" block and the learning-rate schedule.
#include "unitrain/training_options.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/json_text.h"

namespace unitrain {

TrainingOptions training_options_from_json(const nlohmann::json& j, const Experiment& experiment) {
  TrainingOptions o;
  o.max_steps = j.at("max_steps").get<int64_t>();
  o.lr = j.at("lr").get<double>();
  o.backbone_lr = j.at("backbone_lr").get<double>();
  o.weight_decay = j.at("weight_decay").get<double>();
  o.adam_eps = j.at("adam_eps").get<double>();
  const auto& betas = j.at("adam_betas");
  if (betas.size() != 2 || !betas[0].is_number() || !betas[1].is_number()) {
    throw ConfigError(experiment.where("/training/adam_betas") + ": expected two numbers, found " +
                      json_text(betas));
  }
  o.adam_beta1 = betas[0].get<double>();
  o.adam_beta2 = betas[1].get<double>();
  o.warmup_steps = j.at("warmup_steps").get<int64_t>();
  o.lr_schedule = j.at("lr_schedule").get<std::string>();
  o.min_lr_ratio = j.at("min_lr_ratio").get<double>();
  o.clip_grad_norm = j.at("clip_grad_norm").get<double>();
  o.accumulate_steps = j.at("accumulate_steps").get<int64_t>();
  o.log_every = j.at("log_every").get<int64_t>();
  o.eval_every = j.at("eval_every").get<int64_t>();
  o.eval_max_batches = j.at("eval_max_batches").get<int64_t>();
  o.checkpoint_every = j.at("checkpoint_every").get<int64_t>();
  o.keep_checkpoints = j.at("keep_checkpoints").get<int64_t>();
  o.autocast = j.at("autocast").get<std::string>();

  auto fail = [&](const char* key, const std::string& what) {
    throw ConfigError(fmt::format("{}: {}, found {}", experiment.where(std::string("/training/") + key),
                                  what, json_text(j.at(key))));
  };
  if (o.max_steps < 1) fail("max_steps", "expected an integer >= 1");
  if (!(o.lr > 0)) fail("lr", "expected a learning rate > 0");
  if (o.backbone_lr < 0) fail("backbone_lr", "expected a learning rate >= 0");
  if (o.warmup_steps < 0) fail("warmup_steps", "expected an integer >= 0");
  if (o.lr_schedule != "cosine" && o.lr_schedule != "linear" && o.lr_schedule != "constant") {
    fail("lr_schedule", "expected \"cosine\", \"linear\" or \"constant\"");
  }
  if (o.min_lr_ratio < 0 || o.min_lr_ratio > 1) fail("min_lr_ratio", "expected a number in [0, 1]");
  if (o.clip_grad_norm < 0) fail("clip_grad_norm", "expected a norm >= 0 (0 = off)");
  if (o.accumulate_steps < 1) fail("accumulate_steps", "expected an integer >= 1");
  if (o.log_every < 1) fail("log_every", "expected an integer >= 1");
  if (o.eval_every < 0) fail("eval_every", "expected an integer >= 0");
  if (o.checkpoint_every < 0) fail("checkpoint_every", "expected an integer >= 0");
  if (o.keep_checkpoints < 0) fail("keep_checkpoints", "expected an integer >= 0");
  if (o.autocast != "off" && o.autocast != "bf16" && o.autocast != "fp16") {
    fail("autocast", "expected \"off\", \"bf16\" or \"fp16\"");
  }
  if (o.autocast == "fp16" && experiment.json.value("device", std::string("cpu")).rfind("cuda", 0) != 0) {
    fail("autocast", "\"fp16\" autocast needs a CUDA device (LibTorch autocasts to bfloat16 "
                     "on the CPU): use \"bf16\" on the CPU");
  }
  return o;
}

StepOptions step_options_from_json(const nlohmann::json& j) {
  StepOptions o;
  const auto& tasks = j.at("tasks");
  o.tasks = tasks.is_string() ? 0 : tasks.get<int64_t>();
  o.combine = j.at("combine").at("type").get<std::string>();
  o.cosine_every = j.at("cosine_every").get<int64_t>();
  return o;
}

double lr_factor(const TrainingOptions& o, int64_t step) {
  if (step < o.warmup_steps) {
    return static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  if (o.lr_schedule == "constant") return 1.0;
  const int64_t decay_steps = std::max<int64_t>(1, o.max_steps - o.warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(decay_steps));
  const double shape = o.lr_schedule == "cosine" ? 0.5 * (1.0 + std::cos(M_PI * progress))
                                                 : 1.0 - progress;
  return o.min_lr_ratio + (1.0 - o.min_lr_ratio) * shape;
}

}  // namespace unitrain

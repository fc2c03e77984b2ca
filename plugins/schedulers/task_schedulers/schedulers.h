// Factories of the strategies defined outside task_schedulers.cpp (which registers all).
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include <torch/arg.h>

#include "unitrain/options.h"
#include "unitrain/scheduler.h"

namespace unitrain::schedulers {

// The options of the strategies that have any. JSON keys are the field names; each
// option is declared once in its strategy's option set (README.md's tables come from it).
struct TemperatureOptions {
  TORCH_ARG(double, temperature) = 2.0;  // T. Default: 2.
  TORCH_ARG(int64_t, size_cap) = 0;      // K; 0 = no cap. Default: 0.
};
struct AnnealedOptions {
  TORCH_ARG(int64_t, num_epochs) = 10;  // E. Default: 10.
};
struct StopAndGoOptions {
  TORCH_ARG(double, min_gain) = 0.001;      // Default: 0.001.
  TORCH_ARG(int64_t, patience) = 2;         // Default: 2.
  TORCH_ARG(int64_t, stopped_every) = 4;    // Default: 4.
  TORCH_ARG(double, resume_drop) = 0.005;   // Default: 0.005.
};
struct UncertaintyOptions {
  TORCH_ARG(double, keep) = 0.5;     // Default: 0.5.
  TORCH_ARG(bool, greedy) = false;   // Default: false.
};

const options::OptionSet<TemperatureOptions>& temperature_option_set();  // task_schedulers.cpp
const options::OptionSet<AnnealedOptions>& annealed_option_set();        // task_schedulers.cpp
const options::OptionSet<StopAndGoOptions>& stop_and_go_option_set();    // stop_and_go.cpp
const options::OptionSet<UncertaintyOptions>& uncertainty_option_set();  // uncertainty.cpp

// The fixed distributions (task_schedulers.cpp).
std::shared_ptr<TaskScheduler> make_ratios(const nlohmann::json& options);
std::shared_ptr<TaskScheduler> make_uniform(const nlohmann::json& options);
std::shared_ptr<TaskScheduler> make_round_robin(const nlohmann::json& options);
std::shared_ptr<TaskScheduler> make_size_proportional(const nlohmann::json& options);
std::shared_ptr<TaskScheduler> make_temperature(const nlohmann::json& options);
std::shared_ptr<TaskScheduler> make_annealed(const nlohmann::json& options);
// MT-DNN: every batch of every task once per epoch, in a shuffled order (mtdnn_epoch.cpp).
std::shared_ptr<TaskScheduler> make_mtdnn_epoch(const nlohmann::json& options);
// 12-in-1's stop-and-go round robin over validation metrics (stop_and_go.cpp).
std::shared_ptr<TaskScheduler> make_stop_and_go(const nlohmann::json& options);
// CA-MTL's uncertainty sampling, one task per update (uncertainty.cpp).
std::shared_ptr<TaskScheduler> make_uncertainty(const nlohmann::json& options);

}  // namespace unitrain::schedulers

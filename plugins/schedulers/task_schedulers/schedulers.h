// Factories of the strategies defined outside task_schedulers.cpp (which registers all).
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "unitrain/scheduler.h"

namespace unitrain::schedulers {

// MT-DNN: every batch of every task once per epoch, in a shuffled order (mtdnn_epoch.cpp).
std::shared_ptr<TaskScheduler> make_mtdnn_epoch(const nlohmann::json& options);
// 12-in-1's stop-and-go round robin over validation metrics (stop_and_go.cpp).
std::shared_ptr<TaskScheduler> make_stop_and_go(const nlohmann::json& options);
// CA-MTL's uncertainty sampling, one task per update (uncertainty.cpp).
std::shared_ptr<TaskScheduler> make_uncertainty(const nlohmann::json& options);

}  // namespace unitrain::schedulers

// The task_schedulers plugin library: one entry per strategy, their option tables, and
// `ratios` (UniT's) as the scheduler an experiment gets without a "scheduler" block.
#include "schedulers.h"
#include "unitrain/plugin.h"
#include "unitrain_readme.h"  // kReadme, from README.md (unitrain_add_plugin)

using namespace unitrain::schedulers;  // NOTE: the descriptor macros name the factories bare

UNITRAIN_PLUGIN(kRatios, unitrain::TaskScheduler, "scheduler", "ratios", "1.0.0",
                "p_i proportional to each task's ratio (UniT)", "{}", kReadme, make_ratios);
UNITRAIN_PLUGIN(kSizeProportional, unitrain::TaskScheduler, "scheduler", "size_proportional", "1.0.0",
                "p_i proportional to dataset size, exhaust then new epoch (MMF)", "{}", kReadme,
                make_size_proportional);
UNITRAIN_PLUGIN(kUniform, unitrain::TaskScheduler, "scheduler", "uniform", "1.0.0",
                "Every task equally likely", "{}", kReadme, make_uniform);
UNITRAIN_PLUGIN(kRoundRobin, unitrain::TaskScheduler, "scheduler", "round_robin", "1.0.0",
                "Tasks in turn", "{}", kReadme, make_round_robin);
UNITRAIN_PLUGIN(kTemperature, unitrain::TaskScheduler, "scheduler", "temperature", "1.0.0",
                "p_i proportional to (n_i / sum n)^(1/T)",
                temperature_option_set().defaults_json().c_str(), kReadme, make_temperature);
UNITRAIN_PLUGIN(kAnnealed, unitrain::TaskScheduler, "scheduler", "annealed", "1.0.0",
                "p_i proportional to n_i^alpha, alpha from 1 to 0.2 over epochs",
                annealed_option_set().defaults_json().c_str(), kReadme, make_annealed);
UNITRAIN_PLUGIN(kMtdnnEpoch, unitrain::TaskScheduler, "scheduler", "mtdnn_epoch", "1.0.0",
                "Every batch of every task once per epoch, shuffled (MT-DNN)", "{}", kReadme,
                make_mtdnn_epoch);
UNITRAIN_PLUGIN(kStopAndGo, unitrain::TaskScheduler, "scheduler", "stop_and_go", "1.0.0",
                "Round robin; plateaued tasks train every 4th turn until they degrade (12-in-1)",
                stop_and_go_option_set().defaults_json().c_str(), kReadme, make_stop_and_go);
UNITRAIN_PLUGIN(kUncertainty, unitrain::TaskScheduler, "scheduler", "uncertainty", "1.0.0",
                "Task and examples by the model's uncertainty on candidate batches (CA-MTL)",
                uncertainty_option_set().defaults_json().c_str(), kReadme, make_uncertainty);
UNITRAIN_EXPORT_PLUGINS(&kRatios, &kSizeProportional, &kUniform, &kRoundRobin, &kTemperature,
                        &kAnnealed, &kMtdnnEpoch, &kStopAndGo, &kUncertainty);
UNITRAIN_EXPORT_OPTION_TABLES(
    UNITRAIN_OPTION_TABLE("scheduler", "temperature", &temperature_option_set),
    UNITRAIN_OPTION_TABLE("scheduler", "annealed", &annealed_option_set),
    UNITRAIN_OPTION_TABLE("scheduler", "stop_and_go", &stop_and_go_option_set),
    UNITRAIN_OPTION_TABLE("scheduler", "uncertainty", &uncertainty_option_set));
UNITRAIN_EXPORT_DEFAULTS({"scheduler", "ratios"});

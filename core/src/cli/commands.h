// Sub-commands of the `unitrain` executable. Each command file defines one
// `add_<name>_command(CLI::App&, CliContext&)` that registers the sub-command and its
// callback; cli.cpp lists them all. Callbacks throw unitrain::Error for user errors;
// run_cli prints them as "error: ..." and exits 1.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace unitrain {
struct Experiment;
class Dataset;
class ProcessGroup;
}

namespace unitrain::cli {

// Options shared by every sub-command.
struct CliContext {
  std::vector<std::string> plugin_files;  // --plugin FILE (repeatable)
  std::vector<std::string> plugin_dirs;   // --plugin-dir DIR (repeatable)
  int exit_code = 0;
  std::vector<std::string> argv;  // the command line as given, argv[0] first
};

// Loads the default plugin search path plus the context's and the experiment's
// (`plugin_dirs`, `plugins`) into the global registry.
void load_plugins(const CliContext& context, const std::vector<std::string>& experiment_dirs = {},
                  const std::vector<std::string>& experiment_files = {});

// Loads the plugins an experiment names (plugin_dirs / plugins; a relative path is
// relative to the folder of the file that wrote it, the current folder for --set).
void load_experiment_plugins(const CliContext& context, const Experiment& experiment);

// Loads an experiment, its plugins (as load_experiment_plugins) and validates it
// against the schema and the registry (cli/experiment_loading.cpp).
Experiment load_checked_experiment(const CliContext& context, const std::string& file,
                                   const std::vector<std::string>& overrides);

// The `split` of task `task`'s dataset, built from the validated experiment's block
// (its files opened and checked). Errors name the block's file and pointer.
std::shared_ptr<const Dataset> open_split(const Experiment& experiment, const std::string& task,
                                          const std::string& split);

// `--nproc-per-node N` and `--master-port P` on a command that can run as a group.
struct LaunchArgs {
  int64_t nproc_per_node = 0;
  int64_t master_port = 0;
};
void add_launch_options(CLI::App* command, LaunchArgs& args);

// Runs `body` as this process's part of a data-parallel group, or starts the group:
// with --nproc-per-node N it launches N ranks of this command line and waits for them
// (context.exit_code gets their result); inside a rank (RANK / WORLD_SIZE set, as
// torchrun sets them) it joins the group and calls body(group). Otherwise body(nullptr).
// A rank ends with _exit: on an error it prints "error: rank R: ..." first, and no
// destructor waits on a collective the other ranks will never join.
// `rank_args` are appended to the ranks' command line when launching (the run folder
// the launcher chose, so that every rank agrees on it). A CUDA experiment's "device"
// becomes cuda:LOCAL_RANK in a rank.
void run_as_group(CliContext& context, const LaunchArgs& launch, Experiment& experiment,
                  const std::vector<std::string>& rank_args,
                  const std::function<void(std::shared_ptr<ProcessGroup>)>& body);

void add_plugins_command(CLI::App& app, CliContext& context);
void add_validate_command(CLI::App& app, CliContext& context);
void add_train_command(CLI::App& app, CliContext& context);
void add_eval_command(CLI::App& app, CliContext& context);
void add_predict_command(CLI::App& app, CliContext& context);
void add_model_command(CLI::App& app, CliContext& context);
void add_export_command(CLI::App& app, CliContext& context);
void add_tokenizer_command(CLI::App& app, CliContext& context);
void add_data_command(CLI::App& app, CliContext& context);
void add_toy_command(CLI::App& app, CliContext& context);
void add_weights_command(CLI::App& app, CliContext& context);
void add_report_command(CLI::App& app, CliContext& context);

}  // namespace unitrain::cli

// Sub-commands of the `unitrain` executable. Each command file defines one
// `add_<name>_command(CLI::App&, CliContext&)` that registers the sub-command and its
// callback; cli.cpp lists them all. Callbacks throw unitrain::Error for user errors;
// run_cli prints them as "error: ..." and exits 1.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace unitrain {
struct Experiment;
}

namespace unitrain::cli {

// Options shared by every sub-command.
struct CliContext {
  std::vector<std::string> plugin_files;  // --plugin FILE (repeatable)
  std::vector<std::string> plugin_dirs;   // --plugin-dir DIR (repeatable)
  int exit_code = 0;
};

// Loads the default plugin search path plus the context's and the experiment's
// (`plugin_dirs`, `plugins`) into the global registry.
void load_plugins(const CliContext& context, const std::vector<std::string>& experiment_dirs = {},
                  const std::vector<std::string>& experiment_files = {});

// Loads an experiment, its plugins (plugin_dirs / plugins, relative to the file) and
// validates it against the schema and the registry.
Experiment load_checked_experiment(const CliContext& context, const std::string& file,
                                   const std::vector<std::string>& overrides);

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

}  // namespace unitrain::cli

#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "unitrain/cli.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"
#include "unitrain/runtime.h"

namespace unitrain::cli {

void load_plugins(const CliContext& context, const std::vector<std::string>& experiment_dirs,
                  const std::vector<std::string>& experiment_files) {
  std::vector<Registry::SearchDir> dirs;
  for (const auto& dir : context.plugin_dirs) dirs.push_back({dir, "--plugin-dir"});
  for (const auto& dir : experiment_dirs) dirs.push_back({dir, "the experiment's plugin_dirs"});
  Registry& registry = Registry::global();
  registry.load_default_search_path(dirs);
  for (const auto& file : context.plugin_files) registry.load_file(file, "--plugin");
  for (const auto& file : experiment_files) registry.load_file(file, "the experiment's plugins");
}

int run_cli(int argc, char** argv) {
  CLI::App app{"unitrain: multimodal multitask training with plugins", "unitrain"};
  app.set_version_flag("--version", version_string());
  app.require_subcommand(1);
  app.fallthrough();
  CliContext context;
  context.argv.assign(argv, argv + argc);
  app.add_option("--plugin", context.plugin_files, "Load this plugin library (repeatable)");
  app.add_option("--plugin-dir", context.plugin_dirs, "Load every plugin in this folder (repeatable)");

  add_plugins_command(app, context);
  add_validate_command(app, context);
  add_train_command(app, context);
  add_eval_command(app, context);
  add_predict_command(app, context);
  add_model_command(app, context);
  add_export_command(app, context);
  add_tokenizer_command(app, context);
  add_data_command(app, context);
  add_toy_command(app, context);
  add_weights_command(app, context);
  add_report_command(app, context);

  tune_allocator();
  try {
    configure_threads(0);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const unitrain::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return context.exit_code;
}

}  // namespace unitrain::cli

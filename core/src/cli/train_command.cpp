// `unitrain train` and `unitrain eval`.
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "unitrain/config.h"
#include "unitrain/distributed.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/registry.h"
#include "unitrain/trainer.h"
#include "report/run_report.h"
#include "train/evaluation.h"

namespace unitrain::cli {
namespace fs = std::filesystem;

namespace {

// The folder a resumed run writes to. A folder is itself (--out, when given, must name
// it). A checkpoint file writes to --out, else to the run folder it is in
// (RUN/checkpoints/FILE).
fs::path resumed_run_folder(const fs::path& resume, const std::string& out) {
  if (fs::is_directory(resume)) {
    if (!out.empty() && fs::path(out) != resume) {
      throw ConfigError(fmt::format("--out '{}' and --resume '{}' name different folders; a run "
                                    "resumed from a folder writes to that folder",
                                    out, resume.string()));
    }
    return resume;
  }
  if (!fs::is_regular_file(resume)) {
    throw CheckpointError(
        fmt::format("--resume '{}': no such run folder or checkpoint file", resume.string()));
  }
  if (!out.empty()) return out;
  const fs::path folder = resume.parent_path();
  if (folder.filename() != "checkpoints") {
    throw ConfigError(fmt::format("--resume '{}': the file is not in a run folder's checkpoints/; "
                                  "name the folder to continue in with --out",
                                  resume.string()));
  }
  return folder.parent_path();
}

// The finished run's report.html. The run itself succeeded: a report that cannot be
// written is a warning.
void write_run_report(const fs::path& run_dir) {
  const fs::path file = report::default_report_file({run_dir});
  try {
    report::write_report({run_dir}, file);
    std::cerr << fmt::format("report: {}\n", file.string());
  } catch (const std::exception& e) {
    std::cerr << fmt::format("warning: the run report was not written: {}\n", e.what());
  }
}

}  // namespace

void add_train_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
    std::string out;
    std::string resume;
    LaunchArgs launch;
    bool verbose = false;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* train = app.add_subcommand("train", "Train an experiment");
  add_launch_options(train, args->launch);
  train->add_option("experiment", args->file, "Experiment JSON file")->required();
  train->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  train->add_option("--out", args->out, "Run folder (default: output_dir, else runs/<name>-<time>)");
  train->add_option("--resume", args->resume,
                    "Continue a run: its folder (from checkpoints/last.pt, else the newest step "
                    "file that reads) or a checkpoint file");
  train->add_flag("--force", args->force,
                  "Start over in a non-empty --out folder: deletes its checkpoints/ and the files "
                  "a run writes there, keeps other files");
  train->add_flag("--verbose", args->verbose,
                  "List every tensor that init_from loaded, kept, skipped or could not place");
  train->callback([args, &context] {
    Experiment experiment = load_checked_experiment(context, args->file, args->overrides);
    TrainerConfig config;
    config.verbose = args->verbose;
    config.force = args->force;
    if (!args->resume.empty() && args->force) {
      throw ConfigError("--resume and --force: --force starts a run over, --resume continues one; "
                        "give one of them");
    }
    if (!args->resume.empty()) {
      config.run_dir = resumed_run_folder(args->resume, args->out);
      config.resume_from = args->resume;
      config.resume = true;
    } else if (!args->out.empty()) {
      config.run_dir = args->out;
    } else if (!experiment.json.at("output_dir").get<std::string>().empty()) {
      config.run_dir = experiment.json.at("output_dir").get<std::string>();
    } else {
      config.run_dir = default_run_dir(experiment);
    }
    // Ranks started here all write to (or resume) the folder chosen now.
    std::vector<std::string> rank_args;
    if (args->out.empty() && args->resume.empty()) rank_args = {"--out", config.run_dir.string()};
    run_as_group(context, args->launch, experiment, rank_args,
                 [&](std::shared_ptr<ProcessGroup> group) {
      const bool lead = !group || group->rank() == 0;
      config.group = group;
      config.console = lead;
      if (lead) std::cerr << fmt::format("run folder: {}\n", config.run_dir.string());
      Trainer trainer(experiment, Registry::global(), config);
      EvalResult result = trainer.train();
      if (!lead) return;
      // Every evaluation's table, the last one included, is printed as it is made.
      std::cerr << "\n" << trainer.throughput_table();
      if (experiment.json.at("log").at("report").get<bool>()) write_run_report(config.run_dir);
      std::cout << json_text(result, 2) << "\n";
    });
  });
}

void add_eval_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
    std::string checkpoint;
    std::string split;
    std::string out;
    std::string predictions;
    int64_t max_batches = 0;
    LaunchArgs launch;
  };
  auto args = std::make_shared<Args>();
  CLI::App* eval = app.add_subcommand("eval", "Evaluate a checkpoint on every task of an experiment");
  add_launch_options(eval, args->launch);
  eval->add_option("experiment", args->file, "Experiment JSON file")->required();
  eval->add_option("--checkpoint", args->checkpoint, "Checkpoint file or run folder")->required();
  eval->add_option("--split", args->split, "Split to evaluate (default: each task's val_split)");
  eval->add_option("--set", args->overrides, "Override a value: KEY.PATH=VALUE (repeatable)");
  eval->add_option("--out", args->out, "Also write the metrics to this JSON file");
  eval->add_option("--max-batches", args->max_batches, "Evaluate at most this many batches per task");
  eval->add_option("--predictions", args->predictions,
                    "Also write each task's official result files into this folder (docs/results.md)");
  eval->callback([args, &context] {
    Experiment experiment = load_checked_experiment(context, args->file, args->overrides);
    run_as_group(context, args->launch, experiment, {}, [&](std::shared_ptr<ProcessGroup> group) {
      const EvalResult result = train::evaluate_checkpoint(
          experiment, Registry::global(), args->checkpoint, args->split, args->max_batches, group,
          args->predictions);
      if (group && group->rank() != 0) return;
      std::cout << json_text(result, 2) << "\n";
      if (!args->out.empty()) {
        std::ofstream out(args->out);
        out << json_text(result, 2) << "\n";
        if (!out) throw TrainingError(fmt::format("cannot write '{}'", args->out));
      }
    });
  });
}

}  // namespace unitrain::cli

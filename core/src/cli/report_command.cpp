// `unitrain report RUN [RUN...] [--out FILE]`: the run report (docs/report.md).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "report/run_report.h"
#include "unitrain/config.h"

namespace unitrain::cli {
namespace fs = std::filesystem;

namespace {

// The plugins the runs' experiments name, for their examples. A run whose plugins do not
// load gets no examples (the page says why); its charts are drawn all the same.
void load_report_plugins(const CliContext& context, const std::vector<fs::path>& runs) {
  load_plugins(context);
  for (const auto& run : runs) {
    try {
      load_experiment_plugins(context, load_experiment(run / "experiment.resolved.json"));
    } catch (const std::exception&) {
    }
  }
}

}  // namespace

void add_report_command(CLI::App& app, CliContext& context) {
  struct Args {
    std::vector<std::string> runs;
    std::string out;
    bool no_examples = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* report = app.add_subcommand(
      "report", "Write a run's report.html (several runs: their curves overlaid, compare.html)");
  report->add_option("runs", args->runs, "Run folders (as `unitrain train` wrote them)")->required();
  report->add_option("--out", args->out,
                     "HTML file to write (default: RUN/report.html for one run, "
                     "FIRST_RUN/compare.html for several)");
  report->add_flag("--no-examples", args->no_examples,
                   "Leave out the val images with predicted boxes (they load each run's model)");
  report->callback([args, &context] {
    const std::vector<fs::path> runs(args->runs.begin(), args->runs.end());
    const fs::path out = args->out.empty() ? report::default_report_file(runs) : fs::path(args->out);
    if (!args->no_examples) load_report_plugins(context, runs);
    report::write_report(runs, out, !args->no_examples);
    std::cout << out.string() << "\n";
  });
}

}  // namespace unitrain::cli

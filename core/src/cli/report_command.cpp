// `unitrain report RUN [RUN...] [--out FILE]`: the run report (docs/report.md).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "report/run_report.h"

namespace unitrain::cli {
namespace fs = std::filesystem;

void add_report_command(CLI::App& app, CliContext& /*context*/) {
  struct Args {
    std::vector<std::string> runs;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* report = app.add_subcommand(
      "report", "Write a run's report.html (several runs: their curves overlaid, compare.html)");
  report->add_option("runs", args->runs, "Run folders (as `unitrain train` wrote them)")->required();
  report->add_option("--out", args->out,
                     "HTML file to write (default: RUN/report.html for one run, "
                     "FIRST_RUN/compare.html for several)");
  report->callback([args] {
    const std::vector<fs::path> runs(args->runs.begin(), args->runs.end());
    const fs::path out = args->out.empty() ? report::default_report_file(runs) : fs::path(args->out);
    report::write_report(runs, out);
    std::cout << out.string() << "\n";
  });
}

}  // namespace unitrain::cli

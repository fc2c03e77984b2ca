// Running a command as a data-parallel group: --nproc-per-node, or a rank of a group that
// torchrun (or Slurm, Kubernetes, or `unitrain ... --nproc-per-node`) started.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "dist/launcher.h"
#include "unitrain/config.h"
#include "unitrain/distributed.h"
#include "unitrain/errors.h"

namespace unitrain::cli {

void add_launch_options(CLI::App* command, LaunchArgs& args) {
  command->add_option("--nproc-per-node", args.nproc_per_node,
                      "Start this many processes on this host as one data-parallel group "
                      "(batch sizes are per process)");
  command->add_option("--master-port", args.master_port,
                      "Rendezvous port on 127.0.0.1 with --nproc-per-node (default: a free one)");
}

void run_as_group(CliContext& context, const LaunchArgs& launch, Experiment& experiment,
                  const std::vector<std::string>& rank_args,
                  const std::function<void(std::shared_ptr<ProcessGroup>)>& body) {
  const auto info = rank_info_from_environment();
  const DistributedOptions options =
      distributed_options_from_json(experiment.json.at("distributed"), experiment);
  if (launch.nproc_per_node < 0) {
    throw ConfigError(fmt::format("--nproc-per-node {}: expected a number of processes >= 1",
                                  launch.nproc_per_node));
  }
  if (launch.nproc_per_node > 0) {
    if (info && info->world_size > 1) {
      throw ConfigError(fmt::format(
          "--nproc-per-node: this process is already rank {} of {} (RANK / WORLD_SIZE are set "
          "by a launcher); leave the flag out",
          info->rank, info->world_size));
    }
    if (launch.nproc_per_node > 1) {
      dist::LaunchOptions o;
      o.nproc = launch.nproc_per_node;
      o.master_port = launch.master_port;
      o.timeout_s = options.timeout_s;
      auto argv = dist::without_launch_flags(context.argv);
      argv.insert(argv.end(), rank_args.begin(), rank_args.end());
      context.exit_code = dist::launch_local_ranks(o, argv);
      return;
    }
  }
  if (!info || info->world_size == 1) {
    body(nullptr);
    return;
  }

  // A rank: a CUDA experiment trains on this host's GPU LOCAL_RANK.
  if (experiment.json.at("device") == "cuda") {
    experiment.json["device"] = fmt::format("cuda:{}", info->local_rank);
  }
  int code = 0;
  try {
    auto group = ProcessGroup::join(
        *info, options, torch::Device(experiment.json.at("device").get<std::string>()));
    // Never destroyed: after a failure its destructor would wait for collectives that the
    // other ranks will not join; the process ends with _exit below.
    new std::shared_ptr<ProcessGroup>(group);
    body(group);
  } catch (const unitrain::Error& e) {
    std::cerr << fmt::format("error: rank {}: {}\n", info->rank, e.what());
    code = 1;
  } catch (const c10::Error& e) {
    std::cerr << fmt::format("error: rank {}: {}\n", info->rank, e.what_without_backtrace());
    code = 1;
  } catch (const std::exception& e) {
    std::cerr << fmt::format("error: rank {}: {}\n", info->rank, e.what());
    code = 1;
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace unitrain::cli

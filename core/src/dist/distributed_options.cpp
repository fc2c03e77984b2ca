// The "distributed" block and torchrun's environment contract.
#include <cstdlib>

#include <fmt/format.h>

#include "unitrain/distributed.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"

namespace unitrain {
namespace {

using json = nlohmann::json;

// An environment variable as an integer in [low, high]; nullopt when unset.
std::optional<int64_t> env_int(const char* name, int64_t low, int64_t high) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (*end != '\0' || value < low || value > high) {
    throw ConfigError(fmt::format("environment variable {}='{}': expected an integer in "
                                  "[{}, {}]",
                                  name, text, low, high));
  }
  return value;
}

}  // namespace

json distributed_defaults() {
  const DistributedOptions o;
  return {{"backend", o.backend}, {"timeout_s", o.timeout_s}, {"check_every", o.check_every}};
}

DistributedOptions distributed_options_from_json(const json& j, const Experiment& experiment) {
  DistributedOptions o;
  const auto where = [&](const char* key) { return experiment.where(std::string("/distributed/") + key); };
  o.backend = j.at("backend").get<std::string>();
  if (o.backend != "auto" && o.backend != "gloo" && o.backend != "nccl") {
    throw ConfigError(fmt::format("{}: unknown backend \"{}\"; valid: auto, gloo, nccl",
                                  where("backend"), o.backend));
  }
  o.timeout_s = j.at("timeout_s").get<double>();
  if (!(o.timeout_s > 0)) {
    throw ConfigError(fmt::format("{}: expected seconds > 0, found {}", where("timeout_s"),
                                  json_text(j.at("timeout_s"))));
  }
  o.check_every = j.at("check_every").get<int64_t>();
  if (o.check_every < 0) {
    throw ConfigError(fmt::format("{}: expected steps >= 0 (0 = never), found {}",
                                  where("check_every"), o.check_every));
  }
  return o;
}

std::optional<RankInfo> rank_info_from_environment() {
  const auto world = env_int("WORLD_SIZE", 1, 1 << 20);
  if (!world) return std::nullopt;
  RankInfo info;
  info.world_size = *world;
  const auto rank = env_int("RANK", 0, info.world_size - 1);
  if (!rank) {
    throw ConfigError("environment: WORLD_SIZE is set but RANK is not (torchrun sets both; "
                      "unset WORLD_SIZE to train in one process)");
  }
  info.rank = *rank;
  info.local_rank = env_int("LOCAL_RANK", 0, info.world_size - 1).value_or(info.rank);
  info.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, info.world_size).value_or(info.world_size);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) {
    info.master_addr = addr;
  } else if (info.world_size > 1) {
    throw ConfigError("environment: WORLD_SIZE > 1 needs MASTER_ADDR (the host of rank 0)");
  }
  const auto port = env_int("MASTER_PORT", 1, 65535);
  if (!port && info.world_size > 1) {
    throw ConfigError("environment: WORLD_SIZE > 1 needs MASTER_PORT (rank 0's port)");
  }
  info.master_port = port.value_or(info.master_port);
  if (const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) {
    const std::string value = agent;
    info.agent_store = value == "True" || value == "true" || value == "1";
  }
  return info;
}

}  // namespace unitrain

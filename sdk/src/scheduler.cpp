// What scheduler.h defines for every strategy: the TaskRng engine and sample_index().
#include <fmt/format.h>

#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/scheduler.h"

namespace unitrain {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

TaskRng::TaskRng(uint64_t seed) {
  for (auto& word : s_) word = splitmix64(seed);
}

uint64_t TaskRng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double TaskRng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

nlohmann::json TaskRng::state() const {
  // As strings: JSON numbers lose precision above 2^53 in many readers.
  nlohmann::json words = nlohmann::json::array();
  for (uint64_t word : s_) words.push_back(std::to_string(word));
  return words;
}

void TaskRng::load_state(const nlohmann::json& state) {
  if (!state.is_array() || state.size() != 4) {
    throw CheckpointError(fmt::format("task engine state: expected 4 words, found {}", json_text(state)));
  }
  for (size_t i = 0; i < 4; ++i) s_[i] = std::stoull(state[i].get<std::string>());
}

size_t sample_index(const std::vector<double>& probabilities, double u) {
  double total = 0;
  for (double p : probabilities) total += p;
  const double target = u * total;
  double cumulative = 0;
  size_t last_positive = 0;
  for (size_t i = 0; i < probabilities.size(); ++i) {
    if (probabilities[i] <= 0) continue;
    cumulative += probabilities[i];
    last_positive = i;
    if (target < cumulative) return i;
  }
  return last_positive;  // rounding at u close to 1
}

}  // namespace unitrain

// The experiment loader: an experiment file, a file it may include ("base.json") and
// `--set` overrides, then the schema check. Input: exp.json \0 base.json \0 set \0 set.
#include "fuzz_input.h"
#include "unitrain/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  const auto p = fuzz::parts(data, size, 4);
  fuzz::write("base.json", p[1]);
  const auto file = fuzz::write("exp.json", p[0]);
  std::vector<std::string> overrides;
  for (size_t i = 2; i < p.size(); ++i) {
    if (!p[i].empty()) overrides.push_back(p[i]);
  }
  try {
    Experiment experiment = load_experiment(file, overrides);
    validate_experiment(experiment, nullptr);
    experiment.where("/tasks");
  } catch (const Error&) {
  }
  return 0;
}

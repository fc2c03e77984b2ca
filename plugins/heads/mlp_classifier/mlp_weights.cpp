// The MLP classifier's name map for MMF's UniT.
#include <stdexcept>

#include "mlp_classifier.h"

namespace unitrain::heads {

std::vector<std::string> MlpClassifierHeadImpl::weight_formats() const { return {"mmf_unit"}; }

weights::WeightMap MlpClassifierHeadImpl::weight_map(const weights::ImportContext& context) const {
  weights::WeightMap map;
  if (context.format != "mmf_unit") {
    throw std::invalid_argument("mlp_classifier: no weight map for format '" + context.format + "'");
  }
  const auto& task = context.component_tasks.at(0);
  auto it = context.task_names.find(task);
  if (it == context.task_names.end()) return map;
  // MMF's classifier: Sequential(BertPredictionHeadTransform(dense, GELU, LayerNorm), Linear),
  // our fc1, GELU, norm, fc2.
  const auto prefix = "classifiers." + weights::mmf_task_type(it->second) + "." + it->second + ".";
  map.copy(prefix + "0.dense.*", "fc1.*")
      .copy(prefix + "0.LayerNorm.*", "norm.*")
      .copy(prefix + "1.*", "fc2.*");
  return map;
}

}  // namespace unitrain::heads

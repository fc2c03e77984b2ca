// The decoder's name maps for DETR and MMF's UniT.
#include <stdexcept>

#include "unit_decoder.h"

namespace unitrain::decoders {

std::vector<std::string> UnitDecoderImpl::weight_formats() const { return {"detr", "mmf_unit"}; }

weights::WeightMap UnitDecoderImpl::weight_map(const weights::ImportContext& context) const {
  weights::WeightMap map;
  if (context.format == "detr") {
    // DETR's decoder layers have our names (self_attn, multihead_attn, linear1/2,
    // norm1..3) and its final norm is ours. Its 100 object queries serve the tasks that
    // init_from.tasks names; without any they are not wanted.
    map.copy("transformer.decoder.*", "decoder.*");
    bool any = false;
    for (const auto& task : context.component_tasks) {
      if (!context.task_names.count(task)) continue;
      map.copy("query_embed.weight", "queries." + task + ".weight");
      any = true;
    }
    if (!any) map.ignore("query_embed.weight", "no task named in init_from.tasks");
    return map;
  }
  if (context.format == "mmf_unit") {
    // A shared decoder is transformer.decoder, and again under transformer.decoders.<type>.
    // <dataset> once per dataset (state_dict lists shared modules under every name).
    const std::string base = "unit_base_model.";
    if (context.component == "decoder") {
      map.copy(base + "transformer.decoder.*", "decoder.*")
          .ignore(base + "transformer.decoders.*", "the shared decoder again, per dataset");
    } else {
      const auto& task = context.component_tasks.at(0);
      auto it = context.task_names.find(task);
      if (it != context.task_names.end()) {
        map.copy(base + "transformer.decoders." + weights::mmf_task_type(it->second) + "." +
                     it->second + ".*",
                 "decoder.*");
      }
    }
    for (const auto& task : context.component_tasks) {
      auto it = context.task_names.find(task);
      if (it == context.task_names.end()) continue;
      map.copy(base + "query_embeds." + weights::mmf_task_type(it->second) + "." + it->second +
                   ".weight",
               "queries." + task + ".weight");
    }
    return map;
  }
  throw std::invalid_argument("unit_decoder: no weight map for format '" + context.format + "'");
}

}  // namespace unitrain::decoders

// The image encoder's name maps for weights written by torchvision, DETR and MMF.
#include <stdexcept>

#include "image_encoder.h"

namespace unitrain::image {

std::vector<std::string> ImageEncoderImpl::weight_formats() const {
  return {"torchvision_resnet", "detr", "mmf_unit"};
}

weights::WeightMap ImageEncoderImpl::weight_map(const weights::ImportContext& context) const {
  weights::WeightMap map;
  // torchvision's ResNet and ours share names (conv1, bn1, layerN.B.convK/bnK,
  // downsample.0/1); BatchNorm's four tensors are exactly FrozenBatchNorm2d's buffers,
  // which fold them at run time. num_batches_tracked has no use when frozen.
  if (context.format == "torchvision_resnet") {
    map.copy("*", "backbone.*")
        .ignore("fc.*", "the ImageNet classifier")
        .ignore("*num_batches_tracked", "unused by a frozen BatchNorm");
    return map;
  }
  if (context.format == "detr") {
    // DETR's Joiner holds the backbone as entry 0 and torchvision's ResNet under "body"
    // (IntermediateLayerGetter): backbone.0.body.layer1.0.conv1.weight.
    map.copy("backbone.0.body.*", "backbone.*")
        .copy("input_proj.*", "input_proj.*")
        .copy("transformer.encoder.*", "encoder.*")
        .ignore("*num_batches_tracked", "unused by a frozen BatchNorm");
    return map;
  }
  if (context.format == "mmf_unit") {
    // MMF's UniTBaseModel is DETR's layout under unit_base_model; the task token table and
    // the projections to the decoder width live in its transformer.
    const std::string base = "unit_base_model.";
    map.copy(base + "backbone.0.body.*", "backbone.*")
        .copy(base + "input_proj.*", "input_proj.*")
        .copy(base + "transformer.encoder.*", "encoder.*")
        .custom({base + "transformer.task_embeddings_enc.weight"}, "task_embeddings.weight",
                weights::task_rows(context), "rows reordered from MMF's task_idx to ours")
        .copy(base + "transformer.enc2dec_proj.*", "output_proj.*")
        .copy(base + "transformer.pos_embed_proj.*", "pos_proj.*")
        .ignore("*num_batches_tracked", "unused by a frozen BatchNorm");
    return map;
  }
  throw std::invalid_argument("image encoder: no weight map for format '" + context.format + "'");
}

}  // namespace unitrain::image

// The DETR head's name maps for DETR and MMF's UniT.
#include <stdexcept>

#include "detr_head.h"

namespace unitrain::heads {

namespace {

// COCO 2017's 80 category ids in id order: our class i is the i-th of them, DETR's class
// is the id itself (91 ids + no-object = 92 rows).
constexpr int64_t kCocoIds[80] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};

// Rows indexed by class (+ a last no-object row) from a file whose rows are category ids:
// the same count (already contiguous); COCO's 80 classes from DETR's 92 rows; or one row
// more than ours (a background row 0 first, as in MMF's Visual Genome vocabulary of
// 1601) dropped.
weights::Combine class_rows() {
  return [](const std::vector<torch::Tensor>& sources, const torch::Tensor& own,
            const weights::Bindings&) {
    const auto& file = sources.at(0);
    if (file.dim() != own.dim() || file.dim() < 1 ||
        (own.dim() == 2 && file.size(1) != own.size(1))) {
      return torch::Tensor();
    }
    const int64_t ours = own.size(0), theirs = file.size(0);
    if (theirs == ours) return file;
    std::vector<int64_t> rows;
    if (ours == 81 && theirs == 92) {
      rows.assign(std::begin(kCocoIds), std::end(kCocoIds));
    } else if (theirs == ours + 1) {
      for (int64_t i = 1; i < ours; ++i) rows.push_back(i);
    } else {
      return torch::Tensor();
    }
    rows.push_back(theirs - 1);  // no-object
    return file.index_select(0, torch::tensor(rows, torch::kLong));
  };
}

}  // namespace

std::vector<std::string> DetrHeadImpl::weight_formats() const { return {"detr", "mmf_unit"}; }

weights::WeightMap DetrHeadImpl::weight_map(const weights::ImportContext& context) const {
  weights::WeightMap map;
  const std::string rows_note = "rows by category id remapped to our classes";
  if (context.format == "detr") {
    map.custom({"class_embed.weight"}, "class_embed.weight", class_rows(), rows_note)
        .custom({"class_embed.bias"}, "class_embed.bias", class_rows(), rows_note)
        .copy("bbox_embed.layers.*", "bbox_embed.*");
    return map;
  }
  if (context.format == "mmf_unit") {
    const auto& task = context.component_tasks.at(0);
    auto it = context.task_names.find(task);
    if (it == context.task_names.end()) return map;
    const auto& name = it->second;
    const std::string attr = "det_losses." + name + ".attribute_head.";
    map.custom({"class_embeds." + name + ".weight"}, "class_embed.weight", class_rows(), rows_note)
        .custom({"class_embeds." + name + ".bias"}, "class_embed.bias", class_rows(), rows_note)
        .copy("bbox_embeds." + name + ".layers.*", "bbox_embed.*")
        .custom({attr + "cls_embed.weight"}, "attribute_class_embed.weight", class_rows(), rows_note)
        .copy(attr + "attr_linear1.*", "attribute_fc1.*")
        .copy(attr + "attr_linear2.*", "attribute_fc2.*")
        .ignore("det_losses." + name + ".empty_weight", "the loss's class weights, a constant");
    return map;
  }
  throw std::invalid_argument("detr head: no weight map for format '" + context.format + "'");
}

}  // namespace unitrain::heads

#include "vg_detection_plugin.h"

#include <gtest/gtest.h>

#include "plugins/datasets/dataset_test_util.h"

namespace unitrain::vg {
namespace {

using nlohmann::json;
using testing::data_error_of;
using testing::TempDir;

json instances() {
  return json::parse(R"({
    "images": [{"id": 3, "file_name": "3.jpg", "width": 16, "height": 12}],
    "annotations": [
      {"id": 1, "image_id": 3, "category_id": 1, "bbox": [0, 0, 8, 6], "iscrowd": 0,
       "attribute_ids_max16": [4, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1]},
      {"id": 2, "image_id": 3, "category_id": 2, "bbox": [8, 6, 8, 6], "iscrowd": 0,
       "attribute_ids_max16": [399]}],
    "categories": [{"id": 1, "name": "tree"}, {"id": 2, "name": "sky"}]
  })");
}

std::shared_ptr<Dataset> make(const TempDir& dir, const json& j, const std::string& policy = "error") {
  testing::write_image(dir / "images/3.jpg", 16, 12);
  testing::write_file(dir / "annotations/instances_train_split_by_coco_2017.json", j.dump());
  return make_vg_detection({{"root", dir.path().string()},
                            {"num_attributes", 400},
                            {"on_bad_record", policy},
                            {"image", {{"min_size", 12}, {"train_min_sizes", json::array()},
                                       {"hflip", 0.0}}}});
}

TEST(VgDetection, AttributesArePaddedToSixteen) {
  TempDir dir;
  auto ds = make(dir, instances());
  ASSERT_EQ(ds->size(), 1);
  EXPECT_EQ(ds->labels().num_attributes, 400);
  const Sample s = ds->get(0, 0);
  ASSERT_EQ(s.attributes.sizes(), (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(s.attributes[0][0].item<int64_t>(), 4);
  EXPECT_EQ(s.attributes[0][1].item<int64_t>(), 0);
  EXPECT_EQ(s.attributes[1][0].item<int64_t>(), 399);
  EXPECT_EQ(s.attributes[1][15].item<int64_t>(), -1);
  const Batch batch = collate({s}, "vg");
  ASSERT_EQ(batch.attributes.size(), 1u);
  EXPECT_TRUE(torch::equal(batch.attributes[0], s.attributes));
}

TEST(VgDetection, AttributeIdOutOfRangeIsABadRecord) {
  TempDir dir;
  auto j = instances();
  j["annotations"][1]["attribute_ids_max16"] = {400};
  const std::string message = data_error_of([&] { make(dir, j); });
  EXPECT_NE(message.find("annotations[1] (id 2): field 'attribute_ids_max16': expected at most "
                         "16 integers in [-1, 400), found [400]"),
            std::string::npos)
      << message;
  j["annotations"][0].erase("attribute_ids_max16");
  TempDir other;
  auto ds = make(other, j, "skip");
  EXPECT_EQ(ds->size(), 1);
  EXPECT_EQ(ds->skipped(), (json{{"bad_attributes", 1}, {"missing_field", 1}}));
}

}  // namespace
}  // namespace unitrain::vg

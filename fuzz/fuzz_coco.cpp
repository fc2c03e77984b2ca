// COCO instances files (and Visual Genome's, the same reader with attributes), read
// under both bad-record policies; the first records are decoded. Input: the JSON file.
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  static const bool images = [] {
    fuzz::write_image("coco/train2017/a.jpg", 40, 30);
    fuzz::write_image("coco/train2017/b.png", 20, 20);
    return true;
  }();
  (void)images;
  fuzz::write("coco/annotations/instances_train2017.json",
              std::string(reinterpret_cast<const char*>(data), size));
  const nlohmann::json image = {{"min_size", 32}, {"max_size", 48}};
  for (const char* policy : {"error", "skip"}) {
    fuzz::open_and_read("coco_detection", {{"split", "train"},
                                           {"root", (fuzz::scratch() / "coco").string()},
                                           {"image", image},
                                           {"on_bad_record", policy}});
  }
  fuzz::write("vg/annotations/instances_train.json",
              std::string(reinterpret_cast<const char*>(data), size));
  fuzz::open_and_read("vg_detection",
                      {{"split", "train"},
                       {"root", (fuzz::scratch() / "vg").string()},
                       {"annotations", {{"train", "annotations/instances_train.json"}}},
                       {"images", {{"train", (fuzz::scratch() / "coco/train2017").string()}}},
                       {"image", image},
                       {"on_bad_record", "skip"}});
  return 0;
}

// VQAv2 question and annotation files. Input: questions JSON \0 annotations JSON.
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  static const bool images = [] {
    fuzz::write_image("vqa2/train2014/COCO_train2014_000000000001.jpg", 24, 16);
    fuzz::write_image("vqa2/train2014/COCO_train2014_000000000002.jpg", 16, 24);
    return true;
  }();
  (void)images;
  const auto p = fuzz::parts(data, size, 2);
  fuzz::write("vqa2/questions.json", p[0]);
  fuzz::write("vqa2/annotations.json", p[1]);
  for (const char* policy : {"error", "skip"}) {
    fuzz::open_and_read("vqa2", {{"split", "train"},
                                 {"root", (fuzz::scratch() / "vqa2").string()},
                                 {"questions", {{"train", "questions.json"}}},
                                 {"annotations", {{"train", "annotations.json"}}},
                                 {"answer_min_count", 1},
                                 {"tokenizer", {{"vocab", fuzz::vocab().string()}}},
                                 {"image", {{"min_size", 16}, {"max_size", 32}}},
                                 {"on_bad_record", policy}});
  }
  return 0;
}

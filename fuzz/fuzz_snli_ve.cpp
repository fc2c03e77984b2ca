// SNLI-VE JSON-lines files. Input: the .jsonl file.
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  static const bool images = [] {
    fuzz::write_image("snli_ve/flickr30k_images/1000092795.jpg", 24, 16);
    return true;
  }();
  (void)images;
  fuzz::write("snli_ve/snli_ve_train.jsonl", std::string(reinterpret_cast<const char*>(data), size));
  for (const char* policy : {"error", "skip"}) {
    fuzz::open_and_read("snli_ve", {{"split", "train"},
                                    {"root", (fuzz::scratch() / "snli_ve").string()},
                                    {"tokenizer", {{"vocab", fuzz::vocab().string()}}},
                                    {"image", {{"min_size", 16}, {"max_size", 32}}},
                                    {"on_bad_record", policy}});
  }
  return 0;
}

// GLUE TSV files of every task. Input: one byte choosing the task, then train.tsv.
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  if (size < 1) return 0;
  static const char* const kTasks[] = {"sst2", "qnli", "mnli", "qqp"};
  const std::string task = kTasks[data[0] % 4];
  fuzz::write("glue/train.tsv", std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  for (const char* policy : {"error", "skip"}) {
    fuzz::open_and_read("glue", {{"split", "train"},
                                 {"task", task},
                                 {"root", (fuzz::scratch() / "glue").string()},
                                 {"files", {{"train", "train.tsv"}}},
                                 {"tokenizer", {{"vocab", fuzz::vocab().string()}}},
                                 {"max_length", 16},
                                 {"on_bad_record", policy}});
  }
  return 0;
}

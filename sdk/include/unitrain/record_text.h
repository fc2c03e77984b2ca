// The text of a dataset's records as their files hold it (a VQA question, an SNLI-VE
// hypothesis), for people to read: a Sample carries only token ids. A dataset that
// tokenizes text implements RecordText next to Dataset (a mixin found by dynamic_cast,
// as ResultFiles and TokenVocabulary are); the run report shows it beside the image,
// the prediction and the answer. A dataset without it shows no text.
#pragma once

#include <cstdint>
#include <string>

namespace unitrain {

class RecordText {
 public:
  virtual ~RecordText() = default;
  // The text of record `index` (the index Dataset::get takes) before tokenizing.
  virtual std::string record_text(int64_t index) const = 0;
};

}  // namespace unitrain

// Sizes a component may state about itself, implemented next to its main interface
// (as WeightImporter is). When the trainer builds a run it checks them against each
// task's dataset, so that a head with too few labels or a tokenizer whose ids the text
// encoder cannot embed stops the run before its first step, not deep inside a loss or
// an embedding (a device-side assert on CUDA). A component that implements neither is
// not checked.
#pragma once

#include <cstdint>

namespace unitrain {

// Heads: how many labels the head scores: classes for classification and VQA, object
// classes without "no object" for detection. Must equal the dataset's label count.
class LabelCount {
 public:
  virtual ~LabelCount() = default;
  virtual int64_t num_labels() const = 0;
};

// Text encoders: the token ids they embed, [0, vocabulary_size()). Datasets that
// tokenize: the ids their tokenizer produces, [0, vocabulary_size()).
class TokenVocabulary {
 public:
  virtual ~TokenVocabulary() = default;
  virtual int64_t vocabulary_size() const = 0;
};

}  // namespace unitrain

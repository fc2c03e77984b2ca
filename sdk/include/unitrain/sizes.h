// Sizes a component may state about itself, implemented next to its main interface
// (as WeightImporter is). When the trainer builds a run it checks them against each
// task's dataset, so that a head with too few labels or a tokenizer whose ids the text
// encoder cannot embed stops the run before its first step, not deep inside a loss or
// an embedding (a device-side assert on CUDA). A component that implements neither is
// not checked.
#pragma once

#include <cstdint>
#include <string>

namespace unitrain {

// Heads: how many labels the head scores: classes for classification and VQA, object
// classes without "no object" for detection. Must equal the dataset's label count.
class LabelCount {
 public:
  virtual ~LabelCount() = default;
  virtual int64_t num_labels() const = 0;
};

// Heads: the width D of the decoder output [L, B, Q, D] they read. The model checks it
// against the decoder's d_model when it builds the head; `input_width_option()` names
// the head's option that sets it ("in_dim" for the in-tree heads), the place the error
// points to.
class InputWidth {
 public:
  virtual ~InputWidth() = default;
  virtual int64_t input_width() const = 0;
  virtual std::string input_width_option() const = 0;
};

// Text encoders: the token ids they embed, [0, vocabulary_size()). Datasets that
// tokenize: the ids their tokenizer produces, [0, vocabulary_size()).
class TokenVocabulary {
 public:
  virtual ~TokenVocabulary() = default;
  virtual int64_t vocabulary_size() const = 0;
};

}  // namespace unitrain

// Raw inputs (an image, a question, a sentence pair) turned into the sample a task's
// dataset would give for them, for `unitrain predict` and the inference library.
//
// A dataset plugin registers an InputPreparer under kind "preparer" with the dataset's
// own name and options (the same defaults: the host builds it from the task's dataset
// block). It reads no dataset file. Most datasets need no code of their own: they
// return a StandardPreparer built from their parsed "image" and "tokenizer" options.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <opencv2/core.hpp>

#include "unitrain/batch.h"
#include "unitrain/data/image_pipeline.h"
#include "unitrain/plugin.h"
#include "unitrain/tokenizer.h"

namespace unitrain {

// One request's raw inputs.
struct RawInput {
  cv::Mat rgb;          // 8-bit RGB, 3 channels; empty: no image
  std::string source;   // where the image came from (a path), for Sample::source
  std::string text;     // empty: no text
  std::string text_b;   // a pair's second text; empty: none
};

class InputPreparer : public PluginObject {
 public:
  // Whether the dataset's samples carry an image / token ids.
  virtual bool reads_image() const = 0;
  virtual bool reads_text() const = 0;
  // The sample the dataset's get() gives for an evaluation record with these inputs and
  // no labels: the image transformed without augmentation (orig_height / orig_width set,
  // so detections map back to the input's pixels), the text tokenized as its records'.
  // Inputs the dataset does not read are ignored. Throws DataError for an image that is
  // not 8-bit RGB. Safe to call from several threads at once.
  virtual Sample prepare(const RawInput& input) const = 0;
  // The transform prepare() applies to images (augmentation off), for tools that show a
  // prepared image (the run report undoes its normalization); null when the dataset
  // reads no image or does not say.
  virtual const data::ImageTransformOptions* image_transform() const { return nullptr; }
};

// The preparer of a dataset whose samples are an image transform and/or tokenized text
// (a given `text_b` is the pair's second text, segment 1).
class StandardPreparer : public InputPreparer {
 public:
  StandardPreparer(std::optional<data::ImageTransformOptions> image,
                   std::optional<TokenizerOptions> tokenizer);
  bool reads_image() const override { return transform_ != nullptr; }
  bool reads_text() const override { return tokenizer_ != nullptr; }
  Sample prepare(const RawInput& input) const override;
  const data::ImageTransformOptions* image_transform() const override {
    return transform_ ? &transform_->options() : nullptr;
  }

 private:
  std::unique_ptr<data::ImageTransform> transform_;
  std::shared_ptr<const Tokenizer> tokenizer_;
};

}  // namespace unitrain

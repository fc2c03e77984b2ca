#include "unitrain/prepare.h"

#include <fmt/format.h>

#include "unitrain/errors.h"

namespace unitrain {

StandardPreparer::StandardPreparer(std::optional<data::ImageTransformOptions> image,
                                   std::optional<TokenizerOptions> tokenizer) {
  if (image) {
    image->augment = false;  // evaluation preprocessing, whatever the block's split says
    transform_ = std::make_unique<data::ImageTransform>(*image);
  }
  if (tokenizer) tokenizer_ = make_tokenizer(*tokenizer);
}

Sample StandardPreparer::prepare(const RawInput& input) const {
  Sample sample;
  sample.source = input.source.empty() ? "predict" : input.source;
  if (transform_ && !input.rgb.empty()) {
    if (input.rgb.type() != CV_8UC3) {
      throw DataError(fmt::format("{}: a decoded image must be 8-bit RGB with 3 channels",
                                  sample.source));
    }
    sample.image = transform_->apply(input.rgb, torch::Tensor(), 0).image;
    sample.orig_height = input.rgb.rows;
    sample.orig_width = input.rgb.cols;
    sample.image_id = 0;
  }
  if (tokenizer_ && !input.text.empty()) {
    const Encoding encoding = input.text_b.empty() ? tokenizer_->encode(input.text)
                                                   : tokenizer_->encode(input.text, &input.text_b);
    sample.input_ids = encoding.input_ids;
    sample.segment_ids = encoding.segment_ids;
  }
  return sample;
}

}  // namespace unitrain

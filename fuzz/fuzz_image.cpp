// Image decode and the training transform (resize, flip, random size, boxes). Input:
// the image file's bytes.
#include "fuzz_input.h"
#include "unitrain/data/image_pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  const auto file = fuzz::write("image", std::string(reinterpret_cast<const char*>(data), size));
  data::ImageProblem problem;
  const cv::Mat rgb = data::try_decode_image(file, &problem);
  if (rgb.empty()) return 0;
  data::ImageTransformOptions options;
  options.min_size = 32;
  options.max_size = 48;
  options.train_min_sizes = {24, 32};
  options.hflip = 0.5;
  options.augment = true;
  const auto boxes = torch::tensor({0.f, 0.f, static_cast<float>(rgb.cols), static_cast<float>(rgb.rows)})
                         .reshape({1, 4});
  try {
    data::ImageTransform(options).apply(rgb, boxes, size);
  } catch (const Error&) {
  }
  return 0;
}

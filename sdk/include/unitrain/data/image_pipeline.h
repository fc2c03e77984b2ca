// Image loading for dataset readers: decode (OpenCV), resize by the shorter side with
// a cap on the longer side, optional random horizontal flip and random choice of the
// shorter side (detection training, as DETR), then ImageNet normalization into a
// [3, H, W] float tensor. Boxes follow the image through every step.
//
// JSON (a dataset's "image" block), keys as the fields below:
//   {"min_size": 800, "max_size": 1333, "train_min_sizes": [480, 512, ...],
//    "hflip": 0.5, "augment": null}
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unitrain/data/records.h"
#include "unitrain/options.h"

namespace cv {
class Mat;
}

namespace unitrain::data {

struct ImageTransformOptions {
  // Shorter side after resizing (evaluation, or training without train_min_sizes).
  // Default 800. 0 keeps the decoded size.
  int64_t min_size = 800;
  // Cap on the longer side; the shorter side shrinks to respect it. Default 1333.
  // 0 = no cap.
  int64_t max_size = 1333;
  // Training: the shorter side is drawn uniformly from this list (DETR's multi-scale
  // augmentation). Default empty = always min_size.
  std::vector<int64_t> train_min_sizes;
  // Training: probability of a horizontal flip. Default 0 (flips change the meaning
  // of "left"/"right" in questions; detection readers default to 0.5).
  double hflip = 0.0;
  // Whether random augmentation (train_min_sizes, hflip) applies. Unset (JSON null):
  // readers resolve it from their split with for_split(); an ImageTransform built with
  // it unset does not augment.
  std::optional<bool> augment;
  // Per-channel (RGB) normalization: (x / 255 - mean) / std. Default ImageNet.
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> std = {0.229, 0.224, 0.225};
};

// The "image" block's keys, declared once: a dataset declares its block with
// `add_group("image", ..., image_transform_option_set(), ...)` over its own defaults.
const options::OptionSet<ImageTransformOptions>& image_transform_option_set();
// Reads an "image" block over `defaults` (null: the defaults). Throws ConfigError naming
// the key under `where`.
ImageTransformOptions image_transform_options_from_json(const nlohmann::json& j,
                                                        const ImageTransformOptions& defaults,
                                                        const std::string& where);
// The JSON block for `options` (round trip of the above).
nlohmann::json image_transform_options_to_json(const ImageTransformOptions& options);
// `options` with an unset `augment` resolved from the split: on for splits whose name
// starts with "train".
ImageTransformOptions for_split(ImageTransformOptions options, const std::string& split);

// Resolves an image path taken from an annotation against the dataset's image root.
// The path must be relative and stay inside the root after lexical normalization
// ("a/../b.jpg" is fine, "../x.jpg" or "/etc/x" are not): DataError "<where>: image
// path '...' escapes the image root '...'".
std::filesystem::path resolve_image_path(const std::filesystem::path& root,
                                         const std::string& relative, const std::string& where);

// True when `relative` is empty, absolute or leaves its root after lexical
// normalization: the test resolve_image_path applies, without throwing.
bool image_path_escapes(const std::string& relative);

// Why an image file cannot be used: `reason` is "missing_image", "truncated_image" or
// "corrupt_image"; `message` names the path.
struct ImageProblem {
  std::string reason;
  std::string message;
};

// Decodes an image file as 8-bit RGB; an empty Mat, with `*problem` filled in, when the
// file is missing, cannot be decoded, or is a JPEG cut short. NOTE: libjpeg decodes a
// truncated JPEG with a warning and grey rows where the data ran out, so such a file
// is recognised by its missing end-of-image marker (PIL refuses it likewise, "image
// file is truncated"). EXIF orientation is ignored, as annotation sizes (COCO's
// width/height) describe the stored pixels.
cv::Mat try_decode_image(const std::filesystem::path& file, ImageProblem* problem);

// try_decode_image, with a DataError carrying the problem's message.
cv::Mat decode_image(const std::filesystem::path& file);

// try_decode_image for a dataset record: a problem goes through the dataset's bad-record
// policy (BadRecords::at_read, so a BadRecordError "<where>: <message>").
cv::Mat decode_image(const std::filesystem::path& file, const std::string& where,
                     const BadRecords& bad);

// Output size (h, w) for an input of (height, width): DETR's rule — shorter side to
// `min_size`, shrunk so the longer side is at most `max_size`.
std::pair<int64_t, int64_t> resized_size(int64_t height, int64_t width, int64_t min_size,
                                         int64_t max_size);

struct TransformedImage {
  torch::Tensor image;  // [3, H, W] float32 normalized
  torch::Tensor boxes;  // [N, 4] float32 cxcywh normalized to (W, H); undefined if no boxes given
  bool flipped = false;  // whether the random horizontal flip was applied
};

class ImageTransform {
 public:
  explicit ImageTransform(ImageTransformOptions options);

  // `rgb`: 8-bit RGB image. `boxes_xyxy`: [N, 4] float32 absolute pixels of `rgb`
  // (may be undefined). Random choices come from `seed` only.
  TransformedImage apply(const cv::Mat& rgb, const torch::Tensor& boxes_xyxy,
                         uint64_t seed) const;

  const ImageTransformOptions& options() const { return options_; }

 private:
  ImageTransformOptions options_;
};

// Words that trade places in a sample's text when its image is flipped horizontally
// ("left" <-> "right"), so that a flip keeps questions, answers and hypotheses true (the
// caption rule of MDETR's flip augmentation). Readers with text take a "flip_swap" key.
using WordPairs = std::vector<std::pair<std::string, std::string>>;

// Reads [["left", "right"], ...]. ConfigError at `where` for another shape, an empty
// word, a word that is not letters and digits only, or a word in two pairs.
WordPairs word_pairs_from_json(const nlohmann::json& j, const std::string& where);
nlohmann::json word_pairs_to_json(const WordPairs& pairs);
// The rule of a "flip_swap" option declared as a JSON field: word_pairs_from_json's checks,
// and "array of [word, word] pairs" as its type in the README table.
options::Rule word_pairs_rule();

// `text` with every whole word (a maximal run of ASCII letters and digits) that equals a
// word of a pair, ignoring case, replaced by its partner. The replacement takes the case
// of the word it replaces when that is all upper case or capitalized ("Left" -> "Right").
std::string swap_words(const std::string& text, const WordPairs& pairs);

// True when a split name means training data ("train", "train2014", "train_small").
bool is_train_split(const std::string& split);

}  // namespace unitrain::data

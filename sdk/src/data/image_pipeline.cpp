#include "unitrain/data/image_pipeline.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "unitrain/data/random.h"
#include "unitrain/errors.h"
#include "unitrain/json_text.h"
#include "unitrain/options.h"

namespace unitrain::data {
namespace {

// A rule: 3 numbers (R, G, B), each > 0 when `positive`.
options::Rule three_numbers(bool positive) {
  return options::check([positive](const nlohmann::json& v, const std::string& path) {
    bool ok = v.is_array() && v.size() == 3;
    if (ok) {
      for (const auto& x : v) {
        if (!x.is_number() || (positive && x.get<double>() <= 0)) ok = false;
      }
    }
    if (!ok) {
      throw ConfigError(fmt::format("{}: expected 3 numbers (R, G, B){}, found {}", path,
                                    positive ? " > 0" : "", json_text(v)));
    }
  });
}

}  // namespace

const options::OptionSet<ImageTransformOptions>& image_transform_option_set() {
  static const auto set =
      options::OptionSet<ImageTransformOptions>()
          .add(UNITRAIN_FIELD(min_size),
               "shorter side after resizing (evaluation, or training without `train_min_sizes`); 0 "
               "keeps the decoded size",
               options::at_least(0))
          .add(UNITRAIN_FIELD(max_size),
               "cap on the longer side (the shorter side shrinks to respect it); 0: no cap",
               options::at_least(0))
          .add(UNITRAIN_FIELD(train_min_sizes),
               "when augmenting, the shorter side is drawn from this list (DETR's multi-scale); "
               "empty: always `min_size`",
               options::check([](const nlohmann::json& v, const std::string& path) {
                 if (!v.is_array()) return;  // the type check says it
                 for (size_t i = 0; i < v.size(); ++i) {
                   if (v[i].is_number_integer() && v[i].get<int64_t>() < 1) {
                     throw ConfigError(fmt::format("{}/{}: sizes must be > 0, found {}", path, i,
                                                   json_text(v[i])));
                   }
                 }
               }))
          .add(UNITRAIN_FIELD(hflip), "probability of a horizontal flip when augmenting",
               options::between(0, 1))
          .add(UNITRAIN_FIELD(augment),
               "whether random augmentation applies; null: for splits whose name starts with "
               "\"train\"")
          .add(UNITRAIN_FIELD(mean), "per-channel (RGB) mean of x / 255", three_numbers(false))
          .add(UNITRAIN_FIELD(std), "per-channel (RGB) standard deviation of x / 255",
               three_numbers(true));
  return set;
}

ImageTransformOptions image_transform_options_from_json(const nlohmann::json& j,
                                                        const ImageTransformOptions& defaults,
                                                        const std::string& where) {
  if (j.is_null()) return defaults;
  return image_transform_option_set().parse_over(j, where, defaults);
}

nlohmann::json image_transform_options_to_json(const ImageTransformOptions& o) {
  return image_transform_option_set().to_json(o);
}

options::Rule word_pairs_rule() {
  return options::typed("array of [word, word] pairs",
                        options::check([](const nlohmann::json& v, const std::string& path) {
                          word_pairs_from_json(v, path);
                        }));
}

ImageTransformOptions for_split(ImageTransformOptions options, const std::string& split) {
  if (!options.augment) options.augment = is_train_split(split);
  return options;
}

bool image_path_escapes(const std::string& relative) {
  const std::filesystem::path rel(relative);
  const auto normal = rel.lexically_normal();
  return relative.empty() || rel.is_absolute() || rel.has_root_name() || normal.empty() ||
         *normal.begin() == ".." || normal == ".";
}

std::filesystem::path resolve_image_path(const std::filesystem::path& root,
                                         const std::string& relative, const std::string& where) {
  if (image_path_escapes(relative)) {
    throw DataError(fmt::format(
        "{}: image path '{}' escapes the image root '{}' (paths must be relative and stay "
        "inside it)",
        where, relative, root.string()));
  }
  return root / std::filesystem::path(relative).lexically_normal();
}

namespace {

// True when a JPEG's data ends with its end-of-image marker (FF D9), allowing for the
// padding or trailing records some writers append. Inside entropy-coded data an FF is
// always followed by 00 or a restart marker, so FF D9 near the end is the real marker.
bool jpeg_has_end_marker(const std::vector<uchar>& bytes) {
  const size_t tail = std::min<size_t>(bytes.size(), 4096);
  for (size_t i = bytes.size() - tail; i + 1 < bytes.size(); ++i) {
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xD9) return true;
  }
  return false;
}

}  // namespace

cv::Mat try_decode_image(const std::filesystem::path& file, ImageProblem* problem) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    *problem = {"missing_image", fmt::format("image file '{}' does not exist", file.string())};
    return {};
  }
  std::vector<uchar> bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) {
      *problem = {"corrupt_image", fmt::format("cannot read image file '{}'", file.string())};
      return {};
    }
  }
  const bool jpeg = bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
  if (jpeg && !jpeg_has_end_marker(bytes)) {
    *problem = {"truncated_image",
                fmt::format("image file '{}' is a truncated JPEG ({} bytes, no end-of-image "
                            "marker)",
                            file.string(), bytes.size())};
    return {};
  }
  cv::Mat bgr;
  if (!bytes.empty()) bgr = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  if (bgr.empty()) {
    *problem = {"corrupt_image", fmt::format("cannot decode image file '{}' (corrupt or not an "
                                             "image)",
                                             file.string())};
    return {};
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

cv::Mat decode_image(const std::filesystem::path& file) {
  ImageProblem problem;
  cv::Mat rgb = try_decode_image(file, &problem);
  if (rgb.empty()) throw DataError(problem.message);
  return rgb;
}

cv::Mat decode_image(const std::filesystem::path& file, const std::string& where,
                     const BadRecords& bad) {
  ImageProblem problem;
  cv::Mat rgb = try_decode_image(file, &problem);
  if (rgb.empty()) bad.at_read(where, problem.reason, problem.message);
  return rgb;
}

std::pair<int64_t, int64_t> resized_size(int64_t height, int64_t width, int64_t min_size,
                                         int64_t max_size) {
  if (min_size <= 0 || height <= 0 || width <= 0) return {height, width};
  double size = static_cast<double>(min_size);
  const double short_side = static_cast<double>(std::min(height, width));
  const double long_side = static_cast<double>(std::max(height, width));
  if (max_size > 0 && long_side / short_side * size > static_cast<double>(max_size)) {
    size = std::round(static_cast<double>(max_size) * short_side / long_side);
  }
  // NOTE: at extreme aspect ratios (a 1x4000 strip under max_size 1333) the short side
  // rounds to 0, which cv::resize rejects: keep one pixel, and then the long side at
  // max_size.
  const bool clamped = static_cast<int64_t>(size) < 1;
  const auto s = std::max<int64_t>(1, static_cast<int64_t>(size));
  auto long_size = std::max<int64_t>(1, static_cast<int64_t>(s * long_side / short_side));
  if (clamped && max_size > 0) long_size = std::min(long_size, max_size);
  if (width < height) return {long_size, s};
  return {s, long_size};
}

ImageTransform::ImageTransform(ImageTransformOptions options) : options_(std::move(options)) {}

TransformedImage ImageTransform::apply(const cv::Mat& rgb, const torch::Tensor& boxes_xyxy,
                                       uint64_t seed) const {
  TORCH_CHECK(rgb.type() == CV_8UC3, "ImageTransform::apply expects 8-bit RGB, got type ",
              rgb.type());
  const int64_t h0 = rgb.rows, w0 = rgb.cols;
  Rng rng(seed);
  bool flip = false;
  int64_t min_size = options_.min_size;
  if (options_.augment.value_or(false)) {
    // Draw order is fixed (flip, then size) so a seed keeps its meaning.
    flip = options_.hflip > 0 && rng.uniform() < options_.hflip;
    if (!options_.train_min_sizes.empty()) {
      min_size = options_.train_min_sizes[rng.below(options_.train_min_sizes.size())];
    }
  }
  const auto [h, w] = resized_size(h0, w0, min_size, options_.max_size);

  cv::Mat work = rgb;
  if (flip) cv::flip(rgb, work, 1);
  if (h != h0 || w != w0) {
    cv::Mat resized;
    // INTER_AREA when shrinking approximates PIL's antialiased bilinear resize.
    const int interpolation = (h < h0) ? cv::INTER_AREA : cv::INTER_LINEAR;
    cv::resize(work, resized, cv::Size(static_cast<int>(w), static_cast<int>(h)), 0, 0,
               interpolation);
    work = resized;
  }

  TransformedImage out;
  out.flipped = flip;
  out.image = torch::empty({3, h, w}, torch::kFloat32);
  cv::Mat as_float;
  work.convertTo(as_float, CV_32FC3, 1.0 / 255.0);
  std::vector<cv::Mat> planes;
  for (int c = 0; c < 3; ++c) {
    planes.emplace_back(static_cast<int>(h), static_cast<int>(w), CV_32FC1,
                        out.image[c].data_ptr<float>());
  }
  cv::split(as_float, planes);  // writes straight into the tensor's memory
  for (int c = 0; c < 3; ++c) {
    // In place (same size and type): x / std - mean / std.
    planes[c].convertTo(planes[c], CV_32F, 1.0 / options_.std[c], -options_.mean[c] / options_.std[c]);
  }

  if (boxes_xyxy.defined()) {
    TORCH_CHECK(boxes_xyxy.dim() == 2 && boxes_xyxy.size(1) == 4,
                "boxes must be [N, 4], got ", boxes_xyxy.sizes());
    auto b = boxes_xyxy.to(torch::kFloat32).clone();
    if (flip) {
      auto x0 = b.select(1, 0).clone();
      b.select(1, 0).copy_(static_cast<double>(w0) - b.select(1, 2));
      b.select(1, 2).copy_(static_cast<double>(w0) - x0);
    }
    // Normalizing by the original size equals scaling to (w, h) then normalizing.
    const auto cx = (b.select(1, 0) + b.select(1, 2)) / (2.0 * w0);
    const auto cy = (b.select(1, 1) + b.select(1, 3)) / (2.0 * h0);
    const auto bw = (b.select(1, 2) - b.select(1, 0)) / static_cast<double>(w0);
    const auto bh = (b.select(1, 3) - b.select(1, 1)) / static_cast<double>(h0);
    out.boxes = torch::stack({cx, cy, bw, bh}, 1);
  }
  return out;
}

namespace {

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// `word` in the case pattern of `like`: all upper, capitalized, or as given.
std::string with_case_of(std::string word, const std::string& like) {
  const auto upper = [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; };
  if (like.size() > 1 && std::all_of(like.begin(), like.end(), upper)) {
    for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  } else if (!like.empty() && upper(like[0]) && !word.empty()) {
    word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
  }
  return word;
}

}  // namespace

WordPairs word_pairs_from_json(const nlohmann::json& j, const std::string& where) {
  const auto fail = [&](const std::string& what) {
    throw ConfigError(fmt::format("{}: {}; expected pairs of words such as [[\"left\", "
                                  "\"right\"]], found {}",
                                  where, what, json_text(j)));
  };
  if (!j.is_array()) fail("not an array");
  WordPairs pairs;
  std::vector<std::string> seen;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& p = j[i];
    if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_string()) {
      fail(fmt::format("entry {} is not a pair of strings", i));
    }
    for (const auto& w : p) {
      const std::string word = w.get<std::string>();
      if (word.empty() || !std::all_of(word.begin(), word.end(), word_char)) {
        fail(fmt::format("entry {}: '{}' is not a word of letters and digits", i, word));
      }
      if (std::find(seen.begin(), seen.end(), lower(word)) != seen.end()) {
        fail(fmt::format("entry {}: '{}' appears in more than one place", i, word));
      }
      seen.push_back(lower(word));
    }
    pairs.emplace_back(lower(p[0].get<std::string>()), lower(p[1].get<std::string>()));
  }
  return pairs;
}

nlohmann::json word_pairs_to_json(const WordPairs& pairs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [a, b] : pairs) out.push_back({a, b});
  return out;
}

std::string swap_words(const std::string& text, const WordPairs& pairs) {
  if (pairs.empty()) return text;
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (!word_char(text[i])) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && word_char(text[end])) ++end;
    const std::string word = text.substr(i, end - i);
    const std::string key = lower(word);
    std::string replacement = word;
    for (const auto& [a, b] : pairs) {
      if (key == a) replacement = with_case_of(b, word);
      else if (key == b) replacement = with_case_of(a, word);
    }
    out += replacement;
    i = end;
  }
  return out;
}

bool is_train_split(const std::string& split) { return split.rfind("train", 0) == 0; }

}  // namespace unitrain::data

// Small files in the real formats for the dataset reader tests: a temporary folder,
// text files, JPEG/PNG images written with OpenCV, and a tiny WordPiece vocabulary.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "test_util.h"
#include "unitrain/errors.h"
#include "unitrain/tokenizer.h"

namespace unitrain::testing {

using test::TempDir;
using test::write_file;

// A w x h image whose pixel (x, y) is (x + y) per channel, plus `value` on channel 0
// (BGR order, as cv::imwrite expects). The format follows the extension.
inline void write_image(const std::filesystem::path& file, int width, int height, int value = 0) {
  std::filesystem::create_directories(file.parent_path());
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const auto v = static_cast<uchar>((x + y + value) % 256);
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(v, static_cast<uchar>((x * 3) % 256), 128);
    }
  }
  ASSERT_TRUE(cv::imwrite(file.string(), image)) << file;
}

// A BERT-style vocab.txt with the special tokens and a few words.
inline std::filesystem::path write_vocab(const TempDir& dir) {
  const auto file = dir / "vocab.txt";
  write_file(file,
             "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nwhat\nis\nthe\ncolor\nof\ndog\ncat\na\n"
             "man\nriding\nhorse\n?\n.\nhow\nmany\nthere\nare\n\"\nyes\nno\nleft\nright\non\nor\n");
  return file;
}

inline std::shared_ptr<const Tokenizer> make_test_tokenizer(const TempDir& dir,
                                                            int64_t max_length = 25) {
  TokenizerOptions options;
  options.vocab = write_vocab(dir).string();
  options.max_length = max_length;
  return make_tokenizer(options);
}

// Runs `f` and returns the DataError's message ("" and a test failure if none is thrown).
template <typename F>
std::string data_error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a DataError, got: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected a DataError, nothing was thrown";
  return "";
}

}  // namespace unitrain::testing

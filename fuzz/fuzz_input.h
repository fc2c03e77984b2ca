// Shared by the libFuzzer targets: splitting one input into the files a reader takes,
// a scratch folder per process, and the dataset plugins of this build.
//
// Every target feeds the input to a reader and accepts only unitrain's own errors
// (ConfigError, DataError, CheckpointError, ...): any other exception escapes and
// aborts, which libFuzzer reports as a finding, like a crash, a sanitizer report, a
// hang (-timeout) or a run past the memory limit (-rss_limit_mb).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "unitrain/dataset.h"
#include "unitrain/errors.h"
#include "unitrain/registry.h"

namespace unitrain::fuzz {

// The input cut at each NUL byte: "a\0b" is {"a", "b"}; missing parts are "".
inline std::vector<std::string> parts(const uint8_t* data, size_t size, size_t count) {
  std::vector<std::string> out(count);
  size_t k = 0;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && k + 1 < count) {
      ++k;
    } else {
      out[k].push_back(static_cast<char>(data[i]));
    }
  }
  return out;
}

// A folder of this process's own, kept for the whole run (inputs overwrite its files).
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path shm = "/dev/shm";
    auto d = (std::filesystem::is_directory(shm) ? shm : std::filesystem::temp_directory_path()) /
             ("unitrain-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::filesystem::path write(const std::string& name, const std::string& bytes) {
  const auto file = scratch() / name;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  return file;
}

// A small real image under the scratch folder (w x h, JPEG or PNG by extension).
inline void write_image(const std::string& name, int width, int height) {
  const auto file = scratch() / name;
  std::filesystem::create_directories(file.parent_path());
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(30, 90, 200));
  cv::imwrite(file.string(), image);
}

// A WordPiece vocabulary for the text readers.
inline std::filesystem::path vocab() {
  return write("vocab.txt",
               "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nthe\ndog\ncat\nis\n?\nwhat\ncolor\n"
               "yes\nno\n##s\nleft\nright\n");
}

// The plugins built with the fuzz targets (UNITRAIN_FUZZ_PLUGIN_DIR), loaded once.
inline const Registry& registry() {
  static Registry* r = [] {
    auto* registry = new Registry();  // leaked: plugin libraries are never unloaded
    registry->load_directory(UNITRAIN_FUZZ_PLUGIN_DIR);
    return registry;
  }();
  return *r;
}

// Builds dataset `type` from `options` and reads its first records, as the loader would.
inline void open_and_read(const std::string& type, const nlohmann::json& options) {
  try {
    auto dataset = registry().create_as<Dataset>("dataset", type, options, "fuzz");
    dataset->labels();
    dataset->skipped();
    for (int64_t i = 0; i < dataset->size() && i < 4; ++i) {
      try {
        dataset->get(i, static_cast<uint64_t>(i));
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
}

}  // namespace unitrain::fuzz

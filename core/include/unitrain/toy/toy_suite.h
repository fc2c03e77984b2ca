// The toy suite: a small, seeded, learnable stand-in for UniT's eight datasets, written
// in the real on-disk formats and file names (COCO, Visual Genome as UniT converts it,
// VQAv2, SNLI-VE, GLUE QNLI / MNLI / QQP / SST-2) plus a WordPiece vocab.txt that
// covers every word. `unitrain make-toy-suite DIR` writes it; docs/toy_suite.md
// describes the layout.
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace unitrain::toy {

struct ToySuiteOptions {
  // Drives every random choice. The same seed and options give byte-identical files.
  // Default: 1.
  uint64_t seed = 1;
  // Scenes (images) per image dataset, train + val; every image dataset (COCO, VG,
  // VQAv2, SNLI-VE) shows the same scenes under its own file names. Default: 500.
  int64_t images = 500;
  // Rows per GLUE task, train + dev. Default: 1000.
  int64_t text_examples = 1000;
  // Base image size S in pixels. Scene k's canvas cycles with k % 8 through S x S,
  // S x 3S/4, 3S/4 x S, 5S/4 x 5S/4, 5S/4 x 45S/64 (16:9), 3S/4 x 3S/4, 2S/3 x S and
  // S x 2S/3 (width x height). Shapes scale with the longer side. Default: 128 (>= 32).
  int64_t image_size = 128;
  // Share of images and text rows in the val / dev splits. Default: 0.2.
  double val_fraction = 0.2;
  // VQAv2 questions per image. Default: 3.
  int64_t questions_per_image = 3;
  // JPEG quality (libjpeg, deterministic for a given input). Default: 90.
  int jpeg_quality = 90;
};

// Writes the suite under `dir` (created if missing; files of the same names are
// overwritten, nothing else is touched). Returns the manifest also written to
// dir/manifest.json: every dataset's files, record counts and label counts.
// Throws unitrain::ConfigError for invalid options, unitrain::DataError when a file
// cannot be written.
nlohmann::ordered_json make_toy_suite(const std::filesystem::path& dir,
                                      const ToySuiteOptions& options);

// Raised whenever the generator writes different files for the same options; recorded
// in manifest.json as "version".
inline constexpr int kToySuiteVersion = 3;

// True when dir/manifest.json exists and records this generator version and exactly
// these options, i.e. make_toy_suite(dir, options) would write what is there (files
// edited by hand afterwards are not detected). A missing or unreadable manifest, an
// older version or other options give false.
bool toy_suite_is_current(const std::filesystem::path& dir, const ToySuiteOptions& options);

}  // namespace unitrain::toy

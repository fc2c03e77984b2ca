// Pieces shared by the toy-suite writers: a portable seeded RNG, the scenes (coloured
// shapes drawn with OpenCV), the word collector behind vocab.txt and file output.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unitrain/toy/toy_suite.h"

namespace unitrain::toy {

// std::mt19937_64 is fully specified by the standard; the distributions are not (they
// differ between standard libraries), so the conversions below are written out.
class ToyRng {
 public:
  // A stream for (seed, name): each dataset draws from its own stream, so changing one
  // writer never changes another's files.
  ToyRng(uint64_t seed, const std::string& name);

  uint64_t next() { return engine_(); }
  // Uniform in [lo, hi] (inclusive). The modulo bias is below 2^-50 for our spans.
  int64_t uniform_int(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool bernoulli(double p) { return uniform() < p; }
  template <typename T>
  const T& pick(const std::vector<T>& values) {
    return values[static_cast<size_t>(uniform_int(0, static_cast<int64_t>(values.size()) - 1))];
  }
  // Fisher-Yates.
  template <typename T>
  void shuffle(std::vector<T>& values) {
    for (size_t i = values.size(); i > 1; --i) {
      std::swap(values[i - 1], values[static_cast<size_t>(uniform_int(0, i - 1))]);
    }
  }

 private:
  std::mt19937_64 engine_;
};

// Draws classes from a shuffled deck, reshuffled when empty: every class appears
// equally often up to one deck's worth, so labels come out balanced.
class Deck {
 public:
  Deck(int64_t num_classes, ToyRng& rng) : num_classes_(num_classes), rng_(rng) {}
  int64_t draw();

 private:
  int64_t num_classes_;
  ToyRng& rng_;
  std::vector<int64_t> cards_;
};

// ---------------------------------------------------------------------------------
// Scenes.

extern const std::vector<std::string> kShapes;   // circle, square, triangle
extern const std::vector<std::string> kColors;   // red, green, blue
extern const std::vector<std::string> kSizes;    // small, large

struct ToyObject {
  int shape = 0, color = 0, size = 0;  // indices into kShapes, kColors, kSizes
  // Tight box of the drawn pixels, COCO convention: x, y, width, height (pixels cover
  // [i, i + 1), so a one-pixel object is 1 x 1).
  int x = 0, y = 0, w = 0, h = 0;
  int64_t area = 0;              // number of drawn pixels
  std::vector<double> polygon;   // x0, y0, x1, y1, ... outline (COCO segmentation)
  int64_t class_id() const { return shape * 3 + color; }  // 0..8, colour-major within shape
  double center_x() const { return x + 0.5 * w; }
};

struct ToyScene {
  int64_t index = 0;
  bool train = true;
  int width = 0, height = 0;
  bool textured = false;
  std::vector<ToyObject> objects;  // 1..3, not overlapping
  std::vector<unsigned char> jpeg;
};

// All scenes of the suite (the first ones train, the last round(images * val_fraction)
// val), drawn and JPEG-encoded.
std::vector<ToyScene> make_scenes(const ToySuiteOptions& options);

// ---------------------------------------------------------------------------------
// Text and files.

// Every word written into a text field, as an uncased BERT basic tokenizer splits it
// (lower case, whitespace, each ASCII punctuation character a token of its own).
class WordCollector {
 public:
  // Returns `text` unchanged, after collecting its words.
  const std::string& add(const std::string& text);
  const std::set<std::string>& words() const { return words_; }

 private:
  std::set<std::string> words_;
};

// Writes bytes to dir / relative (creating folders); DataError naming the file on failure.
void write_file(const std::filesystem::path& dir, const std::string& relative,
                const std::string& bytes);
void write_file(const std::filesystem::path& dir, const std::string& relative,
                const std::vector<unsigned char>& bytes);

// A TSV file: header row then rows, tab separated, "\n" line ends, no quoting.
std::string tsv(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// "A red circle." -> first letter upper case.
std::string capitalize(std::string text);

// Counts of each label value, for the manifest.
nlohmann::ordered_json label_counts(const std::vector<std::string>& labels);

// Each writer writes its dataset and returns its manifest entry.
nlohmann::ordered_json write_coco(const std::filesystem::path& dir,
                                  const std::vector<ToyScene>& scenes);
nlohmann::ordered_json write_visual_genome(const std::filesystem::path& dir,
                                           const std::vector<ToyScene>& scenes);
nlohmann::ordered_json write_vqa2(const std::filesystem::path& dir,
                                  const std::vector<ToyScene>& scenes,
                                  const ToySuiteOptions& options, WordCollector& words);
nlohmann::ordered_json write_snli_ve(const std::filesystem::path& dir,
                                     const std::vector<ToyScene>& scenes,
                                     const ToySuiteOptions& options, WordCollector& words);
nlohmann::ordered_json write_glue(const std::filesystem::path& dir,
                                  const ToySuiteOptions& options, WordCollector& words);

}  // namespace unitrain::toy

// The toy suite's RNG, deck, word collector and file helpers.
#include <cctype>
#include <fstream>

#include <fmt/format.h>

#include "toy/toy_internal.h"
#include "unitrain/errors.h"

namespace unitrain::toy {
namespace {

// FNV-1a, then splitmix64: a fixed, portable mix of (seed, stream name).
uint64_t stream_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  uint64_t z = seed ^ h;
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

ToyRng::ToyRng(uint64_t seed, const std::string& name) : engine_(stream_seed(seed, name)) {}

int64_t Deck::draw() {
  if (cards_.empty()) {
    for (int64_t c = 0; c < num_classes_; ++c) cards_.push_back(c);
    rng_.shuffle(cards_);
  }
  const int64_t card = cards_.back();
  cards_.pop_back();
  return card;
}

const std::string& WordCollector::add(const std::string& text) {
  std::string word;
  auto flush = [&] {
    if (!word.empty()) words_.insert(word);
    word.clear();
  };
  for (unsigned char c : text) {
    if (std::isspace(c)) {
      flush();
    } else if (std::ispunct(c)) {
      flush();
      words_.insert(std::string(1, static_cast<char>(c)));
    } else {
      word.push_back(static_cast<char>(std::tolower(c)));
    }
  }
  flush();
  return text;
}

void write_file(const std::filesystem::path& dir, const std::string& relative,
                const std::string& bytes) {
  const std::filesystem::path path = dir / relative;
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    throw DataError(fmt::format("{}: cannot write the file{}", path.string(),
                                error ? " (" + error.message() + ")" : std::string()));
  }
}

void write_file(const std::filesystem::path& dir, const std::string& relative,
                const std::vector<unsigned char>& bytes) {
  write_file(dir, relative, std::string(bytes.begin(), bytes.end()));
}

std::string tsv(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  auto append = [&out](const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out.push_back('\t');
      out += fields[i];
    }
    out.push_back('\n');
  };
  append(header);
  for (const auto& row : rows) append(row);
  return out;
}

std::string capitalize(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

nlohmann::ordered_json label_counts(const std::vector<std::string>& labels) {
  std::map<std::string, int64_t> counts;
  for (const auto& label : labels) ++counts[label];
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [label, count] : counts) out[label] = count;
  return out;
}

}  // namespace unitrain::toy

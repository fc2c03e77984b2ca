#include "answer_normalization.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace unitrain::vqa {
namespace {

constexpr const char* kPunctuation = ";/[]\"{}()=+\\_-><@`,?!";

// Contractions in their written form. The evaluator accepts each with any single
// apostrophe left out ("couldnt've" and "couldn'tve" for "couldn't've"); the map below
// is generated that way.
const char* const kContractions[] = {
    "ain't", "aren't", "can't", "could've", "couldn't", "couldn't've", "didn't", "doesn't",
    "don't", "hadn't", "hadn't've", "hasn't", "haven't", "he'd", "he'd've", "he's", "how'd",
    "how'll", "how's", "I'd've", "I'm", "I've", "isn't", "it'd", "it'd've", "it'll",
    "ma'am", "mightn't", "mightn't've", "might've", "mustn't", "must've", "needn't",
    "not've", "o'clock", "oughtn't", "'ow's'at", "shan't", "she'd've", "she's", "should've",
    "shouldn't", "shouldn't've", "somebody'd", "somebody'd've", "somebody'll", "somebody's",
    "someone'd", "someone'd've", "someone'll", "someone's", "something'd", "something'd've",
    "something'll", "that's", "there'd", "there'd've", "there're", "there's", "they'd",
    "they'd've", "they'll", "they're", "they've", "'twas", "wasn't", "we'd've", "we've",
    "weren't", "what'll", "what're", "what's", "what've", "when's", "where'd", "where's",
    "where've", "who'd", "who'd've", "who'll", "who's", "who've", "why'll", "why're", "why's",
    "won't", "would've", "wouldn't", "wouldn't've", "y'all", "y'all'll", "y'all'd've",
    "you'd", "you'd've", "you'll", "you're", "you've"};

const std::unordered_map<std::string, std::string>& contraction_map() {
  static const auto* map = [] {
    auto* m = new std::unordered_map<std::string, std::string>();
    for (const char* c : kContractions) {
      const std::string full(c);
      for (size_t i = 0; i < full.size(); ++i) {
        if (full[i] == '\'') (*m)[full.substr(0, i) + full.substr(i + 1)] = full;
      }
    }
    return m;
  }();
  return *map;
}

const std::unordered_map<std::string, std::string>& number_map() {
  static const std::unordered_map<std::string, std::string> map = {
      {"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"},   {"three", "3"}, {"four", "4"},
      {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"}, {"ten", "10"}};
  return map;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool has_digit_comma_digit(const std::string& s) {
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == ',' && is_digit(s[i - 1]) && is_digit(s[i + 1])) return true;
  }
  return false;
}

}  // namespace

std::string process_punctuation(const std::string& text) {
  const bool digit_comma = has_digit_comma_digit(text);
  std::string out = text;
  for (const char* p = kPunctuation; *p; ++p) {
    const char c = *p;
    // The decision looks at the original text, not at `out` (as the evaluator does).
    const bool next_to_space = text.find(std::string{c, ' '}) != std::string::npos ||
                               text.find(std::string{' ', c}) != std::string::npos;
    std::string replaced;
    replaced.reserve(out.size());
    for (char x : out) {
      if (x != c) replaced.push_back(x);
      else if (!(next_to_space || digit_comma)) replaced.push_back(' ');
    }
    out.swap(replaced);
  }
  std::string result;
  result.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '.' && !(i + 1 < out.size() && is_digit(out[i + 1]))) continue;
    result.push_back(out[i]);
  }
  return result;
}

std::string process_digits_articles(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::istringstream words(lower);
  std::vector<std::string> kept;
  for (std::string word; words >> word;) {
    auto number = number_map().find(word);
    if (number != number_map().end()) word = number->second;
    if (word == "a" || word == "an" || word == "the") continue;
    auto contraction = contraction_map().find(word);
    if (contraction != contraction_map().end()) word = contraction->second;
    kept.push_back(std::move(word));
  }
  std::string out;
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i) out.push_back(' ');
    out += kept[i];
  }
  return out;
}

std::string normalize_answer(const std::string& answer) {
  std::string s = answer;
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\t', ' ');
  const auto first = s.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  s = s.substr(first, s.find_last_not_of(' ') - first + 1);
  return process_digits_articles(process_punctuation(s));
}

}  // namespace unitrain::vqa

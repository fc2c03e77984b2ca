#include <fstream>

#include "text/tokenizers.h"
#include "text/unicode.h"
#include "unitrain/errors.h"

namespace unitrain::text {

WordPieceTokenizer::WordPieceTokenizer(const std::string& vocab_file, bool lower_case,
                                       int64_t max_length)
    : lower_case_(lower_case) {
  max_length_ = max_length;
  std::ifstream in(vocab_file);
  if (!in) {
    throw ConfigError("WordPiece vocabulary file '" + vocab_file +
                      "' cannot be opened (expected a BERT vocab.txt, one token a line)");
  }
  std::string line;
  int64_t id = 0;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    // Editors on Windows save a UTF-8 BOM; it would glue onto the first token ([PAD]).
    if (id == 0 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    // Like BERT's loader, a repeated token keeps its last id.
    if (!line.empty()) vocab_[line] = id;
    ++id;
  }
  vocab_size_ = id;
  auto special = [&](const char* token) {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) {
      throw ConfigError("WordPiece vocabulary '" + vocab_file + "' has no " + token +
                        " token (needed: [PAD], [UNK], [CLS], [SEP])");
    }
    return it->second;
  };
  pad_id_ = special("[PAD]");
  unk_id_ = special("[UNK]");
  cls_id_ = special("[CLS]");
  sep_id_ = special("[SEP]");
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? unk_id_ : it->second;
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) tokens.push_back(std::move(current));
    current.clear();
  };
  for (char32_t c : utf8_decode(text)) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      flush();
      continue;
    }
    if (lower_case_) {
      c = strip_accent(to_lower(c));
      if (is_combining_mark(c)) continue;
    }
    // Punctuation and CJK ideographs are tokens of their own.
    if (is_punctuation(c) || is_cjk(c)) {
      flush();
      utf8_append(current, c);
      flush();
      continue;
    }
    utf8_append(current, c);
  }
  flush();
  return tokens;
}

void WordPieceTokenizer::wordpiece(const std::string& word, std::vector<std::string>& out) const {
  const std::u32string chars = utf8_decode(word);
  if (chars.size() > kMaxWordChars) {
    out.emplace_back("[UNK]");
    return;
  }
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < chars.size()) {
    size_t end = chars.size();
    std::string match;
    for (; end > start; --end) {
      std::string piece = start > 0 ? "##" : "";
      piece += utf8_encode(chars.substr(start, end - start));
      if (vocab_.count(piece) != 0) {
        match = std::move(piece);
        break;
      }
    }
    if (match.empty()) {
      out.emplace_back("[UNK]");
      return;
    }
    pieces.push_back(std::move(match));
    start = end;
  }
  for (auto& p : pieces) out.push_back(std::move(p));
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& word : basic_tokenize(text)) wordpiece(word, out);
  return out;
}

}  // namespace unitrain::text

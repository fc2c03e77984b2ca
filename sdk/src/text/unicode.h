// The small part of Unicode that BERT's basic tokenizer needs, without ICU: UTF-8
// decoding, character classes, lower-casing and accent stripping.
//
// NOTE: coverage is deliberately partial. Lower-casing and accent stripping cover
// ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (what uncased BERT
// vocabularies mostly hold); other scripts pass through unchanged. Punctuation covers
// ASCII (BERT treats every non-alphanumeric ASCII symbol as punctuation), Latin-1,
// General Punctuation, CJK and full-width punctuation.
#pragma once

#include <string>
#include <vector>

namespace unitrain::text {

// Decodes UTF-8; an invalid byte becomes U+FFFD.
std::u32string utf8_decode(const std::string& s);
std::string utf8_encode(const std::u32string& s);
void utf8_append(std::string& out, char32_t c);

bool is_whitespace(char32_t c);
bool is_control(char32_t c);  // format/control characters that BERT drops
bool is_punctuation(char32_t c);
bool is_cjk(char32_t c);  // CJK ideographs, which BERT splits one per token

char32_t to_lower(char32_t c);
// The base letter of a precomposed accented letter (e.g. 'é' -> 'e'), or c itself.
char32_t strip_accent(char32_t c);
bool is_combining_mark(char32_t c);  // U+0300..U+036F, dropped with accents

}  // namespace unitrain::text

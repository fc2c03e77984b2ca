// VQA answer normalization, following the behaviour of the official VQA evaluator
// (vqaEval.py): the same steps in the same order, quirks included, so that accuracies
// match the leaderboard's.
#pragma once

#include <string>

namespace unitrain::vqa {

// 1. newlines and tabs become spaces; leading/trailing whitespace is removed;
// 2. punctuation: each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! is deleted when it
//    is next to a space in the input or when the input holds a digit-comma-digit
//    ("1,000"), else replaced by a space; then every '.' not followed by a digit is
//    deleted ("Two." -> "Two", "3.5" stays);
// 3. words: lower-cased, split on whitespace; number words zero..ten (and "none") become
//    digits; the articles a, an, the are dropped; contractions written without their
//    apostrophe get it back ("dont" -> "don't"); words joined by single spaces.
// NOTE: as in the official table, the keys for I'm / I've / I'd've are capitalized and
// so never match a lower-cased word: "im" stays "im".
std::string normalize_answer(const std::string& answer);

// Step 2 alone (exposed for tests).
std::string process_punctuation(const std::string& text);
// Step 3 alone.
std::string process_digits_articles(const std::string& text);

}  // namespace unitrain::vqa

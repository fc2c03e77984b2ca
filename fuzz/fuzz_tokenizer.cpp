// WordPiece: a vocab.txt and one or two texts to encode. Input: vocab \0 text \0 text.
// An empty vocabulary part uses a fixed one.
#include "fuzz_input.h"
#include "unitrain/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unitrain;
  const auto p = fuzz::parts(data, size, 3);
  TokenizerOptions options;
  options.vocab = p[0].empty() ? fuzz::vocab().string() : fuzz::write("fuzz_vocab.txt", p[0]).string();
  options.max_length = 12;
  try {
    auto tokenizer = make_tokenizer(options);
    tokenizer->encode(p[1]);
    tokenizer->encode(p[1], &p[2]);
  } catch (const Error&) {
  }
  return 0;
}

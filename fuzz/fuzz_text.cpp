// libFuzzer target: the UTF-8 decoder and the tokenizers on arbitrary bytes.
// Invalid text must be an unroll::Error; valid text must round-trip: decoding
// then encoding gives the bytes back (a BOM is text here), and word-level
// tokens joined give the text back.
#include <cstdint>
#include <string>

#include "unroll/core/error.h"
#include "unroll/text/labelled.h"
#include "unroll/text/text_corpus.h"
#include "unroll/text/utf8.h"
#include "unroll/text/vocab.h"
#include "unroll/text/words.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::u32string cps;
  try {
    cps = unroll::decode_utf8(bytes, "fuzz input");
  } catch (const unroll::Error&) {
    return 0;
  }
  // Decoding keeps every code point, U+FEFF included (only read_text_file
  // drops a file's leading byte-order mark).
  const std::string& body = bytes;
  if (unroll::encode_utf8(cps) != body) __builtin_trap();
  try {
    unroll::TextFormat words;
    words.level = "word";
    const std::vector<std::string> tokens = unroll::tokenize(body, words, "fuzz input");
    if (unroll::detokenize(tokens, words) != body) __builtin_trap();
    unroll::Vocab v = unroll::Vocab::from_words(tokens);
    if (!tokens.empty() && v.encode_words(tokens).size() != tokens.size()) __builtin_trap();
    unroll::TextFormat pre = words;
    pre.pretokenized = true;
    unroll::tokenize(body, pre, "fuzz input");
    unroll::Vocab chars = unroll::Vocab::from_chars(cps);
    if (chars.encode_chars(cps).size() != cps.size()) __builtin_trap();
    unroll::text_lines(bytes, "fuzz input");
    unroll::read_tagged_text(bytes, "fuzz input", true);
  } catch (const unroll::Error&) {
  }
  return 0;
}

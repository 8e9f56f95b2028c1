// unroll/text/text_corpus.h — a corpus: one or more UTF-8 files read,
// concatenated and encoded as token ids, at the character level (one token
// per code point) or the word level (text/words.h).
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "unroll/text/vocab.h"

namespace unroll {

// How text becomes tokens. Saved with a checkpoint, so that resume, sample
// and eval read text exactly as training did.
struct TextFormat {
  std::string level = "char";  // "char" or "word"
  bool pretokenized = false;   // word level: words separated by spaces, one sentence a line
  bool eos = true;             // pretokenized: an <eos> token ends each line
  int64_t min_count = 1;       // word level: rarer words become <unk>
  int64_t max_vocab = 0;  // word level: at most this many tokens, <unk> included (0 = no limit)
  void validate() const;  // throws Error on a bad combination
  nlohmann::json to_json() const;
  static TextFormat from_json(const nlohmann::json& j);  // null or absent fields: the defaults
  const char* unit() const { return level == "char" ? "characters" : "tokens"; }
};

// The tokens of UTF-8 text under a format (strings; see split_words).
std::vector<std::string> tokenize(const std::string& utf8, const TextFormat& f,
                                  const std::string& source);

// Tokens back to text under a format: concatenated, or for a pre-tokenized
// corpus spaced with <eos> as a line end.
std::string detokenize(const std::vector<std::string>& tokens, const TextFormat& f);

struct TextCorpus {
  std::vector<std::string> files;  // absolute paths
  TextFormat format;
  std::vector<int32_t> ids;  // the whole text, encoded
  Vocab vocab;
  size_t unknown = 0;                 // word level: tokens outside the vocabulary, read as <unk>
  uint64_t hash = 0;                  // FNV-1a of the bytes, to recognise the same data on resume
  std::vector<uint64_t> file_hashes;  // FNV-1a of each file, to name the one that changed
  size_t bytes = 0;
  nlohmann::json describe() const;  // files, format, bytes, tokens, vocabulary size, hashes
};

// Builds the vocabulary from the text unless one is given. With a given
// vocabulary, characters outside it are an error that names them (char
// level); words outside it become <unk> (word level).
TextCorpus load_corpus(const std::vector<std::string>& files, const Vocab* vocab = nullptr,
                       const TextFormat& format = {});

}  // namespace unroll

// unroll/text/char_corpus.h — the character-level corpus: read one or more
// UTF-8 files, concatenate them, encode code points as token ids.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "unroll/text/vocab.h"

namespace unroll {

struct CharCorpus {
  std::vector<std::string> files;  // as given
  std::vector<int32_t> ids;        // the whole text, encoded
  Vocab vocab;
  uint64_t hash = 0;               // FNV-1a of the bytes, to recognise the same data on resume
  std::vector<uint64_t> file_hashes;  // FNV-1a of each file, to name the one that changed
  size_t bytes = 0;
  nlohmann::json describe() const;  // files, bytes, characters, vocabulary size, hashes
};

// Builds the vocabulary from the text unless one is given (then characters
// outside it are an error that names them).
CharCorpus load_char_corpus(const std::vector<std::string>& files, const Vocab* vocab = nullptr);

}  // namespace unroll

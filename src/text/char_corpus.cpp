#include "unroll/text/char_corpus.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "unroll/core/error.h"
#include "unroll/core/hash.h"
#include "unroll/text/utf8.h"

namespace unroll {

nlohmann::json CharCorpus::describe() const {
  char h[17];
  std::snprintf(h, sizeof h, "%016llx", static_cast<unsigned long long>(hash));
  return {{"files", files},
          {"bytes", bytes},
          {"characters", ids.size()},
          {"vocab", vocab.size()},
          {"hash", std::string(h)}};
}

CharCorpus load_char_corpus(const std::vector<std::string>& files, const Vocab* vocab) {
  require(!files.empty(), "no input files given");
  CharCorpus c;
  // Absolute paths, so a resume finds the files from any working folder.
  for (auto& f : files) c.files.push_back(std::filesystem::absolute(f).lexically_normal().string());
  std::u32string text;
  uint64_t h = fnv1a64(nullptr, 0);
  for (auto& f : files) {
    std::string bytes = read_text_file(f);
    h = fnv1a64(bytes.data(), bytes.size(), h);
    c.bytes += bytes.size();
    text += decode_utf8(bytes, f);
  }
  c.hash = h;
  c.vocab = vocab ? *vocab : Vocab::from_chars(text);
  c.ids = c.vocab.encode_chars(text);
  return c;
}

}  // namespace unroll

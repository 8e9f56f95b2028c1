#include "unroll/text/char_corpus.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "unroll/core/error.h"
#include "unroll/core/hash.h"
#include "unroll/text/utf8.h"

namespace unroll {

namespace {
std::string hex64(uint64_t v) {
  char h[17];
  std::snprintf(h, sizeof h, "%016llx", static_cast<unsigned long long>(v));
  return h;
}
}  // namespace

nlohmann::json CharCorpus::describe() const {
  nlohmann::json per_file = nlohmann::json::array();
  for (auto fh : file_hashes) per_file.push_back(hex64(fh));
  return {{"files", files},           {"bytes", bytes}, {"characters", ids.size()},
          {"vocab", vocab.size()},    {"hash", hex64(hash)},
          {"file_hashes", per_file}};
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
    c.file_hashes.push_back(fnv1a64(bytes.data(), bytes.size()));
    c.bytes += bytes.size();
    text += decode_utf8(bytes, f);
  }
  c.hash = h;
  c.vocab = vocab ? *vocab : Vocab::from_chars(text);
  c.ids = c.vocab.encode_chars(text);
  return c;
}

}  // namespace unroll

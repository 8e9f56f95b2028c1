#include "unroll/text/text_corpus.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "unroll/core/error.h"
#include "unroll/core/hash.h"
#include "unroll/core/json.h"
#include "unroll/text/utf8.h"
#include "unroll/text/words.h"

namespace unroll {

namespace {
std::string hex64(uint64_t v) {
  char h[17];
  std::snprintf(h, sizeof h, "%016llx", static_cast<unsigned long long>(v));
  return h;
}
}  // namespace

void TextFormat::validate() const {
  require(level == "char" || level == "word",
          "unknown text level '" + level + "'; expected char or word");
  require(min_count >= 1,
          "the minimum word count must be at least 1 (got " + std::to_string(min_count) + ")");
  require(max_vocab == 0 || max_vocab >= 2,
          "the maximum vocabulary size must be 0 (no limit) or at least 2 (got " +
              std::to_string(max_vocab) + ")");
  if (level == "char")
    require(!pretokenized && min_count == 1 && max_vocab == 0,
            "--pretokenized, --min-count and --max-vocab are for word-level models (--level word)");
}

nlohmann::json TextFormat::to_json() const {
  return {{"level", level},
          {"pretokenized", pretokenized},
          {"eos", eos},
          {"min_count", min_count},
          {"max_vocab", max_vocab}};
}

TextFormat TextFormat::from_json(const nlohmann::json& j) {
  TextFormat f;
  if (!j.is_object()) return f;
  try {
    f.level = j.value("level", f.level);
    f.pretokenized = j.value("pretokenized", f.pretokenized);
    f.eos = j.value("eos", f.eos);
    f.min_count = json_field(j, "min_count", f.min_count);
    f.max_vocab = json_field(j, "max_vocab", f.max_vocab);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("the text format is malformed: ") + e.what());
  }
  f.validate();
  return f;
}

std::vector<std::string> tokenize(const std::string& utf8, const TextFormat& f,
                                  const std::string& source) {
  if (f.level == "word")
    return f.pretokenized ? split_pretokenized(utf8, f.eos, source) : split_words(utf8, source);
  std::vector<std::string> out;
  for (char32_t c : decode_utf8(utf8, source))
    out.push_back(encode_utf8(std::u32string_view(&c, 1)));
  return out;
}

std::string detokenize(const std::vector<std::string>& tokens, const TextFormat& f) {
  return join_words(tokens, f.level == "word" && f.pretokenized);
}

nlohmann::json TextCorpus::describe() const {
  nlohmann::json per_file = nlohmann::json::array();
  for (auto fh : file_hashes) per_file.push_back(hex64(fh));
  nlohmann::json j = {{"files", files},         {"format", format.to_json()}, {"bytes", bytes},
                      {"tokens", ids.size()},   {"vocab", vocab.size()},      {"hash", hex64(hash)},
                      {"file_hashes", per_file}};
  if (format.level == "char") j["characters"] = ids.size();
  return j;
}

TextCorpus load_corpus(const std::vector<std::string>& files, const Vocab* vocab,
                       const TextFormat& format) {
  require(!files.empty(), "no input files given");
  format.validate();
  TextCorpus c;
  c.format = format;
  // Absolute paths, so a resume finds the files from any working folder.
  for (auto& f : files) c.files.push_back(std::filesystem::absolute(f).lexically_normal().string());
  std::u32string text;             // char level
  std::vector<std::string> words;  // word level
  uint64_t h = fnv1a64(nullptr, 0);
  for (auto& f : files) {
    std::string bytes = read_text_file(f);
    h = fnv1a64(bytes.data(), bytes.size(), h);
    c.file_hashes.push_back(fnv1a64(bytes.data(), bytes.size()));
    c.bytes += bytes.size();
    if (format.level == "char") {
      text += decode_utf8(bytes, f);
    } else {
      std::vector<std::string> t = tokenize(bytes, format, f);
      words.insert(words.end(), std::make_move_iterator(t.begin()),
                   std::make_move_iterator(t.end()));
    }
  }
  c.hash = h;
  if (vocab)
    require(vocab->level() == format.level, "the vocabulary is at the '" + vocab->level() +
                                                "' level, the text is read at the '" +
                                                format.level + "' level");
  if (format.level == "char") {
    c.vocab = vocab ? *vocab : Vocab::from_chars(text);
    try {
      c.ids = c.vocab.encode_chars(text);
    } catch (const Error& e) {  // name the files: there may be several texts in play
      std::string names;
      for (size_t i = 0; i < files.size(); ++i) names += (i ? ", '" : "'") + files[i] + "'";
      throw Error(names + ": " + e.what());
    }
  } else {
    require(!words.empty(), "the text has no words: nothing to train on");
    c.vocab = vocab ? *vocab : Vocab::from_words(words, format.min_count, format.max_vocab);
    c.ids = c.vocab.encode_words(words, &c.unknown);
  }
  return c;
}

}  // namespace unroll

// unroll/text/vocab.h — the vocabulary: the mapping between token ids and tokens.
// Tokens are UTF-8 strings. At character level every token is one Unicode code
// point; the word level reuses the class with multi-character tokens. The id of
// a token is its position in the list, so a saved vocabulary keeps its ids.
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace unroll {

class Vocab {
 public:
  Vocab() = default;  // empty; size() == 0

  // The distinct code points of `text`, sorted by code point. Throws Error if text is empty.
  static Vocab from_chars(const std::u32string& text);

  // Tokens in id order, for the given level ("char" or "word"). Throws Error if
  // the list is empty, has duplicates, has an empty or non-UTF-8 token, or (char
  // level) a token that is not exactly one code point.
  static Vocab from_tokens(std::vector<std::string> tokens, const std::string& level);

  int size() const { return static_cast<int>(tokens_.size()); }
  const std::string& level() const { return level_; }
  const std::string& token(int id) const;    // throws Error if id is out of range
  int find(const std::string& token) const;  // -1 if absent
  int find(char32_t cp) const;               // -1 if absent (single-code-point tokens)
  // Where generation starts without a prime: "\n", else "<eos>", else id 0.
  int start_id() const;

  // One id per code point. Throws Error naming the characters that are not in
  // the vocabulary (up to 10, as the character and as U+XXXX).
  std::vector<int32_t> encode_chars(const std::u32string& text) const;

  // Encodes UTF-8 text (a prime, say) one id per code point. Each user-
  // perceived character (grapheme cluster) that the vocabulary does not know
  // as typed is tried in NFC and then in NFD ("e" + combining accent vs "é"),
  // each on its own, so composed Hangul and a decomposed é can share a text;
  // *used receives the text as encoded. A character no form fits is named in
  // encode_chars' Error as typed.
  std::vector<int32_t> encode_text(const std::string& utf8, const std::string& source,
                                   std::string* used = nullptr) const;

  // A word-level vocabulary from a token sequence (text/words.h): kUnk is id 0,
  // then every token seen at least min_count times, most frequent first (ties
  // in byte order), at most max_size tokens in all, kUnk included (0 = no
  // limit). Tokens left out are read as kUnk. Throws Error on empty input, a
  // min_count below 1 or a max_size of 1.
  static Vocab from_words(const std::vector<std::string>& tokens, int64_t min_count = 1,
                          int64_t max_size = 0);

  // One id per token; a token not in the vocabulary gets kUnk's id and is
  // counted in *unknown. Throws Error if there is an unknown token and the
  // vocabulary has no kUnk.
  std::vector<int32_t> encode_words(const std::vector<std::string>& tokens,
                                    size_t* unknown = nullptr) const;

  // Concatenates the tokens of ids[0..n). Throws Error on an id out of range.
  std::string decode(const int32_t* ids, size_t n) const;
  std::string decode(const std::vector<int32_t>& ids) const {
    return decode(ids.data(), ids.size());
  }

  // {"level": "char", "tokens": [...]}; from_json validates and throws Error on malformed input.
  nlohmann::json to_json() const;
  static Vocab from_json(const nlohmann::json& j);

 private:
  std::string level_ = "char";
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int> index_;
  std::unordered_map<char32_t, int> char_index_;  // tokens that are one code point
};

}  // namespace unroll

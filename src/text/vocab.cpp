#include "unroll/text/vocab.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "unroll/core/error.h"
#include "unroll/text/utf8.h"
#include "unroll/text/words.h"

namespace unroll {

namespace {

std::string code_point_name(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

// 'Z' (U+005A); control characters are shown escaped or by code only.
std::string describe_char(char32_t cp) {
  std::string shown;
  switch (cp) {
    case '\n':
      shown = "\\n";
      break;
    case '\t':
      shown = "\\t";
      break;
    case '\r':
      shown = "\\r";
      break;
    default:
      if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return code_point_name(cp);
      append_utf8(shown, cp);
  }
  return "'" + shown + "' (" + code_point_name(cp) + ")";
}

}  // namespace

Vocab Vocab::from_chars(const std::u32string& text) {
  require(!text.empty(), "cannot build a vocabulary from empty text; give some text");
  std::u32string cps = text;
  std::sort(cps.begin(), cps.end());
  cps.erase(std::unique(cps.begin(), cps.end()), cps.end());
  std::vector<std::string> tokens;
  tokens.reserve(cps.size());
  for (char32_t cp : cps) tokens.push_back(encode_utf8(std::u32string_view(&cp, 1)));
  return from_tokens(std::move(tokens), "char");
}

Vocab Vocab::from_tokens(std::vector<std::string> tokens, const std::string& level) {
  require(level == "char" || level == "word",
          "unknown vocabulary level '" + level + "'; expected \"char\" or \"word\"");
  require(!tokens.empty(), "the vocabulary has no tokens");
  Vocab v;
  v.level_ = level;
  v.tokens_ = std::move(tokens);
  v.index_.reserve(v.tokens_.size());
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    const std::string& t = v.tokens_[i];
    const std::string where = "vocabulary token " + std::to_string(i);
    require(!t.empty(), where + " is an empty string; every token needs at least one character");
    std::u32string cps = decode_utf8(t, where);
    require(level != "char" || cps.size() == 1,
            where + " has " + std::to_string(cps.size()) +
                " characters; a character-level vocabulary has exactly one per token");
    auto [it, fresh] = v.index_.emplace(t, static_cast<int>(i));
    require(fresh, where + " repeats token " + std::to_string(it->second) + " (" +
                       describe_char(cps[0]) + (cps.size() > 1 ? "..." : "") +
                       "); every token must be distinct");
    if (cps.size() == 1) v.char_index_.emplace(cps[0], static_cast<int>(i));
  }
  return v;
}

Vocab Vocab::from_words(const std::vector<std::string>& tokens, int64_t min_count,
                        int64_t max_size) {
  require(!tokens.empty(), "cannot build a vocabulary from empty text; give some text");
  require(min_count >= 1,
          "the minimum word count must be at least 1 (got " + std::to_string(min_count) + ")");
  require(max_size == 0 || max_size >= 2,
          "the vocabulary needs room for <unk> and at least one word: a maximum size of 2 or more, "
          "or 0 for no limit (got " +
              std::to_string(max_size) + ")");
  std::unordered_map<std::string, int64_t> counts;
  for (const std::string& t : tokens) ++counts[t];
  std::vector<std::pair<std::string, int64_t>> kept;
  for (auto& [tok, n] : counts)
    if (n >= min_count && tok != kUnk) kept.emplace_back(tok, n);
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (max_size > 0 && int64_t(kept.size()) > max_size - 1) kept.resize(size_t(max_size - 1));
  std::vector<std::string> list = {kUnk};
  for (auto& k : kept) list.push_back(k.first);
  return from_tokens(std::move(list), "word");
}

std::vector<int32_t> Vocab::encode_words(const std::vector<std::string>& tokens,
                                         size_t* unknown) const {
  const int unk = find(kUnk);
  std::vector<int32_t> ids(tokens.size());
  size_t missing = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    int id = find(tokens[i]);
    if (id < 0) {
      require(unk >= 0,
              "the word '" + tokens[i] + "' is not in the vocabulary, which has no " + kUnk);
      id = unk;
      ++missing;
    }
    ids[i] = id;
  }
  if (unknown) *unknown = missing;
  return ids;
}

const std::string& Vocab::token(int id) const {
  require(id >= 0 && id < size(), "token id " + std::to_string(id) +
                                      " is outside the vocabulary (ids 0.." +
                                      std::to_string(size() - 1) + ")");
  return tokens_[id];
}

int Vocab::find(const std::string& token) const {
  auto it = index_.find(token);
  return it == index_.end() ? -1 : it->second;
}

int Vocab::start_id() const {
  for (const std::string& t : {std::string("\n"), kEos})
    if (int id = find(t); id >= 0) return id;
  return 0;
}

int Vocab::find(char32_t cp) const {
  auto it = char_index_.find(cp);
  return it == char_index_.end() ? -1 : it->second;
}

std::vector<int32_t> Vocab::encode_text(const std::string& utf8, const std::string& source,
                                        std::string* used) const {
  const std::u32string text = decode_utf8(utf8, source);
  auto known = [&](std::u32string_view t) {
    return std::all_of(t.begin(), t.end(), [&](char32_t c) { return find(c) >= 0; });
  };
  if (known(text)) {
    if (used) *used = utf8;
    return encode_chars(text);
  }
  // Normalise each user-perceived character (grapheme cluster) on its own:
  // one text can hold characters the vocabulary knows composed (Hangul
  // syllables) next to ones it knows decomposed (e + U+0301), and no single
  // form of the whole text fits both.
  std::u32string out;
  out.reserve(text.size());
  const std::vector<size_t> starts = grapheme_starts(text);
  for (size_t g = 0; g + 1 < starts.size(); ++g) {
    const std::u32string_view cluster(text.data() + starts[g], starts[g + 1] - starts[g]);
    std::u32string fit(cluster);
    if (!known(cluster)) {
      const std::string bytes = encode_utf8(cluster);
      for (const std::string& form : {utf8_nfc(bytes), utf8_nfd(bytes)}) {
        std::u32string t = decode_utf8(form, source);
        if (known(t)) {
          fit = std::move(t);
          break;
        }
      }
    }
    out += fit;  // as typed when no form fits: encode_chars names it
  }
  if (used) *used = encode_utf8(out);
  return encode_chars(out);
}

std::vector<int32_t> Vocab::encode_chars(const std::u32string& text) const {
  std::vector<int32_t> ids(text.size());
  std::vector<char32_t> unknown;  // distinct, in order of first appearance
  size_t unknown_total = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    int id = find(text[i]);
    if (id < 0) {
      ++unknown_total;
      if (std::find(unknown.begin(), unknown.end(), text[i]) == unknown.end())
        unknown.push_back(text[i]);
    }
    ids[i] = id;
  }
  if (!unknown.empty()) {
    std::string msg = "characters not in the model's vocabulary: ";
    for (size_t k = 0; k < unknown.size() && k < 10; ++k)
      msg += (k ? ", " : "") + describe_char(unknown[k]);
    if (unknown.size() > 10) msg += " and " + std::to_string(unknown.size() - 10) + " more";
    msg += " (" + std::to_string(unknown_total) + " occurrence" + (unknown_total == 1 ? "" : "s") +
           "); the model knows " + std::to_string(size()) +
           " characters; remove them from the text or train on text that contains them";
    throw Error(msg);
  }
  return ids;
}

std::string Vocab::decode(const int32_t* ids, size_t n) const {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out += token(ids[i]);
  return out;
}

nlohmann::json Vocab::to_json() const { return {{"level", level_}, {"tokens", tokens_}}; }

Vocab Vocab::from_json(const nlohmann::json& j) {
  require(j.is_object(),
          "vocabulary: expected a JSON object {\"level\": ..., \"tokens\": [...]}, "
          "got " +
              std::string(j.type_name()));
  auto lv = j.find("level");
  require(lv != j.end() && lv->is_string(),
          "vocabulary: missing or non-string \"level\" (expected \"char\" or \"word\")");
  auto tk = j.find("tokens");
  require(tk != j.end() && tk->is_array(), "vocabulary: missing \"tokens\" array");
  std::vector<std::string> tokens;
  tokens.reserve(tk->size());
  for (size_t i = 0; i < tk->size(); ++i) {
    const auto& t = (*tk)[i];
    require(t.is_string(), "vocabulary token " + std::to_string(i) + " is a " +
                               std::string(t.type_name()) + ", not a string");
    tokens.push_back(t.get<std::string>());
  }
  return from_tokens(std::move(tokens), lv->get<std::string>());
}

}  // namespace unroll

#include "unroll/text/words.h"

#include <utf8proc.h>

#include "unroll/text/utf8.h"

namespace unroll {

namespace {

bool word_char(char32_t c) {
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// White space other than line ends: tab, vertical tab, form feed, and Zs.
bool blank(char32_t c) {
  return c == U'\t' || c == U'\v' || c == U'\f' ||
         utf8proc_category(utf8proc_int32_t(c)) == UTF8PROC_CATEGORY_ZS;
}

}  // namespace

std::vector<std::string> split_words(std::string_view utf8, const std::string& source) {
  const std::u32string t = decode_utf8(utf8, source);
  std::vector<std::string> out;
  const size_t n = t.size();
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    if (word_char(t[i])) {
      while (j < n && word_char(t[j])) ++j;
    } else if (t[i] == U'\r' && j < n && t[j] == U'\n') {
      ++j;
    } else if (blank(t[i])) {
      while (j < n && t[j] == t[i]) ++j;
    }
    out.push_back(encode_utf8(std::u32string_view(t).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::vector<std::string> split_pretokenized(std::string_view utf8, bool eos,
                                            const std::string& source) {
  decode_utf8(utf8, source);  // validates; the splitting below works on bytes
  std::vector<std::string> out;
  size_t line_start = 0;
  while (line_start < utf8.size()) {
    size_t line_end = utf8.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = utf8.size();
    std::string_view line = utf8.substr(line_start, line_end - line_start);
    bool any = false;
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      if (j > i) {
        out.emplace_back(line.substr(i, j - i));
        any = true;
      }
      i = j;
    }
    if (eos && any) out.push_back(kEos);
    line_start = line_end + 1;
  }
  return out;
}

std::string join_words(const std::vector<std::string>& tokens, bool spaced) {
  std::string s;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!spaced) {
      s += tokens[i];
    } else if (tokens[i] == kEos) {
      s += '\n';
    } else {
      if (i > 0 && tokens[i - 1] != kEos) s += ' ';
      s += tokens[i];
    }
  }
  return s;
}

}  // namespace unroll

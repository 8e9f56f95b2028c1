// unroll/core/shell.h — words quoted for a POSIX shell, so that a command we
// print (how to resume a run, the command line a page records) works when
// pasted, whatever spaces, quotes or newlines its paths hold.
#pragma once
#include <string>

namespace unroll {

// The word as it is when it holds only characters no shell treats specially
// (letters, digits, - _ = + . / : , @ %), else in single quotes, with each '
// written as '\''.
inline std::string shell_quote(const std::string& word) {
  const bool plain = !word.empty() && word.find_first_not_of(
                                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789-_=+./:,@%") == std::string::npos;
  if (plain) return word;
  std::string q = "'";
  for (char c : word) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace unroll

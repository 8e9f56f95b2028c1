// unroll/text/words.h — word-level tokens. Every character of the text belongs
// to exactly one token, so joining the tokens gives the text back, layout and
// all:
//   - a word: a maximal run of letters, combining marks, digits and connector
//     punctuation (Unicode categories L*, M*, N*, Pc — so "naïve", "한국어",
//     "x_1" and "2024" are words);
//   - a line end: "\n", or "\r\n" as one token;
//   - a run of one repeated white-space character ("   ", "\t\t");
//   - any other character alone (punctuation, symbols: ",", "'", "(", "€").
// A pre-tokenized corpus (Penn Treebank: words separated by single spaces, one
// sentence a line) is read differently: split_pretokenized drops the spaces
// and line ends and, if asked, ends each line with an end-of-sentence token.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unroll {

inline const std::string kUnk = "<unk>";  // rare and unknown words
inline const std::string kEos = "<eos>";  // end of a sentence (line) in a pre-tokenized corpus

// Tokens of valid UTF-8 text (see above). Throws Error on invalid UTF-8,
// naming `source`.
std::vector<std::string> split_words(std::string_view utf8, const std::string& source);

// Tokens of a pre-tokenized text: the space-separated words of each line,
// plus kEos after every non-empty line when eos is true.
std::vector<std::string> split_pretokenized(std::string_view utf8, bool eos,
                                            const std::string& source);

// Joins tokens back into text: the inverse of split_words. With `spaced`,
// the tokens of a pre-tokenized text: words joined by single spaces, kEos as
// a line end.
std::string join_words(const std::vector<std::string>& tokens, bool spaced = false);

}  // namespace unroll

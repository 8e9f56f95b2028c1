// unroll/inspect/probes.h — properties of a text that a hidden cell might
// track ("probes"), one value per character.
//
// Every probe is causal: its value at character t describes the state after
// reading characters 0..t, which is what the hidden state at step t can know.
// An opening quote is therefore already "inside" and a closing quote already
// "outside"; after the '/' of "/*" the comment has not started yet, after the
// '*' it has.
//
// The code probes follow a small C lexer: quotes inside comments and comment
// markers inside strings do not count, a backslash escapes the next character
// inside strings and character literals, and strings and character literals
// end at a newline (C allows neither to span lines), so an apostrophe in prose
// cannot swallow the rest of the text.
#pragma once
#include <string>
#include <vector>

namespace unroll {

struct Probe {
  std::string name;           // e.g. "double_quote"
  std::string description;    // e.g. "inside double quotes"
  bool binary = true;         // values are 0/1 (else a count, e.g. a depth)
  std::vector<float> values;  // one per character
};

// The built-in probes, in this order:
//   double_quote, single_quote, comment (/* */ and //), paren_depth,
//   bracket_depth, brace_depth, if_block (inside the body of an if, braced or
//   a single statement), line_position (characters since the last newline),
//   indent (leading whitespace of the current line, a tab = 8 columns),
//   word_start (first letter of a word).
std::vector<Probe> builtin_probes(const std::u32string& text);

// A user probe: on for every character inside a match of the regular
// expression `pattern` in RE2 syntax (matched on the UTF-8 text, character by
// character; ^ and $ match at every line). RE2 finds each match in time
// linear in the text for any pattern and never recurses per character, so no
// pattern can crash the program; a pattern that reads far ahead of each of
// many matches would make the scan quadratic, so it stops after max_seconds
// with an Error. Throws Error naming the probe if the pattern is invalid (RE2
// has no back-references or look-around).
Probe regex_probe(const std::string& name, const std::string& pattern, const std::u32string& text,
                  double max_seconds = 10);

}  // namespace unroll

// Probes on hand-written snippets: every value is checked against the state a
// reader has after each character.
#include <gtest/gtest.h>

#include "unroll/core/error.h"
#include "unroll/inspect/probes.h"
#include "unroll/text/utf8.h"

using namespace unroll;

namespace {

const Probe& find(const std::vector<Probe>& ps, const std::string& name) {
  for (const auto& p : ps)
    if (p.name == name) return p;
  throw std::runtime_error("no probe " + name);
}

// The probe's values as a string: '1' where on, '.' where off (binary), or
// the digit (counts below 10).
std::string pattern(const std::string& text, const std::string& name) {
  auto ps = builtin_probes(decode_utf8(text, "test"));
  const Probe& p = find(ps, name);
  std::string s;
  for (float v : p.values) s += v == 0 ? '.' : char('0' + int(v));
  return s;
}

}  // namespace

TEST(Probes, OneValuePerCharacterInEveryProbe) {
  const std::string text = "int x = \"한국어\"; // 주석\n";
  const auto ps = builtin_probes(decode_utf8(text, "t"));
  ASSERT_EQ(ps.size(), 10u);
  for (const auto& p : ps) EXPECT_EQ(p.values.size(), decode_utf8(text, "t").size()) << p.name;
}

TEST(Probes, DoubleQuotesWithEscapes) {
  // The opening quote is already inside, the closing one already outside; an
  // escaped quote does not close the string.
  EXPECT_EQ(pattern(R"(a "b\"c" d)", "double_quote"), "..11111...");
  EXPECT_EQ(pattern(R"(x = "a\\" + "b";)", "double_quote"), "....1111....11..");
}

TEST(Probes, QuotesInsideCommentsAndCommentsInsideStringsDoNotCount) {
  EXPECT_EQ(pattern(R"(/* "x" */ "/*")", "double_quote"), "..........111.");
  EXPECT_EQ(pattern(R"(/* "x" */ "/*")", "comment"), ".1111111......");
  EXPECT_EQ(pattern("s = \"//\"; y", "comment"), "...........");
}

TEST(Probes, BlockAndLineComments) {
  EXPECT_EQ(pattern("a /* b */ c", "comment"), "...11111...");
  EXPECT_EQ(pattern("a // b\nc", "comment"), "...111..");
  EXPECT_EQ(pattern("a / b", "comment"), ".....");
}

TEST(Probes, SingleQuotesEndAtNewlineSoProseApostrophesDoNotLeak) {
  EXPECT_EQ(pattern("c = '\\'';", "single_quote"), "....111..");
  EXPECT_EQ(pattern("don't\n\"a\"", "single_quote"), "...11....");
  EXPECT_EQ(pattern("don't\n\"a\"", "double_quote"), "......11.");
}

TEST(Probes, NestingDepths) {
  EXPECT_EQ(pattern("f(a(b), c)", "paren_depth"), ".11221111.");
  EXPECT_EQ(pattern("x[i[j]]", "bracket_depth"), ".11221.");
  EXPECT_EQ(pattern("{ a { b } }", "brace_depth"), "1111222211.");
  // Brackets inside strings and comments do not count; stray closers do not go below 0.
  EXPECT_EQ(pattern("(\")\" /*)*/ )) (", "paren_depth"), "11111111111...1");
}

TEST(Probes, IfBlocks) {
  EXPECT_EQ(pattern("if (a) { b; }", "if_block"), ".......11111.");
  EXPECT_EQ(pattern("if (a) b; c;", "if_block"), ".......1....");
  EXPECT_EQ(pattern("if (a) { if (b) c; d; } e", "if_block"), ".......111111111111111...");
  // Not an if: a longer identifier, a preprocessor #if, "if" in a comment.
  EXPECT_EQ(pattern("elif (a) { b; }", "if_block"), "...............");
  EXPECT_EQ(pattern("#if X\n{ a; }", "if_block"), "............");
  EXPECT_EQ(pattern("/* if (a) */ { b; }", "if_block"), "...................");
  // A single statement that opens a block ends when that block closes.
  EXPECT_EQ(pattern("if (a) while (b) { c; } d;", "if_block"), ".......111111111111111....");
}

TEST(Probes, LinePositionAndIndent) {
  EXPECT_EQ(pattern("ab\ncde\n", "line_position"), "12.123.");
  EXPECT_EQ(pattern("a\n  b\n\tc", "indent"), "..122.88");
  EXPECT_EQ(pattern("  x y\n", "indent"), "12222.");
}

TEST(Probes, WordStarts) {
  EXPECT_EQ(pattern("To be, don't x1 _y", "word_start"), "1..1...1.....1....");
  EXPECT_EQ(pattern("한국 말", "word_start"), "1..1");
}

TEST(Probes, RegexProbeMarksMatchedCharactersOnUtf8Text) {
  const auto text = decode_utf8("int 한국 = 0; int b;", "t");
  Probe p = regex_probe("ints", "int [^ ]+", text);
  std::string s;
  for (float v : p.values) s += v ? '1' : '.';
  EXPECT_EQ(s, "111111......111111");
  EXPECT_TRUE(p.binary);
  EXPECT_EQ(p.name, "ints");
}

TEST(Probes, InvalidRegexNamesTheProbe) {
  try {
    regex_probe("bad", "(unclosed", decode_utf8("x", "t"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos);
  }
}

// std::regex recursed once per character of a match and overflowed the stack
// on a 30,000-character run; and (a+)+$ backtracked for ever on a long line.
// RE2 does neither: both finish, with the right characters marked.
TEST(Probes, RegexProbeSurvivesLongMatchesAndCatastrophicPatterns) {
  const std::u32string text = std::u32string(30000, U'a') + U"b\n";
  for (const char* pattern : {".*", "[a-z]+", "(a|b)+", "a+b"}) {
    Probe p = regex_probe("x", pattern, text);
    for (size_t i = 0; i < 30001; ++i) ASSERT_EQ(p.values[i], 1.0f) << pattern << " at " << i;
    EXPECT_EQ(p.values[30001], 0.0f) << pattern;  // the newline
  }
  const std::u32string line = std::u32string(5000, U'a') + U"!\n";
  Probe evil = regex_probe("evil", "(a+)+$", line);  // no match: the line ends in '!'
  for (float v : evil.values) ASSERT_EQ(v, 0.0f);
  Probe ends = regex_probe("ends", "(a+)+!$", line);
  EXPECT_EQ(ends.values[0], 1.0f);
  EXPECT_EQ(ends.values[5000], 1.0f);
  EXPECT_EQ(ends.values[5001], 0.0f);
}

TEST(Probes, RegexProbeTakesWholeCharactersAndLineAnchors) {
  const auto text = decode_utf8("é日x\nab日\n", "t");
  std::string s;
  for (float v : regex_probe("cjk", "[é日]", text).values) s += v ? '1' : '.';
  EXPECT_EQ(s, "11....1.");
  s.clear();
  for (float v : regex_probe("first", "^.", text).values) s += v ? '1' : '.';
  EXPECT_EQ(s, "1...1...");
  // Empty matches (x* matches everywhere) mark nothing and do not loop.
  s.clear();
  for (float v : regex_probe("empty", "z*", text).values) s += v ? '1' : '.';
  EXPECT_EQ(s, "........");
}

// Each RE2 search is linear, but a pattern that reads to the end of the line
// after each of many matches is quadratic over the text: bounded in time,
// with an error naming the probe, instead of a hang.
TEST(Probes, RegexProbeThatReadsFarAheadIsBoundedInTime) {
  const std::u32string text(200000, U'a');
  try {
    regex_probe("ahead", "a(.*z)?", text, 0.2);
    FAIL() << "200,000 characters in under 0.2 s: the bound was not exercised";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("probe 'ahead'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--max-chars"), std::string::npos) << e.what();
  }
  // The same pattern on a short text finishes and marks every character.
  for (float v : regex_probe("ahead", "a(.*z)?", std::u32string(100, U'a'), 0.2).values)
    ASSERT_EQ(v, 1.0f);
}

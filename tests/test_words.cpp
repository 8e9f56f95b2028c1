// Word-level tokens (text/words.h) and word vocabularies (Vocab::from_words).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "error_util.h"
#include "unroll/core/error.h"
#include "unroll/text/vocab.h"
#include "unroll/text/words.h"

using namespace unroll;

namespace {

using Tokens = std::vector<std::string>;

}  // namespace

TEST(Words, EveryKindOfToken) {
  // "Hello,  world!\r\n한국어 x_1\t\tnaïve 2024€"
  const std::string text =
      "Hello,  world!\r\n\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 x_1\t\tna\xc3\xafve 2024\xe2\x82\xac";
  const Tokens want = {
      "Hello", ",",   "  ",   "world",        "!", "\r\n", "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
      " ",     "x_1", "\t\t", "na\xc3\xafve", " ", "2024", "\xe2\x82\xac"};
  EXPECT_EQ(split_words(text, "t"), want);
}

TEST(Words, CombiningMarksStayInTheirWord) {
  // "cafe" + U+0301 (combining acute) + "s": one word.
  EXPECT_EQ(split_words("cafe\xcc\x81s ok", "t"), (Tokens{"cafe\xcc\x81s", " ", "ok"}));
}

TEST(Words, ApostrophesAndMixedSpacesSplit) {
  EXPECT_EQ(split_words("don't \t x", "t"), (Tokens{"don", "'", "t", " ", "\t", " ", "x"}));
  EXPECT_EQ(split_words("a\n\nb\r", "t"), (Tokens{"a", "\n", "\n", "b", "\r"}));
}

TEST(Words, RoundTripKeepsTheLayout) {
  for (const std::string& text :
       {std::string("The cat sat.  Then,\tit   left!\n\n  Indented line;\n"),
        std::string("\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94, "
                    "\xec\x84\xb8\xea\xb3\x84!\n\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 "
                    "\xeb\xac\xb8\xec\x9e\xa5."),
        std::string(
            "mixed \xed\x95\x9c\xea\xb8\x80 and ASCII\r\nwith CRLF\r\n\t\ttabs  and   spaces\r\n"),
        std::string("  leading and trailing  "), std::string("x"), std::string("\n")}) {
    const Tokens t = split_words(text, "t");
    EXPECT_EQ(join_words(t), text);
    for (auto& tok : t) EXPECT_FALSE(tok.empty());
  }
  EXPECT_TRUE(split_words("", "t").empty());
}

TEST(Words, InvalidUtf8IsAnErrorThatNamesTheSource) {
  EXPECT_NE(error_of([] { split_words("ok \xff", "words.txt"); }).find("words.txt"),
            std::string::npos);
  EXPECT_NE(error_of([] { split_pretokenized("ok \xff", true, "ptb.txt"); }).find("ptb.txt"),
            std::string::npos);
}

TEST(Words, PretokenizedLinesGetAnEndOfSentence) {
  const std::string ptb = " the cat <unk> sat \n\nN years  later\r\nend";
  EXPECT_EQ(split_pretokenized(ptb, true, "t"),
            (Tokens{"the", "cat", "<unk>", "sat", kEos, "N", "years", "later", kEos, "end", kEos}));
  EXPECT_EQ(split_pretokenized(ptb, false, "t"),
            (Tokens{"the", "cat", "<unk>", "sat", "N", "years", "later", "end"}));
  EXPECT_EQ(join_words(split_pretokenized(ptb, true, "t"), true),
            "the cat <unk> sat\nN years later\nend\n");
}

TEST(WordVocab, FrequentFirstUnkAtZero) {
  const Tokens t = split_words("b a b c b a d", "t");  // b×3, ' '×6, a×2, c, d
  Vocab v = Vocab::from_words(t);
  EXPECT_EQ(v.level(), "word");
  ASSERT_EQ(v.size(), 6);
  EXPECT_EQ(v.token(0), kUnk);
  EXPECT_EQ(v.token(1), " ");
  EXPECT_EQ(v.token(2), "b");
  EXPECT_EQ(v.token(3), "a");
  EXPECT_EQ(v.token(4), "c");  // ties in byte order
  EXPECT_EQ(v.token(5), "d");
}

TEST(WordVocab, MinCountAndMaxSizeSendRareWordsToUnk) {
  const Tokens t = split_words("b a b c b a d", "t");
  Vocab v = Vocab::from_words(t, 2);  // c and d are seen once
  EXPECT_EQ(v.size(), 4);
  size_t unknown = 0;
  std::vector<int32_t> ids = v.encode_words(t, &unknown);
  EXPECT_EQ(unknown, 2u);
  EXPECT_EQ(ids[6], 0);   // c
  EXPECT_EQ(ids[12], 0);  // d
  EXPECT_EQ(v.decode(ids), "b a b <unk> b a <unk>");

  Vocab small = Vocab::from_words(t, 1, 3);  // <unk>, " ", b
  EXPECT_EQ(small.size(), 3);
  EXPECT_EQ(small.decode(small.encode_words(t)), "b <unk> b <unk> b <unk> <unk>");

  // A corpus that already holds <unk> (Penn Treebank) shares the one token.
  Vocab ptb = Vocab::from_words(Tokens{"a", kUnk, "a", kUnk});
  EXPECT_EQ(ptb.size(), 2);
  EXPECT_EQ(ptb.encode_words(Tokens{kUnk, "zebra"}), (std::vector<int32_t>{0, 0}));
}

TEST(WordVocab, BadOptionsAreRejected) {
  const Tokens t = {"a", "b"};
  EXPECT_NE(error_of([&] { Vocab::from_words(t, 0); }).find("at least 1"), std::string::npos);
  EXPECT_NE(error_of([&] { Vocab::from_words(t, 1, 1); }).find("2 or more"), std::string::npos);
  EXPECT_NE(error_of([&] { Vocab::from_words(Tokens{}); }).find("empty"), std::string::npos);
  // Without <unk>, an unknown word is an error that names it.
  Vocab chars = Vocab::from_tokens({"a", "b"}, "word");
  EXPECT_NE(error_of([&] {
              chars.encode_words(Tokens{"a", "zebra"});
            }).find("'zebra'"),
            std::string::npos);
}

TEST(WordVocab, AReusedVocabularyMapsWordsAsBefore) {
  // Fine-tuning: the vocabulary saved with a checkpoint (as JSON) reads a new
  // corpus with the old ids, and the new corpus's own words become <unk>.
  Vocab old = Vocab::from_words(split_words("the cat sat on the mat", "old"));
  Vocab reloaded = Vocab::from_json(nlohmann::json::parse(old.to_json().dump()));
  const Tokens fresh = split_words("the dog sat", "new");
  size_t unknown = 0;
  std::vector<int32_t> ids = reloaded.encode_words(fresh, &unknown);
  EXPECT_EQ(ids, old.encode_words(fresh));
  EXPECT_EQ(unknown, 1u);
  EXPECT_EQ(reloaded.decode(ids), "the <unk> sat");
}

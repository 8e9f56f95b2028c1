// Tests of the text layer: strict UTF-8 decoding with byte offsets in errors,
// file reading errors, the character vocabulary, the contiguous split and the
// time-major truncated-BPTT batch stream.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "error_util.h"
#include "unroll/core/error.h"
#include "unroll/text/corpus.h"
#include "unroll/text/utf8.h"
#include "unroll/text/vocab.h"

using namespace unroll;
namespace fs = std::filesystem;

namespace {

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("unroll_test_text_" + std::to_string(rd()) + "_" +
             std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name, const std::string& bytes) const {
    std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  std::string path(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

}  // namespace

// ---------------------------------------------------------------- UTF-8

TEST(Utf8, RoundTripsAsciiAccentedHangulEmoji) {
  struct Case {
    std::string text;
    std::u32string cps;
  };
  const Case cases[] = {
      {"hello, world\n", U"hello, world\n"},
      {"caf\xc3\xa9 na\xc3\xafve", U"caf\u00e9 na\u00efve"},
      {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", U"\uD55C\uAD6D\uC5B4"},  // 한국어
      {"\xf0\x9f\x98\x80!", U"\U0001F600!"},
      // Boundaries of every sequence length.
      {"\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
       U"\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010FFFF"},
      {"\xed\x9f\xbf\xee\x80\x80", U"\ud7ff\ue000"},  // either side of the surrogates
  };
  for (const auto& c : cases) {
    std::u32string got = decode_utf8(c.text, "t");
    EXPECT_EQ(got, c.cps) << c.text;
    EXPECT_EQ(encode_utf8(got), c.text);
    std::string appended = "x";
    for (char32_t cp : c.cps) append_utf8(appended, cp);
    EXPECT_EQ(appended, "x" + c.text);
  }
  EXPECT_EQ(decode_utf8("\xed\x95\x9c", "t").size(), 1u);
}

TEST(Utf8, EveryInvalidSequenceNamesItsByteOffset) {
  struct Case {
    std::string bytes;
    size_t offset;
    const char* byte;
  };
  const Case cases[] = {
      {"ab\x80", 2, "0x80"},                                    // stray continuation byte
      {"abc\xbf xyz", 3, "0xbf"},                               // stray continuation byte
      {"a\xc0\x80", 1, "0xc0"},                                 // overlong NUL
      {"a\xc1\xbf", 1, "0xc1"},                                 // overlong 2-byte
      {"ab\xe0\x80\x80", 2, "0xe0"},                            // overlong 3-byte
      {"ab\xe0\x9f\xbf", 2, "0xe0"},                            // overlong 3-byte, top of range
      {"abcd\xf0\x80\x80\x80", 4, "0xf0"},                      // overlong 4-byte
      {"abcd\xf0\x8f\xbf\xbf", 4, "0xf0"},                      // overlong 4-byte, top of range
      {"x\xed\xa0\x80", 1, "0xed"},                             // high surrogate U+D800
      {"xy\xed\xbf\xbf", 2, "0xed"},                            // low surrogate U+DFFF
      {"x\xf4\x90\x80\x80", 1, "0xf4"},                         // U+110000
      {"x\xf5\x80\x80\x80", 1, "0xf5"},                         // lead byte beyond U+10FFFF
      {"\xff", 0, "0xff"},                                      // never valid
      {"ok\xfe", 2, "0xfe"},                                    // never valid
      {"hello\xc3", 5, "0xc3"},                                 // truncated at end
      {"hello\xe4\xb8", 5, "0xe4"},                             // truncated at end
      {"hello\xf0\x9f\x98", 5, "0xf0"},                         // truncated at end
      {"hi\xc3 there", 2, "0xc3"},                              // continuation missing mid-text
      {"hi\xe4\xb8z", 2, "0xe4"},                               // continuation missing mid-text
      {"\xc3\xa9\xc3\xa9\xc3\xa9\xe4\xb8\xad\xff", 9, "0xff"},  // offset counts bytes, not chars
  };
  for (const auto& c : cases) {
    std::string msg = error_of([&] { decode_utf8(c.bytes, "data/in.txt"); });
    EXPECT_CONTAINS(msg, "data/in.txt: invalid UTF-8 at byte offset " + std::to_string(c.offset) +
                             " (byte " + c.byte);
    EXPECT_CONTAINS(msg, "iconv");
  }
}

TEST(Utf8, ErrorGivesTheLine) {
  std::string msg = error_of([] { decode_utf8("one\ntwo\nth\xffree", "f.txt"); });
  EXPECT_CONTAINS(msg, "byte offset 10");
  EXPECT_CONTAINS(msg, "line 3");
}

TEST(Utf8, NulByteMeansBinary) {
  std::string bytes("abc\0def", 7);
  std::string msg = error_of([&] { decode_utf8(bytes, "model.bin"); });
  EXPECT_CONTAINS(msg, "model.bin looks like a binary file (NUL byte at offset 3)");
  // Binary detection wins over a later invalid byte.
  std::string bytes2("\x89PNG\r\n\x1a\n\0\0", 10);
  EXPECT_CONTAINS(error_of([&] { decode_utf8(bytes2, "p.png"); }),
                  "binary file (NUL byte at offset 8)");
}

TEST(Utf8, Utf16IsRecognised) {
  std::string le("\xff\xfeh\0i\0", 6);
  EXPECT_CONTAINS(error_of([&] { decode_utf8(le, "w.txt"); }), "w.txt looks like UTF-16");
}

// A byte-order mark is dropped in one place only, at the start of a file
// (read_text_file). Anywhere else it is the character U+FEFF: a vocabulary
// token made of it used to decode to nothing and stop training.
TEST(Utf8, OnlyAFilesLeadingBomIsDropped) {
  EXPECT_EQ(decode_utf8("\xef\xbb\xbfhi", "t"), U"\uFEFFhi");
  EXPECT_EQ(decode_utf8("a\xef\xbb\xbf", "t"), U"a\uFEFF");
  TempDir dir;
  EXPECT_EQ(read_text_file(dir.file("bom.txt", "\xef\xbb\xbfhi\xef\xbb\xbf!")), "hi\xef\xbb\xbf!");
  const std::string only = dir.file("only.txt", "\xef\xbb\xbf");
  EXPECT_CONTAINS(error_of([&] { read_text_file(only); }), "only a byte-order mark");
  // Two files saved with marks, joined by cat: one U+FEFF inside, and a
  // vocabulary holding it encodes the text.
  const std::u32string text = decode_utf8(read_text_file(dir.file("cat.txt",
                                                                  "\xef\xbb\xbf"
                                                                  "ab\n\xef\xbb\xbf"
                                                                  "cd\n")),
                                          "t");
  EXPECT_EQ(text, U"ab\n\uFEFFcd\n");
  const Vocab v = Vocab::from_chars(text);
  EXPECT_EQ(v.size(), 6);
  EXPECT_EQ(v.decode(v.encode_chars(text).data(), text.size()), encode_utf8(text));
  EXPECT_EQ(Vocab::from_json(v.to_json()).size(), 6);
}

TEST(Utf8, DisplayWidthCountsColumnsPerCharacterAsTerminalsDraw) {
  EXPECT_EQ(display_width("x"), 1u);
  EXPECT_EQ(display_width("\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4"), 6u);  // 한국어
  EXPECT_EQ(display_width("\xe6\x97\xa5\xe6\x9c\xac"), 4u);              // 日本
  EXPECT_EQ(display_width("e\xcc\x81"), 1u);                             // e + combining acute
  EXPECT_EQ(display_width("\xf0\x9f\x98\x80"), 2u);                      // 😀
  EXPECT_EQ(display_width("\xe2\x9d\xa4\xef\xb8\x8f"), 2u);              // ❤️ (VS16)
  // man ZWJ woman ZWJ girl: one picture of two columns, not three.
  EXPECT_EQ(
      display_width("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7"),
      2u);
  EXPECT_EQ(display_width("a\xf0\x9f\x98\x80"
                          "b"),
            4u);
  EXPECT_EQ(display_width("\xf0\x9f\x87\xab\xf0\x9f\x87\xb7"),
            2u);  // the French flag: two regional letters
}

TEST(Utf8, EscapeControlsShowsWhatATerminalWouldObey) {
  EXPECT_EQ(escape_controls("a\x1b[2Jb\n\tc"), "a\\x1b[2Jb\n\tc");
  EXPECT_EQ(escape_controls("\r\x07\x7f"), "\\x0d\\x07\\x7f");
  EXPECT_EQ(escape_controls("\xc2\x9b \xed\x95\x9c \xff"), "\\u009b \xed\x95\x9c \\xff");
  // Right-to-left override, line separator.
  EXPECT_EQ(escape_controls("a\xe2\x80\xae"
                            "b\xe2\x80\xa8"
                            "c"),
            "a\\u202e"
            "b\\u2028"
            "c");
}

TEST(Utf8, EncodeRejectsInvalidCodePoints) {
  std::string out;
  EXPECT_CONTAINS(error_of([&] { append_utf8(out, 0xD800); }), "U+D800");
  EXPECT_CONTAINS(error_of([&] { append_utf8(out, 0x110000); }), "U+110000");
  EXPECT_TRUE(out.empty());
}

TEST(ReadTextFile, ReadsBytesAndReportsErrors) {
  TempDir dir;
  std::string bytes = "line one\n\xed\x95\x9c\n";
  EXPECT_EQ(read_text_file(dir.file("ok.txt", bytes)), bytes);

  std::string missing = dir.path("nope.txt");
  EXPECT_CONTAINS(error_of([&] { read_text_file(missing); }),
                  "cannot open '" + missing + "': No such file or directory");

  std::string sub = dir.path("sub");
  fs::create_directory(sub);
  EXPECT_CONTAINS(error_of([&] { read_text_file(sub); }),
                  "'" + sub + "' is a directory, not a text file");

  std::string empty = dir.file("empty.txt", "");
  EXPECT_CONTAINS(error_of([&] { read_text_file(empty); }), "'" + empty + "' is empty");
}

TEST(ReadTextFile, ReadsAFileLargerThanOneBuffer) {
  TempDir dir;
  std::string big(200000, 'a');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>('a' + i % 26);
  EXPECT_EQ(read_text_file(dir.file("big.txt", big)), big);
}

// ---------------------------------------------------------------- Vocab

TEST(Vocab, FromCharsIsSortedAndDistinct) {
  Vocab v = Vocab::from_chars(U"hello \uD55C\U0001F600 hello\n");
  ASSERT_EQ(v.size(), 8);  // \n, ' ', e, h, l, o, 한, 😀
  const char* want[] = {"\n", " ", "e", "h", "l", "o", "\xed\x95\x9c", "\xf0\x9f\x98\x80"};
  for (int i = 0; i < v.size(); ++i) EXPECT_EQ(v.token(i), want[i]) << i;
  EXPECT_EQ(v.level(), "char");
  EXPECT_EQ(v.find(U'l'), 4);
  EXPECT_EQ(v.find(std::string("l")), 4);
  EXPECT_EQ(v.find(char32_t{0xD55C}), 6);
  EXPECT_EQ(v.find(std::string("\xed\x95\x9c")), 6);
  EXPECT_EQ(v.find(U'z'), -1);
  EXPECT_EQ(v.find(std::string("he")), -1);
  EXPECT_CONTAINS(error_of([&] { v.token(8); }), "token id 8");
  EXPECT_CONTAINS(error_of([&] { v.token(-1); }), "token id -1");
  EXPECT_CONTAINS(error_of([] { Vocab::from_chars(U""); }), "empty");
}

TEST(Vocab, EncodeDecodeRoundTrip) {
  std::string text = "Caf\xc3\xa9 \xed\x95\x9c\xea\xb5\xad \xf0\x9f\x98\x80\nhello";
  std::u32string cps = decode_utf8(text, "t");
  Vocab v = Vocab::from_chars(cps);
  std::vector<int32_t> ids = v.encode_chars(cps);
  ASSERT_EQ(ids.size(), cps.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(v.token(ids[i]), encode_utf8(cps.substr(i, 1)));
  EXPECT_EQ(v.decode(ids.data(), ids.size()), text);
  EXPECT_EQ(v.decode(ids), text);
  int32_t bad = v.size();
  EXPECT_CONTAINS(error_of([&] { v.decode(&bad, 1); }), "outside the vocabulary");
}

TEST(Vocab, UnknownCharactersAreNamed) {
  Vocab v = Vocab::from_chars(U"abc");
  std::string msg = error_of([&] { v.encode_chars(U"abZc\uD55CZ\n"); });
  EXPECT_CONTAINS(msg,
                  "characters not in the model's vocabulary: 'Z' (U+005A), '\xed\x95\x9c' "
                  "(U+D55C), '\\n' (U+000A)");
  EXPECT_CONTAINS(msg, "the model knows 3 characters");

  // At most ten are listed.
  std::u32string many;
  for (char32_t c = U'A'; c <= U'L'; ++c) many += c;  // 12 unknown
  msg = error_of([&] { v.encode_chars(many); });
  EXPECT_CONTAINS(msg, "'J' (U+004A)");
  EXPECT_EQ(msg.find("(U+004B)"), std::string::npos) << msg;
  EXPECT_CONTAINS(msg, "and 2 more");
}

TEST(Vocab, EncodeTextAcceptsTheOtherNormalForm) {
  const std::string composed = "caf\xc3\xa9 \xed\x95\x9c";  // "café 한", NFC
  const std::string decomposed = "cafe\xcc\x81 \xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab";  // NFD
  EXPECT_EQ(utf8_nfc(decomposed), composed);
  EXPECT_EQ(utf8_nfd(composed), decomposed);

  // A vocabulary from composed text reads a decomposed prime as composed, and back.
  Vocab nfc = Vocab::from_chars(decode_utf8(composed, "t"));
  std::string used;
  EXPECT_EQ(nfc.encode_text(decomposed, "prime", &used),
            nfc.encode_chars(decode_utf8(composed, "t")));
  EXPECT_EQ(used, composed);
  Vocab nfd = Vocab::from_chars(decode_utf8(decomposed, "t"));
  EXPECT_EQ(nfd.encode_text(composed, "prime", &used),
            nfd.encode_chars(decode_utf8(decomposed, "t")));
  EXPECT_EQ(used, decomposed);
  // Text that encodes as given is left alone.
  nfc.encode_text(composed, "prime", &used);
  EXPECT_EQ(used, composed);
  // One text, two forms: Hangul the vocabulary holds composed next to an é it
  // holds decomposed. No form of the whole text fits; each character's does.
  Vocab mixed = Vocab::from_chars(decode_utf8("cafe\xcc\x81 \xed\x95\x9c\xea\xb5\xad", "t"));
  const std::string typed = "\xed\x95\x9c \xc3\xa9";  // "한 é", both composed
  EXPECT_EQ(mixed.encode_text(typed, "prime", &used).size(), 4u);
  EXPECT_EQ(used, "\xed\x95\x9c e\xcc\x81");
  const std::string typed_nfd = utf8_nfd(typed);  // jamo and e + accent
  EXPECT_EQ(mixed.encode_text(typed_nfd, "prime", &used).size(), 4u);
  EXPECT_EQ(used, "\xed\x95\x9c e\xcc\x81");
  // Characters outside the vocabulary in every form: the usual error, for the text as given.
  EXPECT_CONTAINS(error_of([&] { nfc.encode_text("cafe\xcc\x81!", "prime"); }), "'!' (U+0021)");
}

TEST(Vocab, JsonRoundTrip) {
  Vocab v = Vocab::from_chars(U"zebra \uD55C\U0001F600");
  nlohmann::json j = v.to_json();
  EXPECT_EQ(j["level"], "char");
  ASSERT_TRUE(j["tokens"].is_array());
  EXPECT_EQ(j["tokens"].size(), static_cast<size_t>(v.size()));
  Vocab w = Vocab::from_json(nlohmann::json::parse(j.dump()));
  ASSERT_EQ(w.size(), v.size());
  for (int i = 0; i < v.size(); ++i) EXPECT_EQ(w.token(i), v.token(i));
  EXPECT_EQ(w.find(char32_t{0x1F600}), v.find(char32_t{0x1F600}));

  // Ids follow the stored order, even when it is not sorted.
  Vocab u = Vocab::from_json({{"level", "char"}, {"tokens", {"b", "a"}}});
  EXPECT_EQ(u.find(U'b'), 0);
  EXPECT_EQ(u.find(U'a'), 1);
}

TEST(Vocab, MalformedJsonIsRejected) {
  using nlohmann::json;
  const json bad[] = {
      json::array({"a", "b"}),                               // not an object
      json{{"tokens", {"a"}}},                               // no level
      json{{"level", 3}, {"tokens", {"a"}}},                 // level not a string
      json{{"level", "bytes"}, {"tokens", {"a"}}},           // unknown level
      json{{"level", "char"}},                               // no tokens
      json{{"level", "char"}, {"tokens", "abc"}},            // tokens not an array
      json{{"level", "char"}, {"tokens", json::array()}},    // empty
      json{{"level", "char"}, {"tokens", {"a", 1}}},         // non-string token
      json{{"level", "char"}, {"tokens", {"a", "b", "a"}}},  // duplicate
      json{{"level", "char"}, {"tokens", {"a", ""}}},        // empty token
      json{{"level", "char"}, {"tokens", {"a", "ab"}}},      // two characters at char level
  };
  for (const auto& j : bad) {
    EXPECT_THROW(Vocab::from_json(j), Error) << j.dump();
  }
  EXPECT_CONTAINS(error_of([] {
                    Vocab::from_json({{"level", "char"}, {"tokens", {"a", "b", "a"}}});
                  }),
                  "vocabulary token 2 repeats token 0");
}

// ---------------------------------------------------------------- Split

std::vector<int32_t> iota_ids(int n) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

TEST(Split, SizesAndContiguity) {
  std::vector<int32_t> ids = iota_ids(1000);
  Split s = split_contiguous(ids, 0.9, 0.05);
  EXPECT_EQ(s.train.size(), 900u);
  EXPECT_EQ(s.val.size(), 50u);
  EXPECT_EQ(s.test.size(), 50u);
  std::vector<int32_t> joined = s.train;
  joined.insert(joined.end(), s.val.begin(), s.val.end());
  joined.insert(joined.end(), s.test.begin(), s.test.end());
  EXPECT_EQ(joined, ids);
  EXPECT_EQ(s.val.front(), 900);
  EXPECT_EQ(s.test.front(), 950);

  Split all = split_contiguous(ids, 1.0, 0.0);
  EXPECT_EQ(all.train, ids);
  EXPECT_TRUE(all.val.empty());
  EXPECT_TRUE(all.test.empty());

  Split odd = split_contiguous(iota_ids(11), 0.5, 0.3);  // 5, 3, 3
  EXPECT_EQ(odd.train.size(), 5u);
  EXPECT_EQ(odd.val.size(), 3u);
  EXPECT_EQ(odd.test.size(), 3u);

  Split s2 = split_contiguous(ids, 0.7, 0.3);  // sums to 1 within rounding
  EXPECT_EQ(s2.train.size() + s2.val.size() + s2.test.size(), 1000u);
}

TEST(Split, BadFractionsAreRejected) {
  std::vector<int32_t> ids = iota_ids(10);
  EXPECT_THROW(split_contiguous(ids, 0.0, 0.1), Error);
  EXPECT_THROW(split_contiguous(ids, -0.1, 0.1), Error);
  EXPECT_THROW(split_contiguous(ids, 1.1, 0.0), Error);
  EXPECT_THROW(split_contiguous(ids, 0.5, -0.1), Error);
  EXPECT_THROW(split_contiguous(ids, 0.5, 1.5), Error);
  EXPECT_THROW(split_contiguous(ids, 0.8, 0.3), Error);
  EXPECT_THROW(split_contiguous(ids, std::nan(""), 0.1), Error);
  EXPECT_NO_THROW(split_contiguous(ids, 0.8, 0.2));
}

// ---------------------------------------------------------------- BatchStream

TEST(BatchStream, TimeMajorLayoutByHand) {
  // n = 23, B = 3, T = 2: len = 22 / 3 = 7, streams start at 0, 7, 14;
  // chunks = floor(7 / 2) = 3 (columns 0..5; column 6 is left over).
  std::vector<int32_t> ids = iota_ids(23);
  BatchStream bs(ids, 3, 2, "training text");
  EXPECT_EQ(bs.batch(), 3);
  EXPECT_EQ(bs.seq(), 2);
  EXPECT_EQ(bs.stream_length(), 7);
  ASSERT_EQ(bs.chunks(), 3);
  // Chunk 1: columns 2, 3. Index t*B + b.
  const int32_t want_in[3][6] = {
      {0, 7, 14, 1, 8, 15},    // k=0: t=0 -> cols 0; t=1 -> col 1
      {2, 9, 16, 3, 10, 17},   // k=1
      {4, 11, 18, 5, 12, 19},  // k=2
  };
  for (int k = 0; k < 3; ++k) {
    int32_t in[6], tg[6];
    bs.get(k, in, tg);
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(in[i], want_in[k][i]) << "chunk " << k << " index " << i;
      EXPECT_EQ(tg[i], want_in[k][i] + 1) << "chunk " << k << " index " << i;
    }
  }
  int32_t in[6], tg[6];
  EXPECT_THROW(bs.get(3, in, tg), Error);
  EXPECT_THROW(bs.get(-1, in, tg), Error);
}

TEST(BatchStream, GeneralLayoutAndLastTargetInsideStream) {
  for (int n : {2, 10, 31, 64, 65, 100, 257}) {
    for (int B : {1, 2, 3, 5}) {
      for (int T : {1, 2, 4, 7}) {
        if (n < B * T + 1) continue;
        std::vector<int32_t> ids = iota_ids(n);
        BatchStream bs(ids, B, T, "text");
        const int len = (n - 1) / B;
        ASSERT_EQ(bs.chunks(), len / T) << n << " " << B << " " << T;
        std::vector<int32_t> in(T * B), tg(T * B);
        for (int k = 0; k < bs.chunks(); ++k) {
          bs.get(k, in.data(), tg.data());
          for (int t = 0; t < T; ++t)
            for (int b = 0; b < B; ++b) {
              ASSERT_EQ(in[t * B + b], b * len + k * T + t);
              ASSERT_EQ(tg[t * B + b], in[t * B + b] + 1);
              // A target never crosses into the next stream's inputs.
              ASSERT_LE(tg[t * B + b], (b + 1) * len);
            }
        }
      }
    }
  }
}

TEST(BatchStream, ExactFitHasOneChunk) {
  BatchStream bs(iota_ids(3 * 4 + 1), 3, 4, "text");
  EXPECT_EQ(bs.chunks(), 1);
  EXPECT_THROW(BatchStream(iota_ids(3 * 4), 3, 4, "text"), Error);
}

TEST(BatchStream, TooShortSuggestsSizesThatWork) {
  std::vector<int32_t> ids = iota_ids(100);
  std::string msg = error_of([&] { BatchStream(ids, 16, 32, "training text"); });
  EXPECT_CONTAINS(msg, "training text");
  EXPECT_CONTAINS(msg, "100 tokens");
  EXPECT_CONTAINS(msg, "513");
  EXPECT_CONTAINS(msg, "--batch 3");  // 99 / 32
  EXPECT_CONTAINS(msg, "--seq 6");    // 99 / 16
  EXPECT_NO_THROW(BatchStream(ids, 3, 32, "training text"));
  EXPECT_NO_THROW(BatchStream(ids, 16, 6, "training text"));
  EXPECT_THROW(BatchStream(ids, 4, 32, "training text"), Error);  // the suggestion is the largest
  EXPECT_THROW(BatchStream(ids, 16, 7, "training text"), Error);

  // Parse whatever is suggested and check it fits, over many shapes.
  auto suggested = [](const std::string& m, const std::string& flag) -> int {
    size_t p = m.find(flag + " ");
    return p == std::string::npos ? 0 : std::stoi(m.substr(p + flag.size() + 1));
  };
  for (int n : {1, 2, 3, 5, 17, 50, 99}) {
    for (int B : {1, 4, 16, 64}) {
      for (int T : {1, 8, 64, 200}) {
        if (n >= B * T + 1) continue;
        std::vector<int32_t> v = iota_ids(n);
        std::string m = error_of([&] { BatchStream(v, B, T, "validation text"); });
        EXPECT_CONTAINS(m, "validation text");
        int sb = suggested(m, "--batch"), st = suggested(m, "--seq");
        if (n < 2) {
          EXPECT_EQ(sb + st, 0) << m;
          continue;
        }
        EXPECT_GT(sb + st, 0) << m;
        bool both = m.find("--batch " + std::to_string(sb) + " --seq") != std::string::npos;
        if (both) {
          EXPECT_NO_THROW(BatchStream(v, sb, st, "t")) << m;
        } else {
          if (sb) {
            EXPECT_NO_THROW(BatchStream(v, sb, T, "t")) << m;
          }
          if (st) {
            EXPECT_NO_THROW(BatchStream(v, B, st, "t")) << m;
          }
        }
      }
    }
  }
}

TEST(BatchStream, NonPositiveSizesAreRejected) {
  std::vector<int32_t> ids = iota_ids(100);
  EXPECT_THROW(BatchStream(ids, 0, 4, "t"), Error);
  EXPECT_THROW(BatchStream(ids, 4, 0, "t"), Error);
  EXPECT_THROW(BatchStream(ids, -1, 4, "t"), Error);
}

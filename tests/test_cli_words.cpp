// Word-level language models end to end: train, sample, eval, info, resume,
// pre-tokenized corpora with separate validation files, and a reused
// vocabulary. (The tokenizer itself is tested in test_words.cpp.)
#include <gtest/gtest.h>

#include <regex>

#include "cli_util.h"

using namespace clitest;

namespace {

const std::vector<std::string> kWordTiny = {
    "--level", "word", "--embed", "16", "--hidden",       "32", "--layers",  "1",
    "--batch", "4",    "--seq",   "8",  "--sample-every", "0",  "--threads", "1"};

std::string repeat(const std::string& s, int n) {
  std::string r;
  for (int i = 0; i < n; ++i) r += s;
  return r;
}

}  // namespace

TEST_F(CliTest, WordModelTrainsSamplesEvaluatesAndResumes) {
  const std::string text = file("en.txt", english_text(200));
  const fs::path out = dir_ / "run";
  Proc t = unroll(cat(
      cat({"train", text, "--out", out.string(), "--steps", "30", "--eval-every", "15"}, kWordTiny),
      {}));
  ASSERT_EQ(t.code, 0) << describe(t);
  EXPECT_TRUE(std::regex_search(t.out, std::regex("on [0-9]+ tokens, vocabulary [0-9]+")))
      << describe(t);
  EXPECT_TRUE(std::regex_search(
      t.out, std::regex("eval step 30: val loss [0-9.]+ nats, perplexity [0-9.]+")))
      << describe(t);

  Proc s = unroll({"sample", (out / "latest.safetensors").string(), "--prime", "The cat", "-n",
                   "30", "--seed", "1", "--threads", "1"});
  ASSERT_EQ(s.code, 0) << describe(s);
  EXPECT_EQ(s.out.rfind("The cat", 0), 0u) << describe(s);
  EXPECT_GT(s.out.size(), std::string("The cat\n").size() + 20)
      << "30 tokens are more than 20 bytes\n"
      << describe(s);
  EXPECT_TRUE(decode_utf8(s.out)) << describe(s);

  Proc e = unroll({"eval", (out / "latest.safetensors").string(), text, "--threads", "1"});
  ASSERT_EQ(e.code, 0) << describe(e);
  double ppl = 0, loss = 0;
  ASSERT_TRUE(eval_value(e.out, "perplexity", &ppl) && eval_value(e.out, "loss", &loss))
      << describe(e);
  EXPECT_NEAR(ppl, std::exp(loss), 0.01 * ppl) << describe(e);
  EXPECT_TRUE(contains(e.out, "bits/token")) << describe(e);

  Proc i = unroll({"info", (out / "latest.safetensors").string()});
  ASSERT_EQ(i.code, 0) << describe(i);
  EXPECT_TRUE(contains(i.out, "word level")) << describe(i);

  // Resume reads the text at the word level again.
  Proc r = unroll({"train", "--resume", out.string(), "--steps", "40"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "perplexity")) << describe(r);
  Proc i2 = unroll({"info", (out / "latest.safetensors").string()});
  EXPECT_TRUE(std::regex_search(i2.out, std::regex("step\\s+40\\b"))) << describe(i2);
}

TEST_F(CliTest, WordLstmOverfitsAParagraph) {
  const std::string para =
      "Once upon a time, a small fox lived near the river. Every morning it ran to the water, "
      "drank, and watched the fish. One day a heron came; the fox and the heron became friends.\n";
  const std::string text = file("para.txt", repeat(para, 30));
  const fs::path out = dir_ / "run";
  Proc t = unroll({"train",          text,  "--out",     out.string(), "--level",      "word",
                   "--layers",       "2",   "--embed",   "32",         "--hidden",     "64",
                   "--batch",        "4",   "--seq",     "16",         "--lr",         "0.01",
                   "--steps",        "600", "--split",   "1,0",        "--eval-every", "0",
                   "--sample-every", "0",   "--threads", "1"});
  ASSERT_EQ(t.code, 0) << describe(t);
  // One stream from the start, so only the first few words are uncertain.
  Proc e = unroll({"eval", (out / "latest.safetensors").string(), text, "--batch", "1", "--seq",
                   "50", "--threads", "1"});
  ASSERT_EQ(e.code, 0) << describe(e);
  double loss = 99;
  ASSERT_TRUE(eval_value(e.out, "loss", &loss)) << describe(e);
  EXPECT_LT(loss, 0.2) << "a 2-layer word LSTM should memorise a repeated paragraph\n"
                       << describe(e);
  Proc s = unroll({"sample", (out / "latest.safetensors").string(), "--prime", "Once upon", "-n",
                   "20", "--greedy", "--threads", "1"});
  ASSERT_EQ(s.code, 0) << describe(s);
  EXPECT_EQ(s.out.rfind("Once upon a time, a small fox lived", 0), 0u) << describe(s);
}

TEST_F(CliTest, PretokenizedCorpusWithItsOwnValidationFile) {
  const std::string lines = "the cat sat on the mat\nthe dog sat on the <unk>\na cat and a dog\n";
  const std::string train = file("ptb.train.txt", repeat(lines, 40));
  const std::string valid = file("ptb.valid.txt", repeat("the dog sat on the mat\n", 5));
  const std::string test = file("ptb.test.txt", "a bird sat on the cat\n");
  const fs::path out = dir_ / "run";
  Proc t = unroll(cat({"train",
                       train,
                       "--out",
                       out.string(),
                       "--pretokenized",
                       "--val",
                       valid,
                       "--test",
                       test,
                       "--steps",
                       "40",
                       "--eval-every",
                       "20",
                       "--embed",
                       "16",
                       "--hidden",
                       "32",
                       "--layers",
                       "1",
                       "--batch",
                       "4",
                       "--seq",
                       "8",
                       "--sample-every",
                       "0",
                       "--threads",
                       "1"},
                      {}));
  ASSERT_EQ(t.code, 0) << describe(t);
  // All of the training file trains: 40 × (6 + 6 + 5 words + 3 <eos>) tokens.
  EXPECT_TRUE(contains(t.out, "on 800 tokens")) << describe(t);
  EXPECT_TRUE(std::regex_search(
      t.out, std::regex("eval step 40: val loss [0-9.]+ nats, perplexity [0-9.]+, "
                        "test perplexity [0-9.]+")))
      << describe(t);

  Proc s = unroll({"sample", (out / "latest.safetensors").string(), "-n", "60", "--seed", "3",
                   "--threads", "1"});
  ASSERT_EQ(s.code, 0) << describe(s);
  for (const std::string& line : split_lines(s.out)) {
    EXPECT_EQ(line.find("  "), std::string::npos) << "words are spaced by one space\n"
                                                  << describe(s);
    EXPECT_TRUE(line.empty() || (line.front() != ' ' && line.back() != ' ')) << describe(s);
    EXPECT_EQ(line.find("<eos>"), std::string::npos) << "<eos> should print as a line end\n"
                                                     << describe(s);
  }

  // "bird" is not in the vocabulary: read as <unk>, and eval says so.
  Proc e = unroll({"eval", (out / "latest.safetensors").string(), test, "--threads", "1"});
  ASSERT_EQ(e.code, 0) << describe(e);
  EXPECT_TRUE(contains(e.err, "1 of 7 tokens")) << describe(e);
}

TEST_F(CliTest, VocabFromACheckpointMapsWordsAsItDoes) {
  const std::string a = file("a.txt", repeat("the cat sat on the mat.\n", 40));
  const std::string b = file("b.txt", repeat("the bird sat on the cat.\n", 40));
  Proc ta = unroll(cat({"train", a, "--out", (dir_ / "a").string(), "--steps", "10"}, kWordTiny));
  ASSERT_EQ(ta.code, 0) << describe(ta);
  Proc tb = unroll({"train",          b,
                    "--out",          (dir_ / "b").string(),
                    "--vocab-from",   (dir_ / "a" / "latest.safetensors").string(),
                    "--steps",        "10",
                    "--embed",        "16",
                    "--hidden",       "32",
                    "--layers",       "1",
                    "--batch",        "4",
                    "--seq",          "8",
                    "--sample-every", "0",
                    "--threads",      "1"});
  ASSERT_EQ(tb.code, 0) << describe(tb);
  // 40 "bird"s are not in a's vocabulary.
  EXPECT_TRUE(contains(tb.out, "40 of 520 tokens are outside the vocabulary")) << describe(tb);
  std::smatch ma, mb;
  Proc ia = unroll({"info", (dir_ / "a" / "latest.safetensors").string()});
  Proc ib = unroll({"info", (dir_ / "b" / "latest.safetensors").string()});
  ASSERT_TRUE(std::regex_search(ia.out, ma, std::regex("vocabulary\\s+([0-9]+)"))) << describe(ia);
  ASSERT_TRUE(std::regex_search(ib.out, mb, std::regex("vocabulary\\s+([0-9]+)"))) << describe(ib);
  EXPECT_EQ(ma[1], mb[1]);
  // The level comes with the vocabulary.
  Proc bad = unroll({"train", b, "--out", (dir_ / "c").string(), "--vocab-from",
                     (dir_ / "a" / "latest.safetensors").string(), "--level", "char"});
  expect_clean_error(bad, {"--level", "--vocab-from"}, dir_ / "c");
}

TEST_F(CliTest, ValTakesOneFileAndLeavesTheTrainingFiles) {
  const std::string text = file("en.txt", english_text(300));
  const std::string v1 = file("v1.txt", english_text(20, 3)),
                    v2 = file("v2.txt", english_text(20, 4));
  // --val before the training file must not swallow it; repeat --val for more files.
  Proc t = unroll(
      cat({"train", "--val", v1, "--val", v2, text, "--out", (dir_ / "run").string()}, kTiny));
  ASSERT_EQ(t.code, 0) << describe(t);
  Proc i = unroll({"info", "--json", (dir_ / "run" / "latest.safetensors").string()});
  EXPECT_TRUE(contains(i.out, "v1.txt") && contains(i.out, "v2.txt")) << describe(i);
}

TEST_F(CliTest, WordOptionsOnCharactersAreRejected) {
  const std::string text = file("en.txt", english_text(50));
  Proc r = unroll(
      {"train", text, "--out", (dir_ / "run").string(), "--level", "char", "--min-count", "2"});
  expect_clean_error(r, {"--level word"}, dir_ / "run");
}

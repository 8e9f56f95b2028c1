// Tests on the project's shared data sets (../shared/data). They FAIL, not
// skip, when the data is missing: CI must have it beside the repository.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "cli_util.h"
#include "unroll/text/utf8.h"
#include "unroll/text/vocab.h"
#include "unroll/text/words.h"

using namespace unroll;

namespace {

using namespace clitest;

// A fresh temporary folder, removed with everything in it at the end of the test.
struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "_XXXXXX")).string();
    if (::mkdtemp(tmpl.data())) dir = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

std::string shared(const std::string& rel) {
  const std::string p = std::string(UNROLL_SHARED_DATA) + "/" + rel;
  if (!std::filesystem::exists(p))
    ADD_FAILURE() << "the shared data set is missing: looked for " << p
                  << " (../shared/data must sit beside the repository; see its SOURCES.md)";
  return p;
}

TEST(SharedData, TinyShakespeareDecodesTo65Characters) {
  const std::string p = shared("tinyshakespeare/input.txt");
  ASSERT_TRUE(std::filesystem::exists(p));
  std::u32string text = unroll::decode_utf8(read_text_file(p), p);
  EXPECT_EQ(text.size(), 1115394u);  // all ASCII: one code point per byte (SOURCES.md)
  EXPECT_EQ(Vocab::from_chars(text).size(), 65);
}

TEST(SharedData, CliTrainsOnTinyShakespeare) {
  const fs::path data = fs::path(UNROLL_SHARED_DATA) / "tinyshakespeare" / "input.txt";
  ASSERT_TRUE(fs::is_regular_file(data)) << "../shared/data is missing: looked for " << data
                                         << " (UNROLL_SHARED_DATA=" << UNROLL_SHARED_DATA << ")";
  const TempDir tmp("unroll_cli");
  ASSERT_FALSE(tmp.dir.empty()) << "cannot make a temporary folder";
  const fs::path& dir = tmp.dir;
  Proc r = run_unroll({"train",          data.string(),
                       "--out",          (dir / "run").string(),
                       "--hidden",       "32",
                       "--layers",       "1",
                       "--batch",        "8",
                       "--seq",          "16",
                       "--lr",           "0.005",
                       "--steps",        "80",
                       "--eval-every",   "80",
                       "--sample-every", "0",
                       "--threads",      "1"},
                      dir, dir);
  std::smatch m;
  const bool has_eval =
      std::regex_search(r.out, m, std::regex("eval step 80: val loss ([0-9.]+) nats"));
  EXPECT_EQ(r.code, 0) << describe(r);
  ASSERT_TRUE(has_eval) << describe(r);
  const double val = std::stod(m[1]);
  EXPECT_LT(val, std::log(65.0)) << describe(r);
  EXPECT_TRUE(r.out.find("vocabulary 65") != std::string::npos) << describe(r);
}

// A short word-level run on the first part of Penn Treebank beats the
// unigram model of the same data: it has learned something about context.
TEST(SharedData, PtbSmokeRunBeatsTheUnigramPerplexity) {
  const fs::path ptb = fs::path(UNROLL_SHARED_DATA) / "ptb";
  ASSERT_TRUE(fs::is_regular_file(ptb / "ptb.train.txt") &&
              fs::is_regular_file(ptb / "ptb.valid.txt"))
      << "../shared/data/ptb is missing: looked in " << ptb;
  const TempDir tmp("unroll_ptb");
  ASSERT_FALSE(tmp.dir.empty()) << "cannot make a temporary folder";
  const fs::path& dir = tmp.dir;
  // The first 3,000 lines train, the first 300 of the validation file validate.
  auto head_lines = [](const fs::path& from, const fs::path& to, int n) {
    std::istringstream in(read_text_file(from.string()));
    std::string line, out;
    for (int i = 0; i < n && std::getline(in, line); ++i) out += line + "\n";
    write_file(to, out);
  };
  head_lines(ptb / "ptb.train.txt", dir / "train.txt", 3000);
  head_lines(ptb / "ptb.valid.txt", dir / "valid.txt", 300);

  // The unigram model of the training part (with <unk> for unseen words, as
  // the network sees them), measured on the validation part.
  const Vocab vocab = Vocab::from_words(
      split_pretokenized(read_text_file((dir / "train.txt").string()), true, "t"));
  std::vector<double> count(vocab.size(), 0.0);
  for (int32_t id : vocab.encode_words(
           split_pretokenized(read_text_file((dir / "train.txt").string()), true, "t")))
    count[id] += 1;
  double total = 0;
  for (double& c : count) total += (c += 0.5);  // light smoothing so no word has probability 0
  const std::vector<int32_t> val = vocab.encode_words(
      split_pretokenized(read_text_file((dir / "valid.txt").string()), true, "v"));
  double nll = 0;
  for (int32_t id : val) nll -= std::log(count[id] / total);
  const double unigram_ppl = std::exp(nll / double(val.size()));

  Proc r = run_unroll({"train",
                       (dir / "train.txt").string(),
                       "--val",
                       (dir / "valid.txt").string(),
                       "--pretokenized",
                       "--out",
                       (dir / "run").string(),
                       "--embed",
                       "64",
                       "--hidden",
                       "64",
                       "--layers",
                       "1",
                       "--batch",
                       "20",
                       "--seq",
                       "20",
                       "--steps",
                       "300",
                       "--eval-every",
                       "300",
                       "--sample-every",
                       "0",
                       "--threads",
                       "1"},
                      dir, dir, 600);
  ASSERT_EQ(r.code, 0) << describe(r);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.out, m, std::regex("eval step 300: val loss [0-9.]+ nats, perplexity ([0-9.]+)")))
      << describe(r);
  const double ppl = std::stod(m[1]);
  EXPECT_LT(ppl, unigram_ppl) << "unigram perplexity " << unigram_ppl << "\n" << describe(r);
  std::cout << "PTB smoke run: validation perplexity " << ppl << ", unigram " << unigram_ppl
            << "\n";
}

}  // namespace

// Tests on the project's shared data sets (../shared/data). They FAIL, not
// skip, when the data is missing: CI must have it beside the repository.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_util.h"
#include "unroll/text/utf8.h"
#include "unroll/text/vocab.h"

using namespace unroll;

namespace {

using namespace clitest;

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
  std::string tmpl = (fs::temp_directory_path() / "unroll_cli_XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
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

}  // namespace

// Tests on the project's shared data sets (../shared/data). They FAIL, not
// skip, when the data is missing: CI must have it beside the repository.
#include <gtest/gtest.h>

#include <filesystem>

#include "unroll/text/utf8.h"
#include "unroll/text/vocab.h"

using namespace unroll;

namespace {

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
  std::u32string text = decode_utf8(read_text_file(p), p);
  EXPECT_EQ(text.size(), 1115394u);  // all ASCII: one code point per byte (SOURCES.md)
  EXPECT_EQ(Vocab::from_chars(text).size(), 65);
}

}  // namespace

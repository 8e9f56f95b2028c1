// Helpers for the tests of the HTML pages (inspect/page.h): a string that
// would run as script if a page wrote it as markup, and counting.
#pragma once

#include <string>

namespace pagetest {

const std::string kHostile = "<script>alert(1)</script>";

// Occurrences of needle in hay (overlapping ones too).
inline size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace pagetest

// unroll/core/error.h — the one exception type for user-facing errors.
// Its message says what went wrong, where, and what to do; the CLI prints it
// on one line and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace unroll {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Throws Error(msg) when cond is false. For checks of user input, never assert().
inline void require(bool cond, const std::string& msg) {
  if (!cond) throw Error(msg);
}

}  // namespace unroll

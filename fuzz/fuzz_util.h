// What the fuzz targets share.
#pragma once
#include "unroll/core/error.h"

namespace fuzz {

// Runs f; an unroll::Error is an accepted outcome (the input was refused
// with a message), anything else propagates to libFuzzer as a failure.
template <class F>
void returns_or_errs(F f) {
  try {
    f();
  } catch (const unroll::Error&) {
  }
}

}  // namespace fuzz

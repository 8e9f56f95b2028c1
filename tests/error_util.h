// The message of an expected unroll::Error, for tests of error messages.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "unroll/core/error.h"

// The message of the Error thrown by f, or "" (and a test failure) if none is thrown.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const unroll::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-unroll exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected an unroll::Error";
  return "";
}

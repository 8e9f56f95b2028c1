// unroll/core/json.h — numbers read from JSON that a file supplies (checkpoint
// metadata, run records). nlohmann's get<int>() of 1e100 is undefined
// behaviour and of 2^32 + 2 quietly gives 2; these read a number only when it
// fits the target type exactly, and otherwise throw Error naming the field.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>

#include "unroll/core/error.h"

namespace unroll {

// v as a T: integer types take whole numbers in their range (written as
// integers or as floats like 3.0); float and double take any number in range.
template <class T, class Json>
T json_number(const Json& v, const std::string& field) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
  auto bad = [&](const char* why) {
    std::string got = v.dump();
    if (got.size() > 40) got = got.substr(0, 40) + "...";
    return Error("'" + field + "' " + why + " (got " + got + ")");
  };
  if (!v.is_number()) throw bad("is not a number");
  if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.template get<uint64_t>();
      if (!std::in_range<T>(u)) throw bad("is out of range");
      return T(u);
    }
    if (v.is_number_integer()) {
      const int64_t i = v.template get<int64_t>();
      if (!std::in_range<T>(i)) throw bad("is out of range");
      return T(i);
    }
    const double d = v.template get<double>();
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != std::trunc(d))
      throw bad("is not a whole number in range");
    if (!std::in_range<T>(int64_t(d))) throw bad("is out of range");
    return T(d);
  } else {
    const double d = v.template get<double>();
    if (!(std::fabs(d) <= double(std::numeric_limits<T>::max()))) throw bad("is out of range");
    return T(d);
  }
}

// The number j[key]; Error if it is absent.
template <class T, class Json>
T json_field(const Json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key)) throw Error("'" + key + "' is missing");
  return json_number<T>(j[key], key);
}

// The number j[key], or `fallback` if it is absent or null.
template <class T, class Json>
T json_field(const Json& j, const std::string& key, T fallback) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return json_number<T>(j[key], key);
}

}  // namespace unroll

// What the fuzz targets share.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

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

// The readers take a path, as users give them one: each input goes to one file in
// /dev/shm (memory) per target and process, rewritten for every input.
inline const std::string& scratch_file(const std::string& target, const uint8_t* data,
                                       size_t size) {
  static const std::string path =
      "/dev/shm/unroll_fuzz_" + target + "_" + std::to_string(::getpid()) + ".safetensors";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace fuzz

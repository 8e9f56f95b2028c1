// unroll/core/hash.h — FNV-1a 64-bit hashing: checkpoint checksums and the
// content hash that lets a resumed run recognise its training files.
#pragma once
#include <cstddef>
#include <cstdint>

namespace unroll {

// FNV-1a 64 of n bytes; pass a previous result as h to continue a running hash.
inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace unroll

// unroll/core/buffer.h — plain row-major float/double buffers, 64-byte aligned
// so AVX-512 loads never straddle a cache line.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace unroll {

template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete (p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const {
    return true;
  }
};

// A contiguous buffer; shapes live with whoever owns it (comments name them).
template <class T>
using Buffer = std::vector<T, AlignedAllocator<T>>;

// Grows b to at least n elements (never shrinks, so steady state allocates nothing).
template <class T>
inline T* ensure(Buffer<T>& b, std::size_t n) {
  if (b.size() < n) {
    b.reserve(n);  // exactly n: resize alone may reserve up to twice that
    b.resize(n);
  }
  return b.data();
}

}  // namespace unroll

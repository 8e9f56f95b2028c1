// unroll/train/safetensors.h — checkpoint files in the safetensors format: named
// little-endian tensors plus string metadata. Files are written atomically (temp file,
// fsync, rename), carry an FNV-1a 64 checksum of their data section, and are validated
// completely before anything large is allocated, so a truncated or corrupt file gives an
// Error that names it, never a crash.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON (padded with spaces so the
// data starts at a multiple of 8), then the tensors packed back to back. Python's
// `safetensors` library reads what save_safetensors writes.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "unroll/core/hash.h"

namespace unroll {

enum class DType { F32, F64, I32, I64, U64, U8, F16, BF16 };

size_t dtype_size(DType t);               // bytes per element
std::string dtype_name(DType t);          // "F32", "F64", ... as written in the header
DType parse_dtype(const std::string& s);  // Error lists the accepted names

// The DType that stores a C++ element type: DTypeOf<float>::value == DType::F32.
template <class T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::F32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::F64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::I32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::I64;
};
template <>
struct DTypeOf<uint64_t> {
  static constexpr DType value = DType::U64;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::U8;
};

// "[2, 5]"; "[]" for a scalar.
std::string shape_str(const std::vector<int64_t>& shape);

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major; {} is a scalar (one element)
  std::vector<uint8_t> bytes;  // little-endian, numel(shape) * dtype_size(dtype) of them
};

struct SafeTensors {
  std::map<std::string, std::string> metadata;
  std::vector<TensorEntry> tensors;  // in file order (by data offset) after a load
  std::string source;                // the file it was loaded from; "" if built in memory

  // Error naming the missing tensor and the file (and the tensors that are there).
  const TensorEntry& at(const std::string& name) const;
  const TensorEntry* find(const std::string& name) const;  // nullptr if absent
  // The tensor, after checking its dtype and (unless expected_shape is empty) its shape;
  // Error says what was expected and what was found.
  const TensorEntry& expect(const std::string& name, DType dtype,
                            const std::vector<int64_t>& expected_shape = {}) const;

  // Appends a tensor, copying numel(shape) elements of dtype from data (native byte order).
  // Error on an empty, reserved ("__metadata__") or duplicate name or a negative dim.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data);

  template <class T>
  void add_as(const std::string& name, std::vector<int64_t> shape, const T* data) {
    add(name, DTypeOf<T>::value, std::move(shape), data);
  }
  // The elements of a tensor of type T; expected_shape empty = any shape.
  template <class T>
  std::vector<T> get_as(const std::string& name,
                        const std::vector<int64_t>& expected_shape = {}) const {
    const TensorEntry& e = expect(name, DTypeOf<T>::value, expected_shape);
    std::vector<T> out(e.bytes.size() / sizeof(T));
    if (!out.empty()) std::memcpy(out.data(), e.bytes.data(), e.bytes.size());
    if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
      for (T& v : out) {
        auto* p = reinterpret_cast<uint8_t*>(&v);
        for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(p[i], p[sizeof(T) - 1 - i]);
      }
    }
    return out;
  }

  void add_f32(const std::string& n, std::vector<int64_t> s, const float* d) { add_as(n, s, d); }
  void add_f64(const std::string& n, std::vector<int64_t> s, const double* d) { add_as(n, s, d); }
  void add_i32(const std::string& n, std::vector<int64_t> s, const int32_t* d) { add_as(n, s, d); }
  void add_i64(const std::string& n, std::vector<int64_t> s, const int64_t* d) { add_as(n, s, d); }
  void add_u64(const std::string& n, std::vector<int64_t> s, const uint64_t* d) { add_as(n, s, d); }
  void add_u8(const std::string& n, std::vector<int64_t> s, const uint8_t* d) { add_as(n, s, d); }

  std::vector<float> get_f32(const std::string& n, const std::vector<int64_t>& s = {}) const {
    return get_as<float>(n, s);
  }
  std::vector<double> get_f64(const std::string& n, const std::vector<int64_t>& s = {}) const {
    return get_as<double>(n, s);
  }
  std::vector<int32_t> get_i32(const std::string& n, const std::vector<int64_t>& s = {}) const {
    return get_as<int32_t>(n, s);
  }
  std::vector<int64_t> get_i64(const std::string& n, const std::vector<int64_t>& s = {}) const {
    return get_as<int64_t>(n, s);
  }
  std::vector<uint64_t> get_u64(const std::string& n, const std::vector<int64_t>& s = {}) const {
    return get_as<uint64_t>(n, s);
  }
  std::vector<uint8_t> get_u8(const std::string& n, const std::vector<int64_t>& s = {}) const {
    return get_as<uint8_t>(n, s);
  }
};

// The elements of a floating-point tensor (F32, F64, F16 or BF16) as floats: F16 and BF16
// exactly, F64 rounded to nearest. Error naming the tensor for any other dtype.
std::vector<float> floats_of(const TensorEntry& e);

// Checksums use fnv1a64 from core/hash.h.

// The metadata key under which save_safetensors stores the checksum of the data section
// (16 lowercase hex digits of its FNV-1a 64).
inline constexpr const char* kChecksumKey = "unroll.checksum";

// Writes st to path atomically: to PATH.tmp.<pid> in the same folder, then fsync, rename
// over path and fsync the folder. Sets metadata[kChecksumKey] in the file (overwriting any
// given value). On failure removes the temp file, leaves any previous file at path
// untouched and throws Error("cannot write checkpoint 'PATH': <reason>").
void save_safetensors(const std::string& path, const SafeTensors& st);

// Reads and validates a safetensors file: the header is checked in full (JSON, dtypes,
// shapes, offsets packed exactly over the data section) before tensor memory is
// allocated, and the checksum is verified when present. Errors name the file and what is
// wrong. The returned metadata includes the checksum entry if the file has one.
SafeTensors load_safetensors(const std::string& path);

}  // namespace unroll

// Safetensors reader/writer; see unroll/train/safetensors.h for the format and guarantees.
#include "unroll/train/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "unroll/core/error.h"
#include "unroll/core/file.h"

namespace unroll {

namespace {

constexpr uint64_t kMaxHeader = 100'000'000;  // the limit Python's safetensors enforces too
const char* const kMetadataKey = "__metadata__";

// Byte-reverses each element in place when the host is big-endian (file order is little).
void to_from_little(uint8_t* p, size_t nbytes, size_t elem) {
  if constexpr (std::endian::native == std::endian::big) {
    if (elem > 1)
      for (size_t off = 0; off + elem <= nbytes; off += elem) std::reverse(p + off, p + off + elem);
  } else {
    (void)p, (void)nbytes, (void)elem;
  }
}

// numel(shape) * dtype_size, or false on a negative dim or overflow of uint64.
bool byte_size(DType t, const std::vector<int64_t>& shape, uint64_t* out) {
  uint64_t n = dtype_size(t);
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The header's part of the checksum: FNV-1a 64 over each tensor's name,
// dtype and shape in file order ("w\0F32\02,3\0"), then each metadata entry
// but the checksum itself in key order ("k\0v\0").
uint64_t header_digest(const std::vector<TensorEntry>& tensors,
                       const std::map<std::string, std::string>& meta) {
  std::string s;
  for (const TensorEntry& e : tensors) {
    s += e.name + '\0' + dtype_name(e.dtype) + '\0';
    for (size_t i = 0; i < e.shape.size(); ++i) {
      if (i) s += ',';
      s += std::to_string(e.shape[i]);
    }
    s += '\0';
  }
  for (const auto& [k, v] : meta)
    if (k != kChecksumKey) s += k + '\0' + v + '\0';
  return fnv1a64(s.data(), s.size());
}

// ---- writing ----

[[noreturn]] void write_fail(const std::string& path, const std::string& why) {
  throw Error("cannot write checkpoint '" + path + "': " + why);
}

// ---- reading ----

// Closes a file descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void not_st(const std::string& path, const std::string& why) {
  throw Error("'" + path + "' is not a safetensors checkpoint: " + why +
              " (expected a .safetensors file, as unroll train writes and "
              "safetensors.torch.save_file saves)");
}

// Reads exactly n bytes at offset off; Error if the file ends early or read fails.
void read_at(int fd, const std::string& path, uint64_t off, void* dst, size_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read checkpoint '" + path + "': " + std::strerror(errno));
    }
    if (r == 0)
      throw Error("cannot read checkpoint '" + path +
                  "': the file got shorter while being read (is something writing it?)");
    p += r;
    off += static_cast<uint64_t>(r);
    n -= static_cast<size_t>(r);
  }
}

// A non-negative JSON integer, or false.
bool json_u64(const nlohmann::ordered_json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;  // nlohmann parses every n >= 0 as unsigned
  *out = v.get<uint64_t>();
  return true;
}

struct Pending {  // a validated header entry whose bytes are still to be read
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::U64:
      return 8;
    case DType::U8:
      return 1;
    case DType::F16:
    case DType::BF16:
      return 2;
  }
  throw Error("unknown dtype " + std::to_string(static_cast<int>(t)));
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::U64:
      return "U64";
    case DType::U8:
      return "U8";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  throw Error("unknown dtype " + std::to_string(static_cast<int>(t)));
}

DType parse_dtype(const std::string& s) {
  for (DType t : {DType::F32, DType::F64, DType::I32, DType::I64, DType::U64, DType::U8, DType::F16,
                  DType::BF16})
    if (dtype_name(t) == s) return t;
  throw Error("unknown dtype '" + s + "' (expected one of F32, F64, I32, I64, U64, U8, F16, BF16)");
}

namespace {
// IEEE 754 binary16 → binary32, exactly (every half is a float): the sign moves
// up, the exponent is rebiased from 15 to 127, subnormal halves are normalised,
// infinities and NaNs keep their payload.
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: shift the mantissa up until its leading 1 is the implicit bit
    exp = 127 - 15 + 1;
    while (!(man & 0x400u)) {
      man <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}
}  // namespace

std::vector<float> floats_of(const TensorEntry& e) {
  const size_t n = e.bytes.empty() ? 0 : e.bytes.size() / dtype_size(e.dtype);
  std::vector<float> out(n);
  const uint8_t* p = e.bytes.data();
  auto le = [&](size_t i, int width) {  // the i-th element's bytes as a little-endian integer
    uint64_t v = 0;
    for (int k = width - 1; k >= 0; --k) v = (v << 8) | p[i * width + k];
    return v;
  };
  for (size_t i = 0; i < n; ++i) {
    switch (e.dtype) {
      case DType::F32:
        out[i] = std::bit_cast<float>(uint32_t(le(i, 4)));
        break;
      case DType::F64:
        out[i] = float(std::bit_cast<double>(le(i, 8)));
        break;
      case DType::F16:
        out[i] = half_to_float(uint16_t(le(i, 2)));
        break;
      case DType::BF16:  // the top half of a float
        out[i] = std::bit_cast<float>(uint32_t(le(i, 2)) << 16);
        break;
      default:
        throw Error("tensor '" + e.name + "' holds " + dtype_name(e.dtype) +
                    ", not floating-point numbers (F32, F64, F16 or BF16)");
    }
  }
  return out;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- SafeTensors ----

const TensorEntry* SafeTensors::find(const std::string& name) const {
  for (const TensorEntry& e : tensors)
    if (e.name == name) return &e;
  return nullptr;
}

const TensorEntry& SafeTensors::at(const std::string& name) const {
  if (const TensorEntry* e = find(name)) return *e;
  std::string where = source.empty() ? "the checkpoint" : "'" + source + "'";
  std::string have;
  for (size_t i = 0; i < tensors.size() && i < 20; ++i) have += (i ? ", " : "") + tensors[i].name;
  if (tensors.size() > 20) have += ", ... (" + std::to_string(tensors.size()) + " in all)";
  throw Error("tensor '" + name + "' not found in " + where +
              (tensors.empty() ? " (it has no tensors)" : " (it has: " + have + ")") +
              "; was it written by a different model configuration?");
}

const TensorEntry& SafeTensors::expect(const std::string& name, DType dtype,
                                       const std::vector<int64_t>& expected_shape) const {
  const TensorEntry& e = at(name);
  bool shape_ok = expected_shape.empty() || e.shape == expected_shape;
  if (e.dtype != dtype || !shape_ok) {
    std::string where = source.empty() ? "" : " in '" + source + "'";
    throw Error("tensor '" + name + "'" + where + ": expected " + dtype_name(dtype) +
                (expected_shape.empty() ? "" : " " + shape_str(expected_shape)) + ", found " +
                dtype_name(e.dtype) + " " + shape_str(e.shape));
  }
  return e;
}

void SafeTensors::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                      const void* data) {
  require(!name.empty(), "cannot add a tensor with an empty name");
  require(name != kMetadataKey, "cannot add a tensor named '__metadata__' (reserved)");
  require(find(name) == nullptr, "cannot add tensor '" + name + "' twice");
  uint64_t nbytes = 0;
  require(byte_size(dtype, shape, &nbytes) && nbytes <= SIZE_MAX,
          "cannot add tensor '" + name + "': invalid shape " + shape_str(shape));
  require(nbytes == 0 || data != nullptr, "cannot add tensor '" + name + "': data is null");
  TensorEntry e;
  e.name = name;
  e.dtype = dtype;
  e.shape = std::move(shape);
  e.bytes.resize(nbytes);
  if (nbytes) std::memcpy(e.bytes.data(), data, nbytes);
  to_from_little(e.bytes.data(), e.bytes.size(), dtype_size(dtype));
  tensors.push_back(std::move(e));
}

// ---- save ----

void save_safetensors(const std::string& path, const SafeTensors& st) {
  // Validate and build the header before touching the disk.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header[kMetadataKey] = nlohmann::ordered_json::object();  // first; filled in below
  uint64_t sum = 0xcbf29ce484222325ull, offset = 0;
  std::set<std::string> names;
  for (const TensorEntry& e : st.tensors) {
    if (e.name.empty() || e.name == kMetadataKey)
      write_fail(path, "invalid tensor name '" + e.name + "'");
    if (!names.insert(e.name).second) write_fail(path, "tensor '" + e.name + "' appears twice");
    uint64_t nbytes = 0;
    if (!byte_size(e.dtype, e.shape, &nbytes) || nbytes != e.bytes.size())
      write_fail(path, "tensor '" + e.name + "' has " + std::to_string(e.bytes.size()) +
                           " bytes, which does not match " + dtype_name(e.dtype) + " " +
                           shape_str(e.shape));
    sum = fnv1a64(e.bytes.data(), e.bytes.size(), sum);
    header[e.name] = {{"dtype", dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::map<std::string, std::string> meta = st.metadata;  // sorted, so saves are reproducible
  meta[kChecksumKey] = hex16(sum) + hex16(header_digest(st.tensors, meta));
  for (const auto& [k, v] : meta) header[kMetadataKey][k] = v;

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception&) {
    write_fail(path, "a tensor name or metadata entry is not valid UTF-8");
  }
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // data section starts 8-aligned
  if (text.size() > kMaxHeader)
    write_fail(path, "header of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                         std::to_string(kMaxHeader));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));

  std::vector<std::string_view> parts = {std::string_view(reinterpret_cast<const char*>(len), 8),
                                         text};
  for (const TensorEntry& e : st.tensors)
    parts.emplace_back(reinterpret_cast<const char*>(e.bytes.data()), e.bytes.size());
  write_file_atomic(path, parts, "checkpoint");
}

// ---- load ----

SafeTensors load_safetensors(const std::string& path) {
  Fd fd;
  fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd.fd < 0) throw Error("cannot read checkpoint '" + path + "': " + std::strerror(errno));
  struct stat sb;
  if (::fstat(fd.fd, &sb) != 0)
    throw Error("cannot read checkpoint '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(sb.st_mode)) throw Error("cannot read checkpoint '" + path + "': not a file");
  const uint64_t file_size = static_cast<uint64_t>(sb.st_size);
  if (file_size < 8)
    not_st(path, "file is " + std::to_string(file_size) +
                     " bytes, shorter than the 8-byte header length");

  uint8_t len[8];
  read_at(fd.fd, path, 0, len, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{len[i]} << (8 * i);
  if (n > file_size - 8)
    not_st(path, "header length " + std::to_string(n) + " exceeds file size " +
                     std::to_string(file_size));
  if (n > kMaxHeader)
    not_st(path, "header length " + std::to_string(n) + " exceeds the limit of " +
                     std::to_string(kMaxHeader) + " bytes");
  if (n == 0) not_st(path, "header is empty");
  const uint64_t data_size = file_size - 8 - n;

  std::string text(n, '\0');
  read_at(fd.fd, path, 8, text.data(), n);
  if (text[0] != '{') not_st(path, "header does not start with '{'");
  // JSON never contains a raw NUL, and nlohmann's parser would take one as the end of input.
  if (text.find('\0') != std::string::npos) not_st(path, "header contains a NUL byte");

  using Json = nlohmann::ordered_json;
  Json j;
  size_t top_keys = 0;  // counts duplicates, which the parsed object silently merges
  try {
    j = Json::parse(text, [&](int depth, Json::parse_event_t ev, Json&) {
      if (ev == Json::parse_event_t::key && depth == 1) ++top_keys;
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    not_st(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) not_st(path, "header is not a JSON object");
  if (top_keys != j.size()) not_st(path, "header names the same tensor more than once");

  SafeTensors st;
  st.source = path;
  std::vector<Pending> pending;
  for (auto& [key, v] : j.items()) {
    if (key == kMetadataKey) {
      if (!v.is_object()) not_st(path, "__metadata__ is not a JSON object");
      for (auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) not_st(path, "__metadata__ value of '" + mk + "' is not a string");
        st.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    const std::string t = "tensor '" + key + "' ";
    if (!v.is_object()) not_st(path, t + "is not described by a JSON object");
    for (auto& [field, unused] : v.items()) {
      (void)unused;
      if (field != "dtype" && field != "shape" && field != "data_offsets")
        not_st(path, t + "has unknown field '" + field + "'");
    }
    if (!v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      not_st(path, t + "lacks one of dtype, shape, data_offsets");
    Pending p;
    p.name = key;
    if (!v["dtype"].is_string()) not_st(path, t + "has a dtype that is not a string");
    try {
      p.dtype = parse_dtype(v["dtype"].get<std::string>());
    } catch (const Error& e) {
      not_st(path, t + "has " + e.what());
    }
    const Json& shape = v["shape"];
    if (!shape.is_array()) not_st(path, t + "has a shape that is not an array");
    for (const Json& d : shape) {
      uint64_t u;
      if (!json_u64(d, &u) || u > static_cast<uint64_t>(INT64_MAX))
        not_st(path, t + "has shape " + shape.dump() + " with a dim that is not a " +
                         "non-negative integer");
      p.shape.push_back(static_cast<int64_t>(u));
    }
    const Json& offs = v["data_offsets"];
    if (!offs.is_array() || offs.size() != 2 || !json_u64(offs[0], &p.begin) ||
        !json_u64(offs[1], &p.end) || p.begin > p.end)
      not_st(path, t + "has data_offsets " + offs.dump() +
                       " that are not two non-negative integers [begin, end] with begin <= end");
    const std::string range = "[" + std::to_string(p.begin) + ", " + std::to_string(p.end) + "]";
    uint64_t nbytes = 0;
    if (!byte_size(p.dtype, p.shape, &nbytes))
      not_st(path, t + "has shape " + shape_str(p.shape) + " whose size overflows");
    if (p.end > data_size)
      not_st(path, t + "data_offsets " + range + " run past the end of the file (data section is " +
                       std::to_string(data_size) + " bytes)");
    if (p.end - p.begin != nbytes)
      not_st(path, t + "has " + dtype_name(p.dtype) + " " + shape_str(p.shape) + " (" +
                       std::to_string(nbytes) + " bytes) but data_offsets " + range + " span " +
                       std::to_string(p.end - p.begin) + " bytes");
    pending.push_back(std::move(p));
  }

  // The tensors must tile the data section exactly: no overlap, no gap, nothing left over.
  std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < pending.size(); ++i) {
    const Pending& p = pending[i];
    if (p.begin < covered)
      not_st(path, "tensors '" + pending[i - 1].name + "' and '" + p.name + "' overlap");
    if (p.begin > covered)
      not_st(path, "bytes [" + std::to_string(covered) + ", " + std::to_string(p.begin) +
                       ") of the data section belong to no tensor");
    covered = p.end;
  }
  if (covered != data_size)
    not_st(path, "the data section is " + std::to_string(data_size) +
                     " bytes but the tensors cover " + std::to_string(covered));

  // 32 hex digits: the data section's sum, then the header's; 16 (files of
  // unroll 0.1 before the header was covered): the data section's alone.
  uint64_t want_sum = 0, want_header = 0;
  auto cs = st.metadata.find(kChecksumKey);
  bool has_sum = cs != st.metadata.end(), has_header_sum = false;
  if (has_sum) {
    const std::string& h = cs->second;
    bool ok = (h.size() == 16 || h.size() == 32) && std::all_of(h.begin(), h.end(), [](char c) {
                return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');  // as written: lowercase
              });
    if (!ok)
      throw Error("'" + path + "' is corrupt: its checksum '" + h.substr(0, 40) +
                  "' is not 32 lowercase hex digits; use another checkpoint");
    want_sum = std::stoull(h.substr(0, 16), nullptr, 16);
    has_header_sum = h.size() == 32;
    if (has_header_sum) want_header = std::stoull(h.substr(16), nullptr, 16);
  }

  // Everything is consistent with the file size: now allocate and read.
  uint64_t sum = 0xcbf29ce484222325ull;
  const uint64_t data_start = 8 + n;
  st.tensors.reserve(pending.size());
  for (Pending& p : pending) {
    TensorEntry e;
    e.name = std::move(p.name);
    e.dtype = p.dtype;
    e.shape = std::move(p.shape);
    e.bytes.resize(p.end - p.begin);
    read_at(fd.fd, path, data_start + p.begin, e.bytes.data(), e.bytes.size());
    sum = fnv1a64(e.bytes.data(), e.bytes.size(), sum);
    st.tensors.push_back(std::move(e));
  }
  if (has_sum && sum != want_sum)
    throw Error("'" + path +
                "' is corrupt: checksum mismatch (the file was truncated or modified); use "
                "another checkpoint");
  if (has_header_sum && header_digest(st.tensors, st.metadata) != want_header)
    throw Error(
        "'" + path +
        "' is corrupt: header checksum mismatch (its metadata or tensor names were modified); use "
        "another checkpoint");
  return st;
}

}  // namespace unroll

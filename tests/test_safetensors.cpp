// Safetensors checkpoints: round trips, the exact byte layout, rejection of malformed,
// truncated and bit-flipped files (always an unroll::Error, never a crash or a huge
// allocation), and atomic writes that leave the previous file alone on failure.
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "unroll/core/error.h"
#include "unroll/train/safetensors.h"

// ---- allocation tracking: the largest single operator-new request while g_track is on ----

namespace {
std::atomic<bool> g_track{false};
std::atomic<size_t> g_max_alloc{0};

void* tracked_malloc(size_t n) noexcept {
  if (g_track.load(std::memory_order_relaxed)) {
    size_t m = g_max_alloc.load();
    while (n > m && !g_max_alloc.compare_exchange_weak(m, n)) {
    }
  }
  return std::malloc(n ? n : 1);
}
}  // namespace

// GCC cannot see that operator delete below pairs with this operator new.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// The plain, array and nothrow forms all go through tracked_malloc and free, so they match
// (also under AddressSanitizer); the aligned forms are left to the library.
void* operator new(size_t n) {
  if (void* p = tracked_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return ::operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return tracked_malloc(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return tracked_malloc(n); }
// GCC cannot see that the operator new above is malloc, and warns at every inlined delete.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace unroll;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A file of size bytes of spaces whose first 8 bytes are the length field v.
Bytes length_then_spaces(uint64_t v, size_t size) {
  Bytes b(size, ' ');
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  return b;
}

Bytes le64(uint64_t v) {
  Bytes b(8);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  return b;
}

// A file built by hand (independently of save_safetensors): length, header text, data.
Bytes raw_file(const std::string& header, const Bytes& data) {
  Bytes b(8 + header.size() + data.size());
  Bytes len = le64(header.size());
  std::copy(len.begin(), len.end(), b.begin());
  std::copy(header.begin(), header.end(), b.begin() + 8);
  std::copy(data.begin(), data.end(), b.begin() + 8 + static_cast<ptrdiff_t>(header.size()));
  return b;
}

// Runs f, which must throw unroll::Error whose message contains every one of parts.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    return;
  }
  ADD_FAILURE() << "no unroll::Error thrown (expected one mentioning '" << parts.front() << "')";
}

std::string hex(const Bytes& b) {
  std::string s;
  char buf[3];
  for (uint8_t c : b) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    s += buf;
  }
  return s;
}

class SafeTensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/unroll_safetensors_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  std::set<std::string> listing() const {
    std::set<std::string> s;
    for (const auto& e : fs::directory_iterator(dir_)) s.insert(e.path().filename().string());
    return s;
  }
  void expect_no_temp_files() const {
    for (const std::string& n : listing())
      EXPECT_EQ(n.find(".tmp."), std::string::npos) << "temp file left behind: " << n;
  }

  std::string dir_;
};

// Tensors of every dtype, awkward values and shapes (scalar, empty, 3-D), plus metadata.
SafeTensors sample() {
  SafeTensors st;
  const float f32[6] = {1.5f,
                        -0.0f,
                        std::numeric_limits<float>::infinity(),
                        std::numeric_limits<float>::denorm_min(),
                        3.25e38f,
                        -7.0f};
  const double f64[4] = {M_PI, -1e-300, std::numeric_limits<double>::quiet_NaN(), 0.0};
  const int32_t i32[8] = {0, -1, 2, INT32_MIN, INT32_MAX, 5, -6, 7};
  const int64_t i64[1] = {INT64_MIN};
  const uint64_t u64[3] = {0, 42, UINT64_MAX};
  const uint8_t u8[5] = {0, 1, 127, 128, 255};
  st.add_f32("W_xh", {2, 3}, f32);
  st.add_f64("h0", {4}, f64);
  st.add_i32("cube", {2, 2, 2}, i32);
  st.add_i64("step", {}, i64);
  st.add_u64("rng", {3}, u64);
  st.add_u8("tokens", {5}, u8);
  st.add_f32("empty", {0, 4}, nullptr);
  st.metadata["model"] = "lstm";
  st.metadata["vocab"] = "h\te\"l\\o ✓ é";
  return st;
}

void expect_same_tensors(const SafeTensors& a, const SafeTensors& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].dtype, b.tensors[i].dtype) << a.tensors[i].name;
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape) << a.tensors[i].name;
    EXPECT_EQ(a.tensors[i].bytes, b.tensors[i].bytes) << a.tensors[i].name;
  }
}

}  // namespace

TEST(Fnv1a64, KnownVectorsAndChaining) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ull);
  EXPECT_EQ(fnv1a64("bar", 3, fnv1a64("foo", 3)), fnv1a64("foobar", 6));
}

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::I32), 4u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_EQ(dtype_size(DType::U64), 8u);
  EXPECT_EQ(dtype_size(DType::U8), 1u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  for (DType t : {DType::F32, DType::F64, DType::I32, DType::I64, DType::U64, DType::U8, DType::F16,
                  DType::BF16})
    EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  expect_error([] { parse_dtype("F8_E4M3"); },
               {"F8_E4M3", "F32, F64, I32, I64, U64, U8, F16, BF16"});
}

// PyTorch writes half-precision models as F16 or BF16; floats_of widens them
// exactly. The bit patterns are the IEEE 754 / bfloat16 encodings of the values.
TEST(DType, HalfPrecisionWidensExactly) {
  struct Case {
    uint16_t bits;
    float value;
  };
  const Case f16[] = {{0x3c00, 1.0f},
                      {0xc000, -2.0f},
                      {0x3555, 0.333251953125f},
                      {0x7bff, 65504.0f},
                      {0x0400, 6.103515625e-05f},        // smallest normal
                      {0x0001, 5.960464477539063e-08f},  // smallest subnormal
                      {0x03ff, 6.097555160522461e-05f},  // largest subnormal
                      {0x8000, -0.0f},
                      {0x7c00, INFINITY}};
  const Case bf16[] = {
      {0x3f80, 1.0f}, {0xc040, -3.0f}, {0x3eab, 0.333984375f}, {0xff80, -INFINITY}};
  for (auto [dtype, cases, n] : {std::tuple{DType::F16, f16, std::size(f16)},
                                 std::tuple{DType::BF16, bf16, std::size(bf16)}}) {
    std::vector<uint16_t> raw;
    for (size_t i = 0; i < n; ++i) raw.push_back(cases[i].bits);
    SafeTensors st;
    st.add("x", dtype, {int64_t(n)}, raw.data());
    std::vector<float> got = floats_of(st.at("x"));
    ASSERT_EQ(got.size(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(got[i], cases[i].value)
          << dtype_name(dtype) << " bits " << std::hex << cases[i].bits;
      EXPECT_EQ(std::signbit(got[i]), std::signbit(cases[i].value));
    }
  }
  uint16_t nan_bits = 0x7e00;
  SafeTensors st;
  st.add("nan", DType::F16, {1}, &nan_bits);
  EXPECT_TRUE(std::isnan(floats_of(st.at("nan"))[0]));
  const double d[] = {0.1, -1e300};
  st.add_f64("d", {2}, d);
  EXPECT_EQ(floats_of(st.at("d")), (std::vector<float>{0.1f, -INFINITY}));
  const int32_t i[] = {1};
  st.add_i32("i", {1}, i);
  expect_error([&] { floats_of(st.at("i")); }, {"'i'", "I32", "F16"});
}

TEST_F(SafeTensorsTest, RoundTripsEveryDtypeShapeAndMetadata) {
  SafeTensors st = sample();
  std::string path = file("ckpt.safetensors");
  save_safetensors(path, st);
  SafeTensors back = load_safetensors(path);

  EXPECT_EQ(back.source, path);
  expect_same_tensors(st, back);  // same order too
  std::map<std::string, std::string> want = st.metadata;
  ASSERT_EQ(back.metadata.count(kChecksumKey), 1u);
  want[kChecksumKey] = back.metadata[kChecksumKey];
  EXPECT_EQ(back.metadata, want);

  std::vector<float> w = back.get_f32("W_xh", {2, 3});
  EXPECT_EQ(w[0], 1.5f);
  EXPECT_TRUE(std::signbit(w[1]) && w[1] == 0.0f);
  EXPECT_TRUE(std::isinf(w[2]));
  EXPECT_EQ(w[3], std::numeric_limits<float>::denorm_min());
  std::vector<double> h0 = back.get_f64("h0");
  EXPECT_EQ(h0[0], M_PI);
  EXPECT_TRUE(std::isnan(h0[2]));
  EXPECT_EQ(back.get_i32("cube", {2, 2, 2})[3], INT32_MIN);
  EXPECT_EQ(back.get_i64("step"), std::vector<int64_t>{INT64_MIN});
  EXPECT_EQ(back.get_u64("rng", {3}), (std::vector<uint64_t>{0, 42, UINT64_MAX}));
  EXPECT_EQ(back.get_u8("tokens"), (Bytes{0, 1, 127, 128, 255}));
  EXPECT_TRUE(back.get_f32("empty", {0, 4}).empty());

  // Saving what was loaded reproduces the file byte for byte.
  std::string again = file("again.safetensors");
  save_safetensors(again, back);
  EXPECT_EQ(read_bytes(again), read_bytes(path));
  expect_no_temp_files();
}

TEST_F(SafeTensorsTest, ExactByteLayoutOfATinyFile) {
  SafeTensors st;
  const float w[2] = {1.0f, -2.0f};
  const uint8_t b[3] = {1, 2, 3};
  st.add_f32("w", {2}, w);
  st.add_u8("b", {3}, b);
  st.metadata["k"] = "v";
  st.metadata[kChecksumKey] = "0000000000000000";  // overwritten by save
  std::string path = file("tiny.safetensors");
  save_safetensors(path, st);
  Bytes f = read_bytes(path);

  ASSERT_GE(f.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{f[i]} << (8 * i);
  const Bytes data = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x01, 0x02, 0x03};
  ASSERT_EQ(f.size(), 8 + n + data.size());
  EXPECT_EQ((8 + n) % 8, 0u) << "data section must start 8-aligned";
  EXPECT_EQ(Bytes(f.begin() + 8 + n, f.end()), data);

  std::string header(f.begin() + 8, f.begin() + 8 + n);
  // The checksum: FNV-1a 64 of the data section, then of the header's
  // description (tensor name, dtype, shape; metadata key, value; NUL after each).
  const char d[] =
      "w\0F32\0"
      "2\0"
      "b\0U8\0"
      "3\0"
      "k\0v\0";
  const std::string described(d, sizeof d - 1);
  char sum[33];
  std::snprintf(sum, sizeof sum, "%016llx%016llx",
                static_cast<unsigned long long>(fnv1a64(data.data(), data.size())),
                static_cast<unsigned long long>(fnv1a64(described.data(), described.size())));
  const std::string json = std::string("{\"__metadata__\":{\"k\":\"v\",\"unroll.checksum\":\"") +
                           sum +
                           "\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
  ASSERT_GE(header.size(), json.size());
  EXPECT_EQ(header.substr(0, json.size()), json);
  EXPECT_LT(header.size() - json.size(), 8u);
  EXPECT_EQ(header.find_first_not_of(' ', json.size()), std::string::npos)
      << "padding must be spaces";

  auto j = nlohmann::json::parse(header);  // the padded header is valid JSON
  EXPECT_EQ(j["w"]["data_offsets"], nlohmann::json::array({0, 8}));
  EXPECT_EQ(j["b"]["data_offsets"], nlohmann::json::array({8, 11}));
  EXPECT_EQ(j["__metadata__"]["unroll.checksum"], sum);
}

TEST_F(SafeTensorsTest, AccessorsCheckNameDtypeAndShape) {
  std::string path = file("acc.safetensors");
  save_safetensors(path, sample());
  SafeTensors st = load_safetensors(path);
  EXPECT_EQ(st.find("nope"), nullptr);
  ASSERT_NE(st.find("h0"), nullptr);
  EXPECT_EQ(&st.at("h0"), st.find("h0"));
  expect_error([&] { st.at("W_hh"); }, {"'W_hh'", "'" + path + "'", "W_xh"});
  expect_error([&] { st.get_f32("h0"); }, {"'h0'", path, "expected F32", "found F64 [4]"});
  expect_error([&] { st.get_f32("W_xh", {3, 2}); }, {"expected F32 [3, 2]", "found F32 [2, 3]"});
  expect_error([&] { st.get_u64("tokens", {5}); }, {"expected U64 [5]", "found U8 [5]"});
  EXPECT_EQ(st.get_f32("W_xh", {2, 3}).size(), 6u);
}

TEST(SafeTensorsAdd, RejectsBadNamesShapesAndData) {
  SafeTensors st;
  float x[2] = {1, 2};
  st.add_f32("x", {2}, x);
  expect_error([&] { st.add_f32("x", {2}, x); }, {"'x'", "twice"});
  expect_error([&] { st.add_f32("", {2}, x); }, {"empty name"});
  expect_error([&] { st.add_f32("__metadata__", {2}, x); }, {"reserved"});
  expect_error([&] { st.add_f32("neg", {-1, 2}, x); }, {"'neg'", "[-1, 2]"});
  expect_error([&] { st.add_f32("big", {INT64_MAX, INT64_MAX}, x); }, {"'big'", "invalid shape"});
  expect_error([&] { st.add_f32("null", {2}, nullptr); }, {"null"});
  EXPECT_EQ(st.tensors.size(), 1u);
  // add() copies: changing the source afterwards does not change the tensor.
  x[0] = 99;
  EXPECT_EQ(st.get_f32("x")[0], 1.0f);
}

TEST_F(SafeTensorsTest, SaveRejectsInconsistentEntries) {
  SafeTensors st;
  st.tensors.push_back({"w", DType::F32, {2, 3}, Bytes(20)});
  std::string path = file("bad.safetensors");
  expect_error([&] { save_safetensors(path, st); },
               {"cannot write checkpoint '" + path + "'", "'w'", "20 bytes", "F32 [2, 3]"});
  SafeTensors utf;
  utf.metadata["k"] = "\xff\xfe";
  expect_error([&] { save_safetensors(path, utf); }, {"not valid UTF-8"});
  EXPECT_TRUE(listing().empty());
}

TEST_F(SafeTensorsTest, LoadsAForeignFileWithoutChecksumOrPadding) {
  // As another writer might produce it: no metadata, unpadded, keys not in data order.
  std::string header = R"({"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},)"
                       R"("a":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
                       R"("z":{"shape":[0],"data_offsets":[12,12],"dtype":"U8"}})";
  Bytes data = {0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 7, 0, 0, 0};  // 1.0, 7
  std::string path = file("foreign.safetensors");
  write_bytes(path, raw_file(header, data));
  SafeTensors st = load_safetensors(path);
  ASSERT_EQ(st.tensors.size(), 3u);
  EXPECT_EQ(st.tensors[0].name, "a");  // file order = data order
  EXPECT_EQ(st.tensors[1].name, "b");
  EXPECT_EQ(st.tensors[2].name, "z");
  EXPECT_EQ(st.get_f64("a"), std::vector<double>{1.0});
  EXPECT_EQ(st.get_i32("b", {1}), std::vector<int32_t>{7});
  EXPECT_TRUE(st.metadata.empty());
}

TEST_F(SafeTensorsTest, RejectsMalformedHeadersWithAReason) {
  struct Case {
    std::string header;
    Bytes data;
    std::string why;
  };
  const Bytes d8(8, 0);
  const std::string f32 = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<Case> cases = {
      {"{not json", d8, "not valid JSON"},
      {"[1,2]", {}, "does not start with '{'"},
      {" {}", {}, "does not start with '{'"},
      {"{\"x\":1}", {}, "'x' is not described by a JSON object"},
      {R"({"x":{"dtype":"F8_E5M2","shape":[4],"data_offsets":[0,8]}})", d8,
       "unknown dtype 'F8_E5M2'"},
      {R"({"x":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", d8, "dtype that is not a string"},
      {R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8, "non-negative integer"},
      {R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", d8, "non-negative integer"},
      {R"({"x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", d8, "not an array"},
      {R"({"x":{"dtype":"F32","shape":[2]}})", d8, "lacks one of"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", d8,
       "unknown field 'extra'"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", d8, "begin <= end"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", d8, "begin <= end"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", Bytes(4),
       "tensor 'x' data_offsets [0, 8] run past the end of the file (data section is 4 bytes)"},
      {R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8,
       "F32 [3] (12 bytes) but data_offsets [0, 8] span 8 bytes"},
      {R"({"x":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,0]}})",
       {},
       "overflows"},
      {R"({"x":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},)"
       R"("y":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
       d8, "'x' and 'y' overlap"},
      {R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
       R"("y":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
       d8, "bytes [2, 4) of the data section belong to no tensor"},
      {R"({"x":{"dtype":"U8","shape":[6],"data_offsets":[0,6]}})", d8,
       "data section is 8 bytes but the tensors cover 6"},
      {f32 + R"(,"x":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", d8, "more than once"},
      {R"({"__metadata__":{"a":1}})", {}, "value of 'a' is not a string"},
      {R"({"__metadata__":["a"]})", {}, "__metadata__ is not a JSON object"},
      {R"({"__metadata__":{"unroll.checksum":"xyz"}})",
       {},
       "checksum 'xyz' is not 32 lowercase hex"},
      {"{\"\xff\":{}}", {}, "not valid JSON"},
      {std::string("{}\0{\"x\":1}", 10), {}, "contains a NUL byte"},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::string path = file("bad" + std::to_string(i++) + ".safetensors");
    write_bytes(path, raw_file(c.header, c.data));
    SCOPED_TRACE(c.header);
    expect_error([&] { load_safetensors(path); }, {"'" + path + "'", c.why});
  }
  expect_error([&] { load_safetensors(file("missing.safetensors")); },
               {"cannot read checkpoint '" + file("missing.safetensors") + "'", "No such file"});
  expect_error([&] { load_safetensors(dir_); }, {"cannot read checkpoint '" + dir_ + "'"});
}

TEST_F(SafeTensorsTest, FilesShorterThanTheLengthFieldAreRejected) {
  for (size_t n = 0; n < 8; ++n) {
    std::string path = file("short.safetensors");
    write_bytes(path, Bytes(n, 0));
    expect_error([&] { load_safetensors(path); },
                 {"'" + path + "' is not a safetensors checkpoint", "shorter than the 8-byte"});
  }
}

TEST_F(SafeTensorsTest, HugeLengthsAreRejectedWithoutAllocating) {
  std::string path = file("huge.safetensors");
  Bytes f = length_then_spaces(123456789, 4096);
  write_bytes(path, f);
  g_max_alloc = 0;
  g_track = true;
  try {
    load_safetensors(path);
    ADD_FAILURE() << "no Error";
  } catch (const Error& e) {
    g_track = false;
    // What is wrong, and what to give instead.
    EXPECT_EQ(std::string(e.what()), "'" + path +
                                         "' is not a safetensors checkpoint: header length "
                                         "123456789 exceeds file size 4096 (expected a "
                                         ".safetensors file, as unroll train writes and "
                                         "safetensors.torch.save_file saves)");
  }
  g_track = false;
  EXPECT_LT(g_max_alloc.load(), size_t{1} << 16);

  // All ones in the length field.
  f = length_then_spaces(UINT64_MAX, 64);
  write_bytes(path, f);
  g_max_alloc = 0;
  g_track = true;
  expect_error([&] { load_safetensors(path); }, {"header length 18446744073709551615 exceeds"});
  g_track = false;
  EXPECT_LT(g_max_alloc.load(), size_t{1} << 16);

  // A sparse 300 MB file whose header claims 250 MB: over the 100 MB limit, nothing read.
  {
    f = le64(250'000'000);
    write_bytes(path, f);
    fs::resize_file(path, 300'000'000);
  }
  g_max_alloc = 0;
  g_track = true;
  expect_error([&] { load_safetensors(path); },
               {"header length 250000000 exceeds the limit of 100000000 bytes"});
  g_track = false;
  EXPECT_LT(g_max_alloc.load(), size_t{1} << 16);
  fs::remove(path);

  // A small file whose tensor claims 4 TB.
  write_bytes(path, raw_file(R"({"x":{"dtype":"F32","shape":[1099511627776],)"
                             R"("data_offsets":[0,4398046511104]}})",
                             Bytes(8)));
  g_max_alloc = 0;
  g_track = true;
  expect_error([&] { load_safetensors(path); }, {"run past the end of the file"});
  g_track = false;
  EXPECT_LT(g_max_alloc.load(), size_t{1} << 16);
}

TEST_F(SafeTensorsTest, TruncationAtEveryOffsetGivesAnError) {
  std::string path = file("full.safetensors");
  SafeTensors st = sample();
  save_safetensors(path, st);
  const Bytes full = read_bytes(path);
  ASSERT_GT(full.size(), 100u);
  std::string cut = file("cut.safetensors");
  for (size_t k = 0; k < full.size(); ++k) {
    write_bytes(cut, Bytes(full.begin(), full.begin() + k));
    SCOPED_TRACE("truncated to " + std::to_string(k) + " of " + std::to_string(full.size()));
    EXPECT_THROW(load_safetensors(cut), Error);
  }
  // A larger file, cut inside its data section.
  SafeTensors big;
  std::vector<float> v(100000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f;
  big.add_f32("v", {100000}, v.data());
  save_safetensors(path, big);
  const Bytes bigf = read_bytes(path);
  for (size_t k = 0; k < bigf.size(); k += 9973) {
    write_bytes(cut, Bytes(bigf.begin(), bigf.begin() + k));
    EXPECT_THROW(load_safetensors(cut), Error) << k;
  }
  write_bytes(cut, Bytes(bigf.begin(), bigf.end() - 1));
  expect_error([&] { load_safetensors(cut); }, {"'" + cut + "'", "run past the end"});
}

// The checksum covers the data section and the header's description (tensor
// names, dtypes, shapes, metadata), so the only flips that still load are in
// the name of the checksum's own key: the file then reads as a foreign one
// without a checksum (load_checkpoint refuses those, test_train.cpp).
TEST_F(SafeTensorsTest, BitFlipsGiveAnErrorOrOnlyRenameTheChecksumKey) {
  SafeTensors st;
  const float w[3] = {0.25f, -1.0f, 8.0f};
  const int64_t s[2] = {3, -4};
  const uint8_t u[3] = {9, 8, 7};
  st.add_f32("w", {3}, w);
  st.add_i64("s", {2, 1}, s);
  st.add_u8("u", {3}, u);
  st.metadata["m"] = "ab";
  std::string path = file("orig.safetensors");
  save_safetensors(path, st);
  const Bytes orig = read_bytes(path);
  const SafeTensors want = load_safetensors(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{orig[i]} << (8 * i);

  // Bytes strictly inside a JSON string of the header (names, dtypes, metadata).
  std::vector<bool> in_string(orig.size(), false);
  bool inside = false;
  for (size_t i = 8; i < 8 + n; ++i) {
    if (orig[i] == '"') {
      inside = !inside;
    } else {
      in_string[i] = inside;
    }
  }

  const std::string key = std::string("\"") + kChecksumKey + "\"";
  const size_t key_at = std::string(orig.begin(), orig.end()).find(key);
  ASSERT_NE(key_at, std::string::npos);
  std::string flipped = file("flipped.safetensors");
  int loaded = 0, rejected = 0;
  for (size_t pos = 0; pos < orig.size(); ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes f = orig;
      f[pos] ^= static_cast<uint8_t>(1u << bit);
      write_bytes(flipped, f);
      try {
        SafeTensors got = load_safetensors(flipped);
        ++loaded;
        // Undetectable only if it renamed something: the numbers must be untouched.
        EXPECT_TRUE(in_string[pos] && pos > key_at && pos < key_at + key.size() - 1)
            << "flip at byte " << pos << " bit " << bit << " loaded";
        EXPECT_EQ(got.metadata.count(kChecksumKey), 0u);
        ASSERT_EQ(got.tensors.size(), want.tensors.size());
        for (size_t t = 0; t < got.tensors.size(); ++t) {
          EXPECT_EQ(got.tensors[t].dtype, want.tensors[t].dtype);
          EXPECT_EQ(got.tensors[t].shape, want.tensors[t].shape);
          EXPECT_EQ(got.tensors[t].bytes, want.tensors[t].bytes);
        }
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, loaded);
  EXPECT_EQ(loaded + rejected, static_cast<int>(orig.size() * 8));

  // Other whitespace in the padding is still whitespace: the file loads identically.
  size_t pad = 8 + n - 1;
  ASSERT_EQ(orig[pad], ' ') << "expected the header to end in padding for this test";
  for (uint8_t ws : {'\n', '\t', '\r'}) {
    Bytes f = orig;
    f[pad] = ws;
    write_bytes(flipped, f);
    SafeTensors got = load_safetensors(flipped);
    expect_same_tensors(want, got);
    EXPECT_EQ(got.metadata, want.metadata);
  }
}

TEST_F(SafeTensorsTest, ChecksumMismatchIsReported) {
  std::string path = file("sum.safetensors");
  save_safetensors(path, sample());
  Bytes f = read_bytes(path);
  f[f.size() - 30] ^= 0x10;  // inside the data section, offsets untouched
  write_bytes(path, f);
  try {
    load_safetensors(path);
    ADD_FAILURE() << "no Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "'" + path +
                  "' is corrupt: checksum mismatch (the file was truncated or modified); use "
                  "another checkpoint");
  }
}

TEST_F(SafeTensorsTest, FailedWritesThrowAndLeaveNothingBehind) {
  SafeTensors st = sample();
  // Parent folder does not exist.
  std::string nodir = file("no/such/dir/ckpt.safetensors");
  expect_error([&] { save_safetensors(nodir, st); },
               {"cannot write checkpoint '" + nodir + "': No such file or directory"});
  EXPECT_TRUE(listing().empty());

  // A place nobody (not even root) can create files in.
  const std::string proc = "/proc/unroll_test_ckpt.safetensors";
  expect_error([&] { save_safetensors(proc, st); }, {"cannot write checkpoint '" + proc + "': "});
  EXPECT_FALSE(fs::exists(proc));

  // The target is a folder: the temp file is written, the rename fails, the temp file goes.
  std::string sub = file("sub");
  fs::create_directory(sub);
  fs::path marker = fs::path(sub) / "keep";
  std::ofstream(marker) << "x";
  expect_error([&] { save_safetensors(sub, st); }, {"cannot write checkpoint '" + sub + "': "});
  EXPECT_TRUE(fs::is_directory(sub));
  EXPECT_TRUE(fs::exists(marker));
  EXPECT_EQ(listing(), std::set<std::string>{"sub"});
}

TEST_F(SafeTensorsTest, DiskFullKeepsThePreviousFile) {
  // RLIMIT_FSIZE makes writes past the limit fail with EFBIG, like a full disk.
  std::string path = file("ckpt.safetensors");
  save_safetensors(path, sample());
  const Bytes before = read_bytes(path);

  SafeTensors big;
  std::vector<double> v(200000, 1.0);
  big.add_f64("v", {200000}, v.data());

  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  std::string msg;
  try {
    save_safetensors(path, big);
  } catch (const Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_EQ(msg, "cannot write checkpoint '" + path + "': " + std::strerror(EFBIG));
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(listing(), std::set<std::string>{"ckpt.safetensors"});
  expect_same_tensors(load_safetensors(path), sample());
}

// Root writes into any folder, so as root the write is tried in a child
// process that has become the unprivileged user 'nobody' (65534).
TEST_F(SafeTensorsTest, ReadOnlyFolderKeepsThePreviousFile) {
  std::string path = file("ckpt.safetensors");
  save_safetensors(path, sample());
  const Bytes before = read_bytes(path);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                            fs::perms::group_exec | fs::perms::others_read |
                            fs::perms::others_exec);
  SafeTensors other;
  const float x = 1;
  other.add_f32("x", {}, &x);
  const std::string expected = "cannot write checkpoint '" + path + "': Permission denied";
  if (::geteuid() != 0) {
    expect_error([&] { save_safetensors(path, other); }, {expected});
  } else {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid ==
        0) {  // exit 0: the expected error; 2: written anyway; 3: another error; 4: no nobody
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(4);
      try {
        save_safetensors(path, other);
        ::_exit(2);
      } catch (const Error& e) {
        ::_exit(std::string(e.what()) == expected ? 0 : 3);
      }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0)
        << "2: written into a read-only folder; 3: another message; 4: setuid failed";
  }
  fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(listing(), std::set<std::string>{"ckpt.safetensors"});
}

TEST_F(SafeTensorsTest, OverwriteReplacesTheFileAndLeavesNoTempFile) {
  std::string path = file("ckpt.safetensors");
  save_safetensors(path, sample());
  SafeTensors next;
  const float x = 3;
  next.add_f32("x", {1}, &x);
  save_safetensors(path, next);
  EXPECT_EQ(listing(), std::set<std::string>{"ckpt.safetensors"});
  SafeTensors back = load_safetensors(path);
  ASSERT_EQ(back.tensors.size(), 1u);
  EXPECT_EQ(back.get_f32("x", {1}), std::vector<float>{3});
  // A relative path (folder ".") works too.
  std::string cwd = fs::current_path();
  fs::current_path(dir_);
  save_safetensors("rel.safetensors", next);
  fs::current_path(cwd);
  EXPECT_EQ(load_safetensors(file("rel.safetensors")).get_f32("x"), std::vector<float>{3});
}

TEST_F(SafeTensorsTest, PythonSafetensorsReadsOurFiles) {
  if (std::system("/usr/bin/python3 -c 'import safetensors' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "the Python module 'safetensors' is not installed for /usr/bin/python3";
  SafeTensors st = sample();
  std::string path = file("py.safetensors");
  save_safetensors(path, st);
  std::string script = file("read.py");
  std::ofstream(script) << R"(import sys
import safetensors
try:
    from safetensors import deserialize
except ImportError:
    from safetensors._safetensors_rust import deserialize
with open(sys.argv[1], "rb") as f:
    for name, info in deserialize(f.read()):
        shape = ",".join(str(d) for d in info["shape"])
        print(name, "[" + shape + "]", bytes(info["data"]).hex())
)";
  std::string cmd = "/usr/bin/python3 " + script + " " + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t r = std::fread(buf, 1, sizeof buf, p)) out.append(buf, r);
  ASSERT_EQ(::pclose(p), 0) << out;

  std::set<std::string> got, want;
  size_t start = 0;
  for (size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1)
    got.insert(out.substr(start, nl - start));
  for (const TensorEntry& e : st.tensors) {
    std::string shape;
    for (size_t i = 0; i < e.shape.size(); ++i)
      shape += std::string(i ? "," : "") + std::to_string(e.shape[i]);
    want.insert(e.name + " [" + shape + "] " + hex(e.bytes));
  }
  EXPECT_EQ(got, want) << out;
}

#include "unroll/text/utf8.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include <utf8proc.h>

#include "unroll/core/error.h"

namespace unroll {

namespace {

std::string hex_byte(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

std::string code_point_name(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

[[noreturn]] void invalid(std::string_view bytes, size_t offset, const std::string& source,
                          const char* reason) {
  size_t line = 1;
  for (size_t i = 0; i < offset; ++i)
    if (bytes[i] == '\n') ++line;
  throw Error(source + ": invalid UTF-8 at byte offset " + std::to_string(offset) + " (byte " +
              hex_byte(static_cast<unsigned char>(bytes[offset])) + ", line " +
              std::to_string(line) + ": " + reason +
              "); convert the file to UTF-8 (e.g. with iconv)");
}

}  // namespace

std::string read_text_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found)
    throw Error("cannot open '" + path + "': No such file or directory");
  if (st.type() == fs::file_type::directory)
    throw Error("'" + path +
                "' is a directory, not a text file; give the path of a file inside it");

  errno = 0;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    int e = errno;
    throw Error("cannot open '" + path + "': " + (e ? std::strerror(e) : "unknown error"));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    size_t got = std::fread(buf, 1, sizeof buf, f.get());
    out.append(buf, got);
    if (got < sizeof buf) break;
  }
  if (std::ferror(f.get())) {
    int e = errno;
    throw Error("cannot read '" + path + "': " + (e ? std::strerror(e) : "read error"));
  }
  if (out.empty()) throw Error("'" + path + "' is empty; give a file that contains text");
  return out;
}

std::u32string decode_utf8(std::string_view bytes, const std::string& source) {
  const size_t n = bytes.size();
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());

  if (n >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff)))
    throw Error(source + " looks like UTF-16 (byte-order mark " + hex_byte(p[0]) + " " +
                hex_byte(p[1]) + " at offset 0); convert it to UTF-8 (e.g. with iconv -f UTF-16 " +
                "-t UTF-8)");
  if (const void* z = n ? std::memchr(p, 0, n) : nullptr)
    throw Error(source + " looks like a binary file (NUL byte at offset " +
                std::to_string(static_cast<const unsigned char*>(z) - p) +
                "); give a UTF-8 text file");

  std::u32string out;
  out.reserve(n);
  size_t i = 0;
  if (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) i = 3;  // byte-order mark

  while (i < n) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    int len;
    char32_t cp;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (b < 0xc0) {
      invalid(bytes, i, source, "continuation byte without a lead byte");
    } else if (b < 0xc2) {
      invalid(bytes, i, source, "overlong encoding");
    } else if (b < 0xe0) {
      len = 2;
      cp = b & 0x1f;
    } else if (b < 0xf0) {
      len = 3;
      cp = b & 0x0f;
      if (b == 0xe0) lo = 0xa0;  // below: overlong
      if (b == 0xed) hi = 0x9f;  // above: UTF-16 surrogates
    } else if (b < 0xf5) {
      len = 4;
      cp = b & 0x07;
      if (b == 0xf0) lo = 0x90;  // below: overlong
      if (b == 0xf4) hi = 0x8f;  // above: beyond U+10FFFF
    } else {
      invalid(bytes, i, source, "byte never appears in UTF-8");
    }
    for (int k = 1; k < len; ++k) {
      if (i + k >= n) invalid(bytes, i, source, "sequence cut short by the end of the data");
      const unsigned char c = p[i + k];
      if (c < 0x80 || c > 0xbf)
        invalid(bytes, i, source, "sequence cut short: expected a continuation byte");
      if (k == 1 && (c < lo || c > hi)) {
        const char* why = (b == 0xed)   ? "encodes a UTF-16 surrogate"
                          : (b == 0xf4) ? "encodes a code point above U+10FFFF"
                                        : "overlong encoding";
        invalid(bytes, i, source, why);
      }
      cp = (cp << 6) | (c & 0x3f);
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    if (cp >= 0xd800 && cp <= 0xdfff)
      throw Error("cannot encode " + code_point_name(cp) + " as UTF-8: it is a UTF-16 surrogate");
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp <= 0x10ffff) {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    throw Error("cannot encode " + code_point_name(cp) +
                " as UTF-8: it is above U+10FFFF, the largest Unicode code point");
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

namespace {
std::string normalize(std::string_view text, bool compose) {
  utf8proc_uint8_t* out = nullptr;
  const int opts = UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    utf8proc_ssize_t(text.size()), &out, utf8proc_option_t(opts));
  if (n < 0) throw Error(std::string("cannot normalise the text: ") + utf8proc_errmsg(n));
  std::string r(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
  return r;
}
}  // namespace

std::string utf8_nfc(std::string_view text) { return normalize(text, true); }
std::string utf8_nfd(std::string_view text) { return normalize(text, false); }

size_t display_width(std::string_view text) {
  size_t w = 0;
  for (char32_t c : decode_utf8(text, "text")) w += size_t(std::max(0, utf8proc_charwidth(utf8proc_int32_t(c))));
  return w;
}

}  // namespace unroll

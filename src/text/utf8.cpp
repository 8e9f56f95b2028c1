#include "unroll/text/utf8.h"

#include <utf8proc.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

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

std::string_view without_bom(std::string_view bytes) {
  return bytes.substr(0, 3) == "\xEF\xBB\xBF" ? bytes.substr(3) : bytes;
}

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
  if (const size_t bom = out.size() - without_bom(out).size(); bom > 0) {
    out.erase(0, bom);
    if (out.empty())
      throw Error("'" + path + "' holds only a byte-order mark; give a file that contains text");
  }
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

std::string escape_controls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char buf[16];
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    utf8proc_int32_t cp = -1;
    const utf8proc_ssize_t len =
        utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data()) + i,
                         utf8proc_ssize_t(text.size() - i), &cp);
    if (len <= 0) {  // not UTF-8: the byte, escaped
      std::snprintf(buf, sizeof buf, "\\x%02x", b);
      out += buf;
      ++i;
      continue;
    }
    // C0 (but newline and tab), DEL, C1; and the invisible characters that
    // reorder or break what follows them: bidirectional embeddings,
    // overrides and isolates, and the line and paragraph separators.
    const bool crlf =
        cp == '\r' && i + 1 < text.size() && text[i + 1] == '\n';  // a Windows line end stays
    const bool control = (cp < 0x20 && cp != '\n' && cp != '\t' && !crlf) || cp == 0x7f ||
                         (cp >= 0x80 && cp < 0xa0) || (cp >= 0x202a && cp <= 0x202e) ||
                         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f ||
                         cp == 0x061c || cp == 0x2028 || cp == 0x2029;
    if (!control) {
      out.append(text.substr(i, size_t(len)));
    } else {
      std::snprintf(buf, sizeof buf, cp < 0x80 ? "\\x%02x" : "\\u%04x", unsigned(cp));
      out += buf;
    }
    i += size_t(len);
  }
  return out;
}

std::vector<size_t> grapheme_starts(std::u32string_view text) {
  std::vector<size_t> starts;
  utf8proc_int32_t state = 0;  // the state runs through every pair in order
  for (size_t i = 0; i < text.size(); ++i)
    if (i == 0 || utf8proc_grapheme_break_stateful(utf8proc_int32_t(text[i - 1]),
                                                   utf8proc_int32_t(text[i]), &state))
      starts.push_back(i);
  starts.push_back(text.size());
  return starts;
}

size_t display_width(std::string_view text) {
  // Column by user-perceived character (grapheme cluster), as terminals
  // draw them: the cluster's widest code point, so a ZWJ emoji sequence
  // (man, ZWJ, woman, ZWJ, girl) is one 2-column picture, not 6 columns; and
  // 2 for a cluster with VS16 (U+FE0F, emoji presentation: ❤️) or a flag
  // (two regional-indicator letters).
  const std::u32string t = decode_utf8(text, "text");
  const std::vector<size_t> starts = grapheme_starts(t);
  size_t w = 0;
  for (size_t g = 0; g + 1 < starts.size(); ++g) {
    int width = 0;
    for (size_t j = starts[g]; j < starts[g + 1]; ++j) {
      width = std::max(width, int(utf8proc_charwidth(utf8proc_int32_t(t[j]))));
      if (t[j] == 0xFE0F || (t[j] >= 0x1F1E6 && t[j] <= 0x1F1FF)) width = 2;
    }
    w += size_t(width);
  }
  return w;
}

}  // namespace unroll

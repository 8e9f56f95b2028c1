// Reads the PNG files a browser writes as screenshots (8-bit RGB or RGBA, not
// interlaced) into RGB pixels, so a test can look at what a user sees.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace pngtest {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
  const uint8_t* at(int x, int y) const { return &rgb[(size_t(y) * width + x) * 3]; }
};

inline uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// Decodes bytes; on failure returns false and says why in *err.
inline bool decode_png(const std::string& bytes, Image* img, std::string* err) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 8 || std::string(bytes, 0, 8) != std::string(reinterpret_cast<const char*>(sig), 8))
    return *err = "not a PNG file", false;
  int colour = -1, channels = 0;
  std::string idat;
  for (size_t at = 8; at + 12 <= n;) {
    const uint32_t len = be32(d + at);
    const std::string type(bytes, at + 4, 4);
    if (at + 12 + len > n) return *err = "truncated chunk " + type, false;
    const uint8_t* body = d + at + 8;
    if (type == "IHDR") {
      img->width = int(be32(body));
      img->height = int(be32(body + 4));
      colour = body[9];
      if (body[8] != 8 || body[12] != 0 || (colour != 2 && colour != 6))
        return *err = "only 8-bit, non-interlaced RGB/RGBA PNGs are read", false;
      channels = colour == 6 ? 4 : 3;
    } else if (type == "IDAT") {
      idat.append(reinterpret_cast<const char*>(body), len);
    } else if (type == "IEND") {
      break;
    }
    at += 12 + len;
  }
  if (channels == 0) return *err = "no IHDR chunk", false;
  const size_t stride = size_t(img->width) * channels;
  std::vector<uint8_t> raw((stride + 1) * img->height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) !=
          Z_OK ||
      raw_len != raw.size())
    return *err = "bad image data", false;
  // Undo the per-row filters (PNG spec, section 9), in place.
  std::vector<uint8_t> prev(stride, 0);
  img->rgb.assign(size_t(img->width) * img->height * 3, 0);
  for (int y = 0; y < img->height; ++y) {
    uint8_t* row = &raw[y * (stride + 1) + 1];
    const int filter = row[-1];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= size_t(channels) ? row[i - channels] : 0, b = prev[i],
                c = i >= size_t(channels) ? prev[i - channels] : 0;
      int p = 0;
      switch (filter) {
        case 0:
          break;
        case 1:
          p = a;
          break;
        case 2:
          p = b;
          break;
        case 3:
          p = (a + b) / 2;
          break;
        case 4: {
          const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
          p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          return *err = "bad filter type " + std::to_string(filter), false;
      }
      row[i] = uint8_t(row[i] + p);
    }
    for (int x = 0; x < img->width; ++x)
      for (int k = 0; k < 3; ++k)
        img->rgb[(size_t(y) * img->width + x) * 3 + k] = row[x * channels + k];
    prev.assign(row, row + stride);
  }
  return true;
}

}  // namespace pngtest

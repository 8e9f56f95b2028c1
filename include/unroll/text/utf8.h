// unroll/text/utf8.h — reading text files and strict UTF-8 decoding/encoding.
// Decoding rejects every malformed sequence (overlong forms, surrogates, code
// points above U+10FFFF, truncated sequences, stray continuation bytes) with an
// Error that names the file and the byte offset, so users can find and fix it.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace unroll {

// The bytes of a file or of standard input without the UTF-8 byte-order
// mark at their start, if any: it says how the text is encoded and is not
// text. This is the only place a BOM is dropped; anywhere else U+FEFF is a
// character like any other (cat of two such files leaves one inside).
std::string_view without_bom(std::string_view bytes);

// Reads the whole file as bytes, without_bom. Throws Error if the file is
// missing, is a directory, cannot be read, or is empty (or only a BOM).
std::string read_text_file(const std::string& path);

// Strictly decodes UTF-8 into code points. `source` names the data in error
// messages (usually the file path); byte offsets in errors count from the
// start of `bytes` (for a file, after its byte-order mark, if any). Every
// code point is kept, U+FEFF included. A NUL byte means the data looks
// binary; a UTF-16 byte-order mark is reported as such.
std::u32string decode_utf8(std::string_view bytes, const std::string& source);

// Appends the UTF-8 encoding of cp. Throws Error for surrogates and values above U+10FFFF.
void append_utf8(std::string& out, char32_t cp);

// Encodes a sequence of code points as UTF-8 (see append_utf8).
std::string encode_utf8(std::u32string_view text);

// Unicode normalisation (utf8proc) of valid UTF-8: NFC composes ("e" + U+0301
// becomes "é"), NFD decomposes. Throws Error if the input is not valid UTF-8.
std::string utf8_nfc(std::string_view text);
// The text with its control characters made visible, for a terminal: C0
// controls other than newline, tab and the CR of a CRLF, DEL, the C1 controls, the
// bidirectional formatting characters (U+202A-202E, U+2066-2069, U+200E,
// U+200F, U+061C) and U+2028/2029 become \xHH or \uHHHH (ESC is \x1b), so
// a text cannot move the cursor, recolour or clear the screen, or reorder
// what follows it. Invalid UTF-8 bytes become \xHH too.
std::string escape_controls(std::string_view text);

// Where each user-perceived character (extended grapheme cluster: a letter
// with its combining marks, a Hangul syllable in jamo, an emoji sequence)
// starts, by utf8proc's rules; the last entry is text.size().
std::vector<size_t> grapheme_starts(std::u32string_view text);

// Terminal columns of valid UTF-8 text, per user-perceived character
// (grapheme cluster): its widest code point by utf8proc (wide East Asian
// characters and emoji take two, combining marks none), and two for an emoji
// sequence joined by ZWJ or shown as emoji by VS16.
size_t display_width(std::string_view text);
std::string utf8_nfd(std::string_view text);

}  // namespace unroll

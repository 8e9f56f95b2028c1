// What the HTML pages of inspect/page.h share (see page_parts.h).
#include "page_parts.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <iterator>

#include "unroll/core/error.h"
#include "unroll/inspect/page.h"
#include "unroll_assets.h"  // src/inspect/assets/, embedded at build time

namespace unroll {

namespace {

// s with every character of `from` replaced by the string at the same place in `to`.
std::string replace_chars(const std::string& s, const std::string& from,
                          std::initializer_list<const char*> to) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    const size_t i = from.find(c);
    if (i == std::string::npos)
      out += c;
    else
      out += std::data(to)[i];
  }
  return out;
}

}  // namespace

std::string html_escape(const std::string& s) {
  return replace_chars(s, "&<>\"'", {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"});
}

namespace page {

void require_format(const json& data, const char* format, const char* what) {
  require(data.is_object(),
          std::string(what) + ": the data must be a JSON object (format " + format + ")");
  const json* f = field(data, "format");
  require(!f || (f->is_string() && f->get<std::string>() == format),
          std::string(what) + ": the data is of format " + text_of(f) + ", this page draws " +
              format + "; rebuild it with the same version of unroll");
}

const json* field(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string text_of(const json* v) {
  if (!v || v->is_null()) return "";
  if (v->is_string()) return v->get<std::string>();
  return v->dump(-1, ' ', false, json::error_handler_t::replace);
}

bool number_of(const json* v, double& out) {
  if (!v || !v->is_number()) return false;
  out = v->get<double>();
  return std::isfinite(out);
}

const json& object_or_empty(const json* v) {
  static const json empty = json::object();
  return v && v->is_object() ? *v : empty;
}

const json& array_or_empty(const json* v) {
  static const json empty = json::array();
  return v && v->is_array() ? *v : empty;
}

std::vector<double> numbers_of(const json* v) {
  std::vector<double> out;
  for (const json& x : array_or_empty(v)) {
    double d = NAN;
    number_of(&x, d);
    out.push_back(d);
  }
  return out;
}

std::string fixed(double v, int decimals) {
  // Sized to the number: 1e300 has 301 digits before the point.
  std::string s(size_t(std::snprintf(nullptr, 0, "%.*f", decimals, v)) + 1, '\0');
  std::snprintf(s.data(), s.size(), "%.*f", decimals, v);
  s.pop_back();
  return s;
}

namespace {

// "-" as a real minus sign.
std::string with_minus(const std::string& s) {
  return !s.empty() && s[0] == '-' ? "\u2212" + s.substr(1) : s;
}

}  // namespace

std::string number_html(double v, int digits) {
  if (!std::isfinite(v)) return "&mdash;";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  const std::string s = buf;
  const size_t e = s.find('e');
  if (e == std::string::npos) return with_minus(s);
  const int exponent = std::atoi(s.c_str() + e + 1);
  const std::string mantissa = s.substr(0, e);
  const std::string power = "10<sup>" + with_minus(std::to_string(exponent)) + "</sup>";
  return mantissa == "1" || mantissa == "-1"
             ? with_minus(mantissa.substr(0, mantissa.size() - 1)) + power
             : with_minus(mantissa) + " &times; " + power;
}

std::string embedded_json(const json& data) {
  return replace_chars(data.dump(-1, ' ', false, json::error_handler_t::replace), "<>&",
                       {"\\u003c", "\\u003e", "\\u0026"});
}

const char* const kBaseStyle = assets::base_css;  // src/inspect/assets/base.css

std::string document_start(const std::string& title, const char* style) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
  h += html_escape(title);
  h += "</title>\n<style>";
  h += kBaseStyle;
  h += style;
  h += "</style>\n</head>\n<body>\n<main>\n";
  return h;
}

std::string document_end(const char* command, const char* script, const std::string& data_html) {
  return std::string("<footer>Written by unroll " UNROLL_VERSION " (") + command +
         "). Everything on this page is in this one file.</footer>\n</main>\n" + data_html +
         "<script>" + script + "</script>\n</body>\n</html>\n";
}

std::string header_html(const std::string& title, const std::vector<Item>& facts_html,
                        const std::vector<Item>& paths, const std::string& command) {
  std::string h = "<header>\n<h1>" + html_escape(title) + "</h1>\n<div class=\"facts\">";
  for (const auto& [name, value] : facts_html)
    if (!value.empty()) h += "<span><b>" + html_escape(name) + "</b>" + value + "</span>";
  h += "</div>\n<div class=\"paths\">";
  for (const auto& [name, value] : paths)
    if (!value.empty())
      h += "<span class=\"k\">" + html_escape(name) + "</span><code>" + html_escape(value) +
           "</code>";
  h += "</div>\n";
  if (!command.empty()) h += "<div class=\"cmd\"><code>" + html_escape(command) + "</code></div>\n";
  h += "</header>\n";
  return h;
}

}  // namespace page
}  // namespace unroll

// src/inspect/page_parts.h — what the HTML pages of inspect/page.h share
// (internal to the library): tolerant access to the page data, number
// formatting, JSON that is safe inside <script>, the base style, and the
// document frame with its header and footer.
//
// Everything here that writes markup escapes what it is given as text;
// arguments named `*_html` are markup already and are written as they are.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace unroll::page {

using json = nlohmann::json;

// Throws Error unless `data` is an object whose "format" (when present) is
// `format`; `what` names the page in the message ("cells page").
void require_format(const json& data, const char* format, const char* what);

// data[key], or nullptr when data is not an object or has no such key.
const json* field(const json& j, const char* key);
// A field as display text: strings as they are, numbers as JSON writes them, "" when absent.
std::string text_of(const json* v);
// True (and out set) when v is a finite number.
bool number_of(const json* v, double& out);
const json& object_or_empty(const json* v);
const json& array_or_empty(const json* v);
// An array's numbers, NaN for what is not a finite number (empty when v is not an array).
std::vector<double> numbers_of(const json* v);

// printf "%.*f".
std::string fixed(double v, int decimals);
// v with `digits` significant digits, as HTML: 0.00523, 27, 5.23 × 10<sup>−8</sup>
// (real minus signs); "&mdash;" when v is not finite.
std::string number_html(double v, int digits);

// The data as JSON that is safe inside <script>: no '<' can close the element
// or open a comment, and \u escapes keep it valid JSON.
std::string embedded_json(const json& data);

// The style both pages start from: page, sections, header, tables, SVG text.
extern const char* const kBaseStyle;

// "<!DOCTYPE html> … <body><main>": the title, then kBaseStyle followed by `style`.
std::string document_start(const std::string& title, const char* style);
// The footer naming the command, "</main>", `data_html` (say, JSON blocks),
// the script and the end of the document.
std::string document_end(const char* command, const char* script,
                         const std::string& data_html = "");

// The page header: <h1>title</h1>, a row of facts (name, value as HTML; empty
// values are left out), a grid of paths (name, text) and the command line.
using Item = std::pair<std::string, std::string>;
std::string header_html(const std::string& title, const std::vector<Item>& facts_html,
                        const std::vector<Item>& paths, const std::string& command);

}  // namespace unroll::page

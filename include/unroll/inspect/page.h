// unroll/inspect/page.h — the self-contained HTML page of `unroll cells`: a
// text coloured character by character by a hidden cell, one section per
// probe with its best cells drawn beside it, and gate-saturation scatter plots.
//
// The page has no external resources (no URLs, fonts or image files): CSS and
// JavaScript are inline and the data travels inside the page as JSON, so the
// file can be mailed or opened offline. Everything taken from the data is
// treated as untrusted text: the JSON is embedded with `<`, `>` and `&`
// written as \u escapes, the script builds DOM nodes with textContent, and the
// few strings written into the HTML from C++ go through html_escape.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace unroll {

// Escapes & < > " ' as character references, for HTML text and attribute
// values (double- or single-quoted).
std::string html_escape(const std::string& s);

// The page for data of format "unroll-cells-1" (see docs of `unroll cells`):
//   title, command, model {cell, layers, hidden, vocab, params, checkpoint, text},
//   chars [N], loss [N] (null at 0), top [N][<=5][char, p],
//   series [{id, layer, kind, unit, label, range [lo, hi], values [N]}],
//   default_series, probes [{name, description, binary, values [N],
//   top [{id, corr, accuracy|null}]}], summary {threshold, found [...]},
//   saturation [{layer, gate, left [H], right [H]}].
// Missing optional fields are tolerated. Throws Error when data is not a JSON
// object or names another format.
std::string cells_page_html(const nlohmann::json& data);

}  // namespace unroll

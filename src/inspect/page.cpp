// The HTML page of `unroll cells` (see inspect/page.h).
//
// What is static (header, probe summary, saturation plots) is written here,
// HTML-escaped, so it reads even without JavaScript; what is interactive (the
// coloured text, the probe excerpts) is built by the inline script from the
// embedded JSON, with createElement/textContent only.
#include "unroll/inspect/page.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "page_parts.h"
#include "unroll/core/error.h"
#include "unroll_assets.h"  // src/inspect/assets/, embedded at build time

namespace unroll {

using json = nlohmann::json;
using page::array_or_empty;
using page::embedded_json;
using page::field;
using page::fixed;
using page::number_of;
using page::object_or_empty;
using page::text_of;

namespace {

// ---------------------------------------------------------------- the style

const char* const kStyle = assets::cells_css;  // src/inspect/assets/cells.css

// --------------------------------------------------------------- the script

const std::string kScript =
    std::string(assets::common_js) + assets::textview_js +
    assets::cells_js;  // src/inspect/assets/: common.js, textview.js, cells.js

// ------------------------------------------------------------ static parts

// "+0.83", "−0.83" (a real minus sign).
std::string signed2(double v) { return (v < 0 ? "\u2212" : "+") + fixed(std::fabs(v), 2); }

// 227393 → "227,393".
std::string grouped(const json* v) {
  if (!v || !v->is_number_integer()) return html_escape(text_of(v));
  std::string digits = std::to_string(v->get<long long>()), out;
  size_t lead = digits[0] == '-' ? 1 : 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    out += digits[i];
    size_t left = digits.size() - 1 - i;
    if (i >= lead && left > 0 && left % 3 == 0) out += ',';
  }
  return out;
}

std::string cells_header_html(const json& d) {
  const json& model = object_or_empty(field(d, "model"));
  std::string title = text_of(field(d, "title"));
  if (title.empty()) title = "unroll cells";
  const json n = array_or_empty(field(d, "chars")).size();
  auto text = [&](const char* k) { return html_escape(text_of(field(model, k))); };
  return page::header_html(title,
                           {{"cell", text("cell")},
                            {"layers", text("layers")},
                            {"hidden", text("hidden")},
                            {"vocabulary", text("vocab")},
                            {"parameters", grouped(field(model, "params"))},
                            {"characters", grouped(&n)}},
                           {{"checkpoint", text_of(field(model, "checkpoint"))},
                            {"text", text_of(field(model, "text"))}},
                           text_of(field(d, "command")));
}

// A button that shows the cell in the viewer (the script listens for clicks).
std::string cell_button(const std::string& id, bool known) {
  return "<button type=\"button\" class=\"cid\" data-id=\"" + html_escape(id) + "\"" +
         (known ? "" : " disabled title=\"not among the recorded series\"") + ">" +
         html_escape(id) + "</button>";
}

std::string summary_html(const json& d) {
  const json& summary = object_or_empty(field(d, "summary"));
  double threshold = 0.6;
  number_of(field(summary, "threshold"), threshold);
  std::vector<std::string> found_names;
  for (const json& f : array_or_empty(field(summary, "found")))
    found_names.push_back(text_of(field(f, "probe")));
  std::vector<std::string> ids;
  for (const json& s : array_or_empty(field(d, "series"))) ids.push_back(text_of(field(s, "id")));
  auto known = [&](const std::string& id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };

  const json& probes = array_or_empty(field(d, "probes"));
  std::string h = "<section id=\"summary\">\n<h2>Probes: which cell tracks what</h2>\n";
  h += "<p class=\"note\">Each probe is a property of the text at every character. A cell tracks "
       "it when "
       "their correlation over the text is strong: rows with |corr| &ge; " +
       fixed(threshold, 2) +
       " are highlighted. Accuracy (binary probes): how often the probe is on exactly where the "
       "cell is "
       "above (or below) its best single threshold. Click a cell to colour the text by it.</p>\n";
  if (probes.empty()) return h + "<p class=\"note\">No probes were run.</p>\n</section>\n";
  h += "<table class=\"tbl\">\n<thead><tr><th>probe</th><th>description</th><th>best cell</th>"
       "<th class=\"num\">corr</th><th class=\"num\">accuracy</th></tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < probes.size(); ++i) {
    const json& p = probes[i];
    const std::string name = text_of(field(p, "name"));
    const json& top = array_or_empty(field(p, "top"));
    const json& best = top.empty() ? object_or_empty(nullptr) : object_or_empty(&top[0]);
    const std::string id = text_of(field(best, "id"));
    double corr = 0, acc = 0;
    const bool has_corr = number_of(field(best, "corr"), corr);
    const bool found = (has_corr && std::fabs(corr) >= threshold) ||
                       std::find(found_names.begin(), found_names.end(), name) != found_names.end();
    h += found ? "<tr class=\"found\">" : "<tr>";
    h += "<td><button type=\"button\" class=\"plink\" data-probe=\"" + std::to_string(i) + "\">" +
         html_escape(name) + "</button></td>";
    h += "<td>" + html_escape(text_of(field(p, "description"))) + "</td>";
    h += "<td>" + (id.empty() ? std::string("&mdash;") : cell_button(id, known(id))) + "</td>";
    h += "<td class=\"num\">" + (has_corr ? signed2(corr) : std::string("&mdash;")) + "</td>";
    h += "<td class=\"num\">" +
         (number_of(field(best, "accuracy"), acc) ? fixed(100 * acc, 1) + "%"
                                                  : std::string("&mdash;")) +
         "</td></tr>\n";
  }
  h += "</tbody>\n</table>\n</section>\n";
  return h;
}

const char* gate_name(const std::string& g) {
  if (g == "i") return " (input)";
  if (g == "f") return " (forget)";
  if (g == "o") return " (output)";
  if (g == "r") return " (reset)";
  if (g == "z") return " (update)";
  return "";
}

// One scatter plot: x = fraction of time left-saturated, y = right-saturated.
std::string saturation_svg(const json& s) {
  constexpr double L = 46, T = 8, S = 172, W = L + S + 12, H = T + S + 40;
  auto X = [&](double x) { return fixed(L + S * std::clamp(x, 0.0, 1.0), 1); };
  auto Y = [&](double y) { return fixed(T + S * (1 - std::clamp(y, 0.0, 1.0)), 1); };
  const std::string layer = text_of(field(s, "layer")), gate = text_of(field(s, "gate"));
  const std::string caption = "layer " + layer + ", gate " + gate;
  std::string h = "<figure class=\"sat\"><figcaption>" + html_escape(caption + gate_name(gate)) +
                  "</figcaption>\n<svg width=\"" + fixed(W, 0) + "\" height=\"" + fixed(H, 0) +
                  "\" viewBox=\"0 0 " + fixed(W, 0) + " " + fixed(H, 0) +
                  "\" role=\"img\" aria-label=\"" + html_escape("gate saturation, " + caption) +
                  "\">\n";
  h += "<rect x=\"" + X(0) + "\" y=\"" + Y(1) + "\" width=\"" + fixed(S, 0) + "\" height=\"" +
       fixed(S, 0) + "\" fill=\"#fafbfc\" stroke=\"#c9cfd5\"/>\n";
  for (double t : {0.25, 0.5, 0.75}) {
    h += "<line x1=\"" + X(t) + "\" y1=\"" + Y(0) + "\" x2=\"" + X(t) + "\" y2=\"" + Y(1) +
         "\" stroke=\"#eceff2\"/><line x1=\"" + X(0) + "\" y1=\"" + Y(t) + "\" x2=\"" + X(1) +
         "\" y2=\"" + Y(t) + "\" stroke=\"#eceff2\"/>\n";
  }
  h += "<line x1=\"" + X(0) + "\" y1=\"" + Y(1) + "\" x2=\"" + X(1) + "\" y2=\"" + Y(0) +
       "\" stroke=\"#b7bec5\" stroke-dasharray=\"4 3\"/>\n";
  for (double t : {0.0, 0.5, 1.0}) {
    const std::string label = t == 0.5 ? "0.5" : fixed(t, 0);
    h += "<line x1=\"" + X(t) + "\" y1=\"" + Y(0) + "\" x2=\"" + X(t) + "\" y2=\"" +
         fixed(T + S + 4, 1) + "\" stroke=\"#8d969e\"/><text x=\"" + X(t) + "\" y=\"" +
         fixed(T + S + 15, 1) + "\" text-anchor=\"middle\">" + label + "</text>\n";
    h += "<line x1=\"" + fixed(L - 4, 1) + "\" y1=\"" + Y(t) + "\" x2=\"" + X(0) + "\" y2=\"" +
         Y(t) + "\" stroke=\"#8d969e\"/><text x=\"" + fixed(L - 7, 1) + "\" y=\"" + Y(t) +
         "\" dy=\"3.5\" text-anchor=\"end\">" + label + "</text>\n";
  }
  h += "<text x=\"" + X(0.5) + "\" y=\"" + fixed(H - 6, 1) +
       "\" text-anchor=\"middle\">fraction left-saturated (&lt; 0.1)</text>\n";
  h += "<text transform=\"translate(12 " + Y(0.5) +
       ") rotate(-90)\" text-anchor=\"middle\">fraction right-saturated (&gt; 0.9)</text>\n";
  const json& left = array_or_empty(field(s, "left"));
  const json& right = array_or_empty(field(s, "right"));
  const size_t n = std::min(left.size(), right.size());
  for (size_t u = 0; u < n; ++u) {
    double x = 0, y = 0;
    if (!number_of(&left[u], x) || !number_of(&right[u], y)) continue;
    h += "<circle cx=\"" + X(x) + "\" cy=\"" + Y(y) +
         "\" r=\"2.6\" fill=\"#2f6fce\" fill-opacity=\"0.5\"><title>unit " + std::to_string(u) +
         ": left " + fixed(x, 3) + ", right " + fixed(y, 3) + "</title></circle>\n";
  }
  h += "</svg></figure>\n";
  return h;
}

std::string saturation_html(const json& d) {
  const json& sat = array_or_empty(field(d, "saturation"));
  std::string h = "<section id=\"saturation\">\n<h2>Gate saturation</h2>\n";
  if (sat.empty())
    return h +
           "<p class=\"note\">No gates to show: the model has none (a vanilla RNN), or none "
           "were recorded.</p>\n</section>\n";
  h += "<p class=\"note\">One dot per unit: how often its gate is nearly closed (below 0.1, left) "
       "or nearly open (above 0.9, right) over the text. Dots near the dashed line are almost "
       "always "
       "saturated, at the origin never. Hover a dot for its unit.</p>\n<div class=\"satgrid\">\n";
  // One row per layer, in the order the layers first appear.
  std::vector<std::string> layers;
  for (const json& s : sat) {
    const std::string l = text_of(field(s, "layer"));
    if (std::find(layers.begin(), layers.end(), l) == layers.end()) layers.push_back(l);
  }
  for (const std::string& l : layers) {
    h += "<div class=\"satrow\">\n";
    for (const json& s : sat)
      if (text_of(field(s, "layer")) == l) h += saturation_svg(s);
    h += "</div>\n";
  }
  h += "</div>\n</section>\n";
  return h;
}

}  // namespace

std::string cells_page_html(const json& data) {
  page::require_format(data, "unroll-cells-1", "cells page");
  std::string title = text_of(field(data, "title"));
  if (title.empty()) title = "unroll cells";
  std::string h = page::document_start(title, kStyle);
  h += cells_header_html(data);
  h += summary_html(data);
  h += "<section id=\"viewer\">\n<h2>The text, coloured by one cell</h2>\n"
       "<div class=\"controls\"><label>series<select id=\"series\"></select></label>"
       "<span class=\"legend\" id=\"legend\"></span></div>\n"
       "<div class=\"info\" id=\"info\"></div>\n"
       "<div class=\"text\" id=\"text\"><noscript>The coloured text needs JavaScript; the tables "
       "and "
       "plots on this page do not.</noscript></div>\n</section>\n";
  h += "<section id=\"probes\">\n<h2>Probes and their best cells, side by side</h2>\n"
       "<p class=\"note\">Each excerpt is drawn once per row: P coloured by the probe, #1 by its "
       "best "
       "cell (red negative, blue positive), so a cell that tracks the probe shows the same pattern "
       "in "
       "the same columns.</p>\n<div id=\"probe-list\"></div>\n</section>\n";
  h += saturation_html(data);
  h += page::document_end("unroll cells", kScript.c_str(),
                          "<script type=\"application/json\" id=\"unroll-data\">" +
                              embedded_json(data) + "</script>\n");
  return h;
}

}  // namespace unroll

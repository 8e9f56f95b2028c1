// The HTML page of `unroll cells` over many checkpoints (see inspect/page.h).
//
// The charts and tables are drawn here as SVG and HTML, so they read without
// JavaScript; the text coloured by a cell, with its slider over the
// checkpoints, is built by the inline script (assets/timeline.js) from the
// embedded JSON.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "page_parts.h"
#include "svg.h"
#include "unroll/core/error.h"
#include "unroll/inspect/page.h"
#include "unroll_assets.h"  // src/inspect/assets/, embedded at build time

namespace unroll {

using json = nlohmann::json;
using page::array_or_empty;
using page::field;
using page::fixed;
using page::number_of;
using page::object_or_empty;
using page::text_of;

namespace {

const std::string kStyle =
    std::string(assets::cells_css) + assets::chart_css + assets::timeline_css;
const std::string kScript = std::string(assets::common_js) + assets::textview_js +
                            assets::timeline_js;  // src/inspect/assets/

struct Points {
  std::vector<double> step, tokens;
  bool has_tokens = true;
  bool log_x = false;  // steps spread over decades (a geometric schedule): log10(1 + step)
};

Points points_of(const json& d) {
  Points p;
  for (const json& c : array_or_empty(field(d, "checkpoints"))) {
    double s = NAN, t = NAN;
    number_of(field(c, "step"), s);
    p.has_tokens &= number_of(field(c, "tokens"), t);
    p.step.push_back(s), p.tokens.push_back(t);
  }
  const size_t n = p.step.size();
  p.has_tokens &= n > 0;
  p.log_x = n >= 3 && p.step[1] > 0 && p.step[n - 1] >= 50 * p.step[1];
  return p;
}

// A probe that the text shows (absent "present" counts as shown).
bool present(const json& probe) {
  const json* v = field(probe, "present");
  return !(v && v->is_boolean() && !v->get<bool>());
}

svg::Line line_of(const std::string& name, const std::string& colour, const std::vector<double>& x,
                  const std::vector<double>& y, bool dashed, bool absolute) {
  svg::Line l{name, colour, dashed, x.size() <= 24};
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i)
    l.xy.push_back({x[i], absolute ? std::fabs(y[i]) : y[i]});
  return l;
}

std::string figure(const std::string& caption, const std::vector<svg::Line>& lines,
                   const svg::Axes& axes, const std::string& id = "") {
  return "<figure" + (id.empty() ? std::string() : " id=\"" + html_escape(id) + "\"") +
         "><figcaption>" + html_escape(caption) + "</figcaption>" + svg::legend(lines) +
         svg::chart(lines, axes) + "</figure>\n";
}

std::string step_text(const Points& p, int i) {
  if (i < 0 || size_t(i) >= p.step.size()) return "&mdash;";
  std::string s = "step " + svg::tick_label(p.step[i]);
  if (p.has_tokens)
    s += " <span class=\"note\">(" + svg::tick_label(p.tokens[i]) + " tokens)</span>";
  return s;
}

std::string header(const json& d, const Points& p) {
  const json& model = object_or_empty(field(d, "model"));
  std::string title = text_of(field(d, "title"));
  if (title.empty()) title = "unroll cells across training";
  auto text = [&](const char* k) { return html_escape(text_of(field(model, k))); };
  const size_t shown = array_or_empty(field(d, "chars")).size();
  std::string chars = text("characters");
  if (!chars.empty() && std::to_string(shown) != chars)
    chars += " (the first " + std::to_string(shown) + " shown)";
  std::string steps = p.step.empty() ? std::string()
                                     : svg::tick_label(p.step.front()) + " &ndash; " +
                                           svg::tick_label(p.step.back());
  return page::header_html(title,
                           {{"cell", text("cell")},
                            {"layers", text("layers")},
                            {"hidden", text("hidden")},
                            {"vocabulary", text("vocab")},
                            {"parameters", text("params")},
                            {"checkpoints", std::to_string(p.step.size())},
                            {"steps", steps},
                            {"characters", chars}},
                           {{"text", text_of(field(model, "text"))}}, text_of(field(d, "command")));
}

// When each probe's cell appears: the table and |corr| against step (and tokens).
std::string appear_html(const json& d, const Points& p, double threshold) {
  const json& probes = array_or_empty(field(d, "probes"));
  std::string h = "<section id=\"appear\">\n<h2>When each probe's cell appears</h2>\n";
  h += "<p class=\"note\">At every checkpoint each probe's best cell is the hidden unit (h or c) "
       "whose activations over the text correlate most with it. A probe counts as found from the "
       "first checkpoint where that |correlation| reaches " +
       fixed(threshold, 2) +
       ". <i>Same unit since</i>: from that checkpoint on, the best cell is the one that is best "
       "at the end.</p>\n";
  h += "<table class=\"tbl\" id=\"appear-table\">\n<thead><tr><th>probe</th><th>description</th>"
       "<th>first reaches " +
       fixed(threshold, 2) +
       "</th><th>cell then</th><th>best cell at the end</th><th class=\"num\">corr at the "
       "end</th><th>same unit since</th></tr></thead>\n<tbody>\n";
  std::vector<svg::Line> by_step, by_tokens;
  size_t colour = 0;
  for (const json& pr : probes) {
    const std::string name = text_of(field(pr, "name"));
    h += "<tr data-probe=\"" + html_escape(name) + "\"><td>" + html_escape(name) + "</td><td>" +
         html_escape(text_of(field(pr, "description"))) + "</td>";
    if (!present(pr)) {
      h += "<td colspan=\"5\" class=\"note\">not in this text</td></tr>\n";
      continue;
    }
    double first = -1, since = -1;
    number_of(field(pr, "first"), first);
    number_of(field(pr, "same_since"), since);
    const json& ids = array_or_empty(field(pr, "best_id"));
    const std::vector<double> corr = page::numbers_of(field(pr, "best_corr"));
    const std::string first_id =
        first >= 0 && size_t(first) < ids.size() ? text_of(&ids[size_t(first)]) : "";
    h += "<td class=\"first\" data-first=\"" + (first >= 0 ? std::to_string(int(first)) : "") +
         "\">" + (first >= 0 ? step_text(p, int(first)) : "not reached") + "</td>";
    h += "<td>" + (first_id.empty() ? std::string("&mdash;") : html_escape(first_id)) + "</td>";
    h += "<td>" + html_escape(text_of(field(pr, "final_id"))) + "</td>";
    h += "<td class=\"num\">" + (corr.empty() ? std::string("&mdash;") : fixed(corr.back(), 3)) +
         "</td>";
    h += "<td>" + step_text(p, int(since)) + "</td></tr>\n";
    const std::string c = svg::kColours[colour++ % 7];
    by_step.push_back(line_of(name, c, p.step, corr, false, true));
    if (p.has_tokens) by_tokens.push_back(line_of(name, c, p.tokens, corr, false, true));
  }
  h += "</tbody>\n</table>\n";
  svg::Axes a{"training step", "|correlation| of the best cell"};
  a.log_x = p.log_x, a.y_lo = 0, a.y_hi = 1, a.y_marks = {threshold};
  h += "<div class=\"charts\">" +
       figure("The best cell's |correlation| with each probe, against step", by_step, a,
              "corr-step");
  if (p.has_tokens) {
    a.x = "tokens seen";
    h += figure("The same against tokens seen", by_tokens, a, "corr-tokens");
  }
  return h + "</div>\n</section>\n";
}

// The best cell at each checkpoint against the cell that is best at the end.
std::string identity_html(const json& d, const Points& p) {
  std::string h = "<section id=\"identity\">\n<h2>Is it the same cell throughout?</h2>\n";
  h += "<p class=\"note\">For each probe: the |correlation| of whichever cell is best at each "
       "checkpoint (solid), and of the one cell that is best at the end (dashed). Where the two "
       "meet, the final cell is already the best one.</p>\n<div class=\"charts\">";
  for (const json& pr : array_or_empty(field(d, "probes"))) {
    if (!present(pr)) continue;
    const std::string name = text_of(field(pr, "name")), fin = text_of(field(pr, "final_id"));
    const std::vector<double> best = page::numbers_of(field(pr, "best_corr"));
    const std::vector<double> final_corr = page::numbers_of(field(pr, "final_corr"));
    // The best unit and the steps it held that place, in order.
    std::string changes;
    const json& ids = array_or_empty(field(pr, "best_id"));
    for (size_t i = 0; i < ids.size() && i < p.step.size(); ++i)
      if (i == 0 || text_of(&ids[i]) != text_of(&ids[i - 1]))
        changes += (changes.empty() ? "" : ", ") + text_of(&ids[i]) + " from step " +
                   svg::tick_label(p.step[i]);
    svg::Axes a{"training step", "|correlation|"};
    a.log_x = p.log_x, a.y_lo = 0, a.y_hi = 1;
    h += "<figure class=\"small\"><figcaption>" + html_escape(name) +
         "</figcaption><p class=\"note changes\">best: " + html_escape(changes) + "</p>" +
         svg::legend({{"best at each step", svg::kColours[0]},
                      {fin + " (best at the end)", svg::kColours[1], true}}) +
         svg::chart({line_of("best at each step", svg::kColours[0], p.step, best, false, true),
                     line_of(fin, svg::kColours[1], p.step, final_corr, true, true)},
                    a) +
         "</figure>\n";
  }
  return h + "</div>\n</section>\n";
}

// How far each layer's states moved, and the text's loss.
std::string drift_html(const json& d, const Points& p) {
  std::vector<svg::Line> moved, cka, loss;
  size_t colour = 0;
  for (const json& l : array_or_empty(field(d, "drift"))) {
    const std::string layer = "layer " + text_of(field(l, "layer"));
    const std::string c = svg::kColours[colour++ % 7];
    moved.push_back(
        line_of(layer, c, p.step, page::numbers_of(field(l, "mean_abs")), false, false));
    cka.push_back(line_of(layer + " against the first", c, p.step,
                          page::numbers_of(field(l, "cka_first")), false, false));
    cka.push_back(line_of(layer + " against the last", c, p.step,
                          page::numbers_of(field(l, "cka_last")), true, false));
  }
  std::vector<double> mean_loss;
  for (const json& c : array_or_empty(field(d, "checkpoints"))) {
    double v = NAN;
    number_of(field(c, "mean_loss"), v);
    mean_loss.push_back(v);
  }
  loss.push_back(line_of("loss on this text", svg::kColours[0], p.step, mean_loss, false, false));
  double rows = 0;
  number_of(field(object_or_empty(field(d, "summary")), "cka_rows"), rows);
  std::string h = "<section id=\"drift\">\n<h2>How far the hidden states moved</h2>\n";
  h += "<p class=\"note\">Mean |h<sub>step</sub> &minus; h<sub>first</sub>| over the text and "
       "the units of each layer; and linear CKA (Kornblith et al. 2019) between each "
       "checkpoint's states and the first's (solid) or the last's (dashed), over " +
       fixed(rows, 0) +
       " characters evenly spaced: 1 for the same states up to rotation and scale, near 0 for "
       "unrelated ones.</p>\n<div class=\"charts\">";
  svg::Axes a{"training step", "mean |h \u2212 h_first|"};
  a.log_x = p.log_x;
  h += figure("Distance from the first checkpoint's states", moved, a, "drift-abs");
  a.y = "linear CKA", a.y_lo = 0, a.y_hi = 1;
  h += figure("Similarity to the first and the last checkpoint's states", cka, a, "drift-cka");
  svg::Axes b{"training step", "nats per character"};
  b.log_x = p.log_x;
  h += figure("The loss on this text", loss, b, "text-loss");
  return h + "</div>\n</section>\n";
}

}  // namespace

std::string cells_timeline_page_html(const json& data) {
  page::require_format(data, "unroll-cells-timeline-1", "cells timeline page");
  const Points p = points_of(data);
  double threshold = 0.6;
  number_of(field(object_or_empty(field(data, "summary")), "threshold"), threshold);
  std::string title = text_of(field(data, "title"));
  if (title.empty()) title = "unroll cells across training";
  std::string h = page::document_start(title, kStyle.c_str());
  h += header(data, p);
  h += "<section id=\"viewer\">\n<h2>The text, coloured by one cell, checkpoint by "
       "checkpoint</h2>\n<p class=\"note\">Move the slider (or press &larr; and &rarr;) to see the "
       "same cell on the same text at every checkpoint; the loss and the guesses under the "
       "pointer are the checkpoint's.</p>\n"
       "<div class=\"controls\"><label>cell<select id=\"series\"></select></label>"
       "<button type=\"button\" id=\"play\">play</button>"
       "<input type=\"range\" id=\"slider\" min=\"0\" max=\"0\" value=\"0\" step=\"1\" "
       "aria-label=\"checkpoint\">"
       "<span id=\"at\" class=\"at\"></span>"
       "<span class=\"legend\" id=\"legend\"></span></div>\n"
       "<div class=\"info\" id=\"info\"></div>\n"
       "<div class=\"text\" id=\"text\"><noscript>The coloured text needs JavaScript; the tables "
       "and charts on this page do not.</noscript></div>\n</section>\n";
  h += appear_html(data, p, threshold);
  h += identity_html(data, p);
  h += drift_html(data, p);
  json embedded = data;  // the page's script needs the text, the checkpoints and the series
  embedded.erase("probes");
  embedded.erase("drift");
  h += page::document_end("unroll cells", kScript.c_str(),
                          "<script type=\"application/json\" id=\"unroll-data\">" +
                              page::embedded_json(embedded) + "</script>\n");
  return h;
}

}  // namespace unroll

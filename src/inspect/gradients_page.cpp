// The HTML page of `unroll gradients` (see inspect/page.h).
//
// Everything is drawn here: three charts as inline SVG (one polyline per model
// and layer, k on a linear x axis, the norm on a log y axis), a table of the
// fitted per-step factors and the scalar example. The small inline script only
// adds hovering (the nearest line's value at the k under the pointer), reading
// each chart's own values from a JSON block written beside it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <vector>

#include "page_parts.h"
#include "svg.h"
#include "unroll/inspect/page.h"
#include "unroll_assets.h"  // src/inspect/assets/, embedded at build time

namespace unroll {

using json = nlohmann::json;
using page::array_or_empty;
using page::field;
using page::fixed;
using page::number_html;
using page::number_of;
using page::text_of;

namespace {

// ---------------------------------------------------------------- the style

const char* const kStyle = assets::gradients_css;  // src/inspect/assets/gradients.css

// --------------------------------------------------------------- the script

const std::string kScript =
    std::string(assets::common_js) + assets::gradients_js;  // src/inspect/assets/gradients.js

// ------------------------------------------------------------------ the data

// Below this a value is drawn at the bottom of its axis (with values ≤ 0).
constexpr double kTiny = 1e-30;

bool drawable(double v) { return std::isfinite(v) && v >= kTiny; }

// Line colours, one per model (ten that stay apart on white), and dashes, one per layer.
const char* const kPalette[] = {"#2166c4", "#e8710a", "#1b9e57", "#c2185b", "#7b4fc9",
                                "#0097a7", "#8d6e3f", "#c9a000", "#5f6b76", "#e377c2"};
const char* const kDashes[] = {"", "7 4", "2 3", "9 3 2 3"};

// One (model, layer): what the charts and the table show of it.
struct Series {
  int id = 0;  // position on the page, shared by every chart (data-s)
  std::string label, source;
  int layer = 1;
  std::string colour, dash;
  std::vector<double> rel, jacobian, abs;  // NaN where the data has no number
  double factor = NAN, jacobian_factor = NAN;
  const json* w_hh = nullptr;
  std::string name() const { return label + " \u00B7 layer " + std::to_string(layer); }
};

double number_or_nan(const json* v) {
  double d = NAN;
  return number_of(v, d) ? d : NAN;
}

std::vector<Series> series_of(const json& data) {
  std::vector<Series> out;
  const json& models = array_or_empty(field(data, "models"));
  for (size_t m = 0; m < models.size(); ++m) {
    const json& model = models[m];
    std::string label = text_of(field(model, "label"));
    if (label.empty()) label = "model " + std::to_string(m + 1);
    const json& layers = array_or_empty(field(model, "per_layer"));
    for (size_t l = 0; l < layers.size(); ++l) {
      const json& pl = layers[l];
      Series s;
      s.id = int(out.size());
      s.label = label;
      s.source = text_of(field(model, "source"));
      double layer = 0;
      s.layer = number_of(field(pl, "layer"), layer) ? int(layer) : int(l) + 1;
      s.colour = kPalette[m % std::size(kPalette)];
      s.dash = kDashes[std::min(l, std::size(kDashes) - 1)];
      s.abs = page::numbers_of(field(pl, "loss_grad"));
      s.rel = page::numbers_of(field(pl, "loss_grad_rel"));
      if (s.rel.empty() && !s.abs.empty() && drawable(s.abs[0]))
        for (double v : s.abs) s.rel.push_back(v / s.abs[0]);
      s.jacobian = page::numbers_of(field(pl, "jacobian"));
      s.factor = number_or_nan(field(pl, "factor"));
      s.jacobian_factor = number_or_nan(field(pl, "jacobian_factor"));
      s.w_hh = field(pl, "w_hh");
      out.push_back(std::move(s));
    }
  }
  return out;
}

// ------------------------------------------------------------------- the axes

// A log axis in whole decades around every drawable value of the curves
// (svg.h); -1..0 when there is none.
svg::Decades log_axis(const std::vector<const std::vector<double>*>& curves, int max_labels) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* c : curves)
    for (double v : *c)
      if (drawable(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(lo <= hi)) return {};  // nothing to draw
  return svg::decades(lo, hi, max_labels);
}

using svg::decade_label;
using svg::line;
using svg::text;

// A short sample of a series' line, for legends and the table.
std::string swatch(const Series& s) {
  return "<svg class=\"sw\" width=\"36\" height=\"10\" aria-hidden=\"true\">" +
         line(1, 5, 35, 5,
              "stroke=\"" + s.colour + "\" stroke-width=\"2.4\"" +
                  (s.dash.empty() ? "" : " stroke-dasharray=\"" + s.dash + "\"")) +
         "</svg>";
}

// ----------------------------------------------------------------- the charts

struct Chart {
  const char* id;                       // element id of the figure
  std::vector<double> Series::*values;  // what it draws
  double Series::*factor;               // the fitted factor the legend gives (or nullptr)
  const char* y_title;
  double height;
  int max_labels;  // labelled decades at most
};

// One chart's frame: distance k = 0..K across, the decades of `a` up (a
// value too small to draw sits on the bottom edge).
svg::Frame frame_of(const Chart& c, int K, const svg::Decades& a) {
  svg::Frame f;
  f.W = 1140, f.H = c.height, f.left = 74, f.right = 18, f.top = 14, f.bottom = 48;
  f.x0 = 0, f.x1 = K, f.y0 = a.lo, f.y1 = a.hi;
  f.log = true;
  return f;
}
double y_of(const svg::Frame& f, double v) { return drawable(v) ? f.py(v) : f.box_bottom(); }

std::string axes_svg(const svg::Frame& f, const svg::Decades& a, int K, const Chart& c) {
  const double x0 = f.left, x1 = f.box_right(), y0 = f.top, y1 = f.box_bottom();
  std::string h = "<rect x=\"" + fixed(x0, 1) + "\" y=\"" + fixed(y0, 1) + "\" width=\"" +
                  fixed(x1 - x0, 1) + "\" height=\"" + fixed(y1 - y0, 1) +
                  "\" fill=\"#fcfcfd\" stroke=\"#c9cfd5\"/>\n";
  // Horizontal lines: every decade (all but the labelled ones left out over more than 60
  // decades; 2…9 × 10^d added over 6 or fewer); labels every step.
  const int span = a.hi - a.lo;
  for (int d = a.lo; d <= a.hi; ++d) {
    const double y = f.py_axis(d);
    const bool labelled = (d - a.lo) % a.step == 0;
    if (d > a.lo && d < a.hi && (labelled || span <= 60))
      h += line(x0, y, x1, y,
                d == 0     ? "stroke=\"#aeb6be\""
                : labelled ? "stroke=\"#e1e5e9\""
                           : "stroke=\"#eff1f3\"") +
           "\n";
    if (labelled)
      h += "<g class=\"tick-y\" data-decade=\"" + std::to_string(d) + "\">" +
           line(x0 - 5, y, x0, y, "stroke=\"#8d969e\"") +
           text(x0 - 8, y + 4, "end", decade_label(d)) + "</g>\n";
    if (span <= 6 && d < a.hi)
      for (int m = 2; m <= 9; ++m) {
        const double ym = f.py(m * std::pow(10.0, d));
        h += line(x0, ym, x1, ym, "stroke=\"#f3f4f6\"") +
             line(x0 - 3, ym, x0, ym, "stroke=\"#b5bcc3\"");
      }
  }
  // Vertical lines at the k ticks.
  const int step = std::max(1, int(std::lround(svg::nice_step(K, 12))));
  for (int k = 0; k <= K; k += step) {
    const double x = f.px(k);
    if (k > 0 && k < K) h += line(x, y0, x, y1, "stroke=\"#f0f2f4\"");
    h += line(x, y1, x, y1 + 5, "stroke=\"#8d969e\"") +
         text(x, y1 + 18, "middle", std::to_string(k)) + "\n";
  }
  h += svg::x_title(f, "distance k (steps back from T)", "class=\"ttl\"") + "\n" +
       svg::y_title(f, c.y_title, "class=\"ttl\"") + "\n";
  return h;
}

// A value rounded to 4 significant digits for the hover script (null when not finite).
json rounded(double v) {
  if (!std::isfinite(v)) return nullptr;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return std::strtod(buf, nullptr);
}

std::string chart_html(const std::vector<Series>& all, const Chart& c, int K) {
  std::vector<const Series*> shown;
  std::vector<const std::vector<double>*> curves;
  for (const Series& s : all)
    if (!(s.*c.values).empty()) shown.push_back(&s), curves.push_back(&(s.*c.values));
  if (shown.empty()) return "";

  const svg::Decades a = log_axis(curves, c.max_labels);
  const svg::Frame f = frame_of(c, K, a);
  const std::string W = fixed(f.W, 0), H = fixed(f.H, 0);
  std::string h = "<figure class=\"chart\" id=\"" + std::string(c.id) + "\">\n";
  h += "<svg class=\"plot\" width=\"" + W + "\" height=\"" + H + "\" viewBox=\"0 0 " + W + " " + H +
       "\" role=\"img\">\n";
  h += axes_svg(f, a, K, c);

  json hover = {{"W", f.W},
                {"H", f.H},
                {"K", K},
                {"x0", f.left},
                {"x1", f.box_right()},
                {"y0", f.top},
                {"y1", f.box_bottom()},
                {"lo", a.lo},
                {"hi", a.hi}};
  json& hs = hover["s"] = json::array();
  std::vector<std::pair<const Series*, int>> clamped;
  for (const Series* s : shown) {
    const std::vector<double>& v = s->*c.values;
    const size_t n = std::min(v.size(), size_t(K) + 1);
    std::string pts;
    json hv = json::array();
    int low = 0;
    for (size_t k = 0; k < n; ++k) {
      if (!drawable(v[k])) ++low;
      if (k) pts += ' ';
      pts += fixed(f.px(double(k)), 1) + "," + fixed(y_of(f, v[k]), 1);
      hv.push_back(rounded(v[k]));
    }
    if (low) clamped.emplace_back(s, low);
    h += "<polyline class=\"s\" data-s=\"" + std::to_string(s->id) + "\" stroke=\"" + s->colour +
         "\"" + (s->dash.empty() ? "" : " stroke-dasharray=\"" + s->dash + "\"") + " points=\"" +
         pts + "\"><title>" + html_escape(s->name()) + "</title></polyline>\n";
    hs.push_back(
        {{"i", s->id}, {"name", s->label}, {"layer", s->layer}, {"c", s->colour}, {"v", hv}});
  }
  h += line(f.px(0), f.top, f.px(0), f.box_bottom(),
            "class=\"guide\" stroke=\"#6b747c\" stroke-dasharray=\"3 3\" visibility=\"hidden\"") +
       "\n<circle class=\"dot\" cx=\"0\" cy=\"0\" r=\"4.5\" stroke=\"#fff\" stroke-width=\"1.5\" "
       "visibility=\"hidden\"/>\n</svg>\n<div class=\"tip\" hidden></div>\n";

  h += "<ul class=\"legend\">\n";
  for (const Series* s : shown) {
    h += "<li data-s=\"" + std::to_string(s->id) + "\">" + swatch(*s) +
         "<span><span class=\"lab\">" + html_escape(s->label) +
         "</span><span class=\"sub\">layer " + std::to_string(s->layer);
    if (c.factor && std::isfinite(s->*c.factor))
      h += " &middot; &times;&thinsp;" + fixed(s->*c.factor, 3) + " per step";
    h += "</span></span></li>\n";
  }
  h += "</ul>\n";

  if (!clamped.empty()) {
    h += "<p class=\"note clamped\">Values &le; 0 or below 10<sup>&minus;30</sup> are drawn at the "
         "bottom of the axis: ";
    for (size_t i = 0; i < clamped.size(); ++i)
      h += (i ? "; " : "") + html_escape(clamped[i].first->name()) + " (" +
           std::to_string(clamped[i].second) + (clamped[i].second == 1 ? " value)" : " values)");
    h += ".</p>\n";
  }
  h += "<script type=\"application/json\" class=\"chart-data\">" + page::embedded_json(hover) +
       "</script>\n</figure>\n";
  return h;
}

// ------------------------------------------------------------------ the table

std::string factor_html(double f) {
  if (!std::isfinite(f)) return "&mdash;";
  const bool flat = std::fabs(f - 1) <= 0.02 + 1e-12;
  const char* kind = flat ? "flat" : f < 1 ? "vanishing" : "exploding";
  const char* word = flat ? "&asymp; 1" : kind;
  return "&times;&thinsp;" + fixed(f, 3) + "<span class=\"tag " + kind + "\">" + word + "</span>";
}

double at(const std::vector<double>& v, int k) {
  return k >= 0 && size_t(k) < v.size() ? v[size_t(k)] : NAN;
}

// The gate blocks of W_hh as rows of block name, ρ, σ_max.
std::string blocks_html(const json* w_hh) {
  const json& blocks = array_or_empty(w_hh);
  if (blocks.empty()) return "&mdash;";
  std::string h = "<table class=\"blocks\">";
  for (const json& b : blocks) {
    h += "<tr><td>" + html_escape(text_of(field(b, "block"))) + "</td>";
    for (const char* k : {"spectral_radius", "sigma_max"}) {
      const double v = number_or_nan(field(b, k));
      // Three decimals, as the factors; a large value (a fresh model scaled
      // far up) in four significant digits rather than hundreds of them.
      h += "<td>" + (std::isfinite(v) && std::fabs(v) < 1e4 ? fixed(v, 3) : number_html(v, 4)) +
           "</td>";
    }
    h += "</tr>";
  }
  return h + "</table>";
}

std::string table_html(const std::vector<Series>& all, int K) {
  const int k50 = std::min(50, K);
  const std::string ks = std::to_string(k50);
  std::string h =
      "<section id=\"factors\">\n<h2>Per-step factors</h2>\n<p class=\"note intro\">The factor is "
      "exp of the slope of log&nbsp;norm against k (a least-squares fit): the norm changes by "
      "about "
      "that much per step back. Below 0.98 the gradient vanishes, above 1.02 it explodes; &rho; is "
      "the spectral radius of each recurrent weight block, &sigma;<sub>max</sub> its largest "
      "singular value.</p>\n";
  if (all.empty()) return h + "<p class=\"note\">No models in this data.</p>\n</section>\n";
  h += "<div class=\"wide\"><table class=\"tbl\">\n<thead><tr><th>model</th><th "
       "class=\"num\">layer</th>"
       "<th>loss gradient<br>factor per step</th><th>Jacobian<br>factor per step</th>"
       "<th class=\"num\">loss gradient at<br>k = " +
       ks +
       " (&divide; k = 0)</th>"
       "<th class=\"num\">Jacobian norm<br>at k = " +
       ks +
       "</th>"
       "<th>W<sub>hh</sub> block,<br>&rho; and &sigma;<sub>max</sub></th></tr></thead>\n<tbody>\n";
  for (const Series& s : all) {
    h += "<tr data-s=\"" + std::to_string(s.id) + "\"><td class=\"model\">" + swatch(s) +
         html_escape(s.label);
    if (!s.source.empty() && s.label.find(s.source) == std::string::npos)
      h += "<span class=\"src\">" + html_escape(s.source) + "</span>";
    h += "</td><td class=\"num\">" + std::to_string(s.layer) + "</td><td class=\"factor\">" +
         factor_html(s.factor) + "</td><td class=\"factor\">" + factor_html(s.jacobian_factor) +
         "</td><td class=\"num\">" + number_html(at(s.rel, k50), 3) + "</td><td class=\"num\">" +
         number_html(at(s.jacobian, k50), 3) + "</td><td>" + blocks_html(s.w_hh) + "</td></tr>\n";
  }
  return h + "</tbody>\n</table></div>\n</section>\n";
}

// ------------------------------------------------------ the scalar example

std::string scalar_html(const json& data) {
  const json* scalar = field(data, "scalar");
  if (!scalar || !scalar->is_object()) return "";
  double w = NAN;
  number_of(field(*scalar, "w"), w);
  const std::string ws = number_html(w, 4);
  std::string h =
      "<section id=\"scalar\">\n<h2>The scalar example: h<sub>t</sub> = "
      "f(w&middot;h<sub>t&minus;1</sub> + "
      "x<sub>t</sub>) with w = " +
      ws +
      "</h2>\n<p class=\"note intro\">One unit, one "
      "weight: backpropagation multiplies by &part;h<sub>t</sub>/&part;h<sub>t&minus;1</sub> "
      "once per step, and here that factor is a single number.</p>\n<div class=\"scalar\">\n";

  h += "<div>\n<h3>Linear unit, f(a) = a</h3>\n<p>Every step multiplies the gradient by w, so "
       "&part;h<sub>t</sub>/&part;h<sub>0</sub> = w<sup>t</sup>: it explodes when |w| &gt; 1 and "
       "vanishes when |w| &lt; 1.</p>\n<table class=\"tbl\"><thead><tr><th class=\"num\">t</th>"
       "<th class=\"num\">&part;h<sub>t</sub>/&part;h<sub>0</sub></th></tr></thead><tbody>\n";
  const json& linear = array_or_empty(field(*scalar, "linear"));
  for (size_t t = 0; t < linear.size(); ++t)
    h += "<tr><td class=\"num\">" + std::to_string(t + 1) + "</td><td class=\"num\">" +
         number_html(number_or_nan(&linear[t]), 4) + "</td></tr>\n";
  h += "</tbody></table>\n</div>\n";

  h +=
      "<div>\n<h3>tanh unit, f = tanh</h3>\n<p>Each step also multiplies by tanh&prime; = 1 "
      "&minus; "
      "h<sub>t</sub><sup>2</sup>, which is below 1 and near 0 when the unit saturates "
      "(|h<sub>t</sub>| close to 1), so the product can shrink even when |w| &gt; 1.</p>\n"
      "<table class=\"tbl\"><thead><tr><th class=\"num\">t</th><th class=\"num\">h<sub>t</sub></th>"
      "<th class=\"num\">w&middot;(1 &minus; h<sub>t</sub><sup>2</sup>)</th>"
      "<th class=\"num\">&part;h<sub>t</sub>/&part;h<sub>0</sub></th></tr></thead><tbody>\n";
  const json& steps = array_or_empty(field(*scalar, "tanh"));
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& st = steps[i];
    double t = double(i + 1);
    number_of(field(st, "t"), t);
    h += "<tr><td class=\"num\">" + number_html(t, 6) + "</td>";
    for (const char* k : {"h", "local", "product"})
      h += "<td class=\"num\">" + number_html(number_or_nan(field(st, k)), 4) + "</td>";
    h += "</tr>\n";
  }
  h += "</tbody></table>\n</div>\n</div>\n</section>\n";
  return h;
}

}  // namespace

std::string gradients_page_html(const json& data) {
  page::require_format(data, "unroll-gradients-1", "gradients page");
  const std::vector<Series> series = series_of(data);

  // Distances: 0..K as the data says, or as long as the longest curve.
  size_t longest = 0;
  for (const Series& s : series)
    longest = std::max({longest, s.rel.size(), s.jacobian.size(), s.abs.size()});
  double k_given = 0;
  number_of(field(data, "K"), k_given);
  const int K = std::max({1, int(std::clamp(k_given, 0.0, 1e6)), int(longest) - 1});

  std::string title = text_of(field(data, "title"));
  if (title.empty()) title = "unroll gradients";
  std::string h = page::document_start(title, kStyle);
  const size_t n_models = array_or_empty(field(data, "models")).size();
  h += page::header_html(title,
                         {{"models", std::to_string(n_models)},
                          {"curves", std::to_string(series.size())},
                          {"distances", "k = 0 &hellip; " + std::to_string(K)},
                          {"positions averaged", html_escape(text_of(field(data, "samples")))}},
                         {{"text", text_of(field(data, "text"))}}, text_of(field(data, "command")));

  const Chart rel{
      "chart-rel", &Series::rel, &Series::factor, "norm relative to k = 0 (log scale)", 400, 9};
  const Chart jac{"chart-jac",
                  &Series::jacobian,
                  &Series::jacobian_factor,
                  "spectral norm (log scale)",
                  400,
                  9};
  const Chart abs{"chart-abs", &Series::abs, nullptr, "norm (log scale)", 270, 5};
  const std::string none = "<p class=\"note\">No models in this data.</p>\n";

  h +=
      "<section "
      "id=\"loss-rel\">\n<h2>&#8214;&part;L<sub>T</sub>/&part;h<sub>T&minus;k</sub>&#8214; "
      "relative to k = 0</h2>\n<p class=\"note intro\">How much of the gradient of the loss at "
      "step T "
      "reaches the hidden state k steps earlier. Backpropagation through time multiplies it by the "
      "step Jacobian &part;h<sub>t</sub>/&part;h<sub>t&minus;1</sub> once per step, so on this log "
      "scale a straight line means a constant factor per step: falling, the gradient vanishes; "
      "rising, it explodes. The legend gives each line&rsquo;s fitted factor; hover a line for its "
      "values.</p>\n";
  const std::string a = chart_html(series, rel, K);
  h += (a.empty() ? none : a) + "</section>\n";

  h += "<section "
       "id=\"jacobian\">\n<h2>&#8214;&part;h<sub>T</sub>/&part;h<sub>T&minus;k</sub>&#8214; "
       "(spectral norm)</h2>\n<p class=\"note intro\">The largest factor by which a change of "
       "h<sub>T&minus;k</sub> can change h<sub>T</sub> (same layer): the product of k step "
       "Jacobians, measured without the loss. It is 1 at k = 0.</p>\n";
  const std::string b = chart_html(series, jac, K);
  h += (!b.empty()       ? b
        : series.empty() ? none
                         : "<p class=\"note\">The Jacobian was not measured (it is left out with "
                           "--no-jacobian).</p>\n");
  h += "</section>\n";

  h += "<section "
       "id=\"loss-abs\">\n<h2>&#8214;&part;L<sub>T</sub>/&part;h<sub>T&minus;k</sub>&#8214;, "
       "not divided</h2>\n<p class=\"note intro\">The same gradient in absolute terms (mean over "
       "positions), to compare its size between models and layers.</p>\n";
  const std::string c = chart_html(series, abs, K);
  h += (c.empty() ? none : c) + "</section>\n";

  h += table_html(series, K);
  h += scalar_html(data);
  return h + page::document_end("unroll gradients", kScript.c_str());
}

}  // namespace unroll

// The chart parts of every page (src/inspect/svg.h).
#include "svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "page_parts.h"
#include "unroll/inspect/page.h"

namespace unroll::svg {

double nice_step(double span, int n) {
  const double raw = span / std::max(n, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(std::max(raw, 1e-300))));
  for (double m : {1.0, 2.0, 5.0})
    if (m * mag >= raw * (1 - 1e-12)) return m * mag;
  return 10 * mag;
}

std::vector<double> ticks(double lo, double hi, int n) {
  if (!(hi > lo)) return {lo};
  const double step = nice_step(hi - lo, n);
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  return t;
}

std::string tick_label(double v) {
  char b[32];
  const double a = std::fabs(v);
  if (a >= 1e6)
    std::snprintf(b, sizeof b, "%gM", std::round(v / 1e5) / 10);
  else if (a >= 1e4)
    std::snprintf(b, sizeof b, "%gk", std::round(v / 100) / 10);
  else if (a >= 1000)  // 1000, 1500, 2500: whole, not 1e+03
    std::snprintf(b, sizeof b, "%.6g", v);
  else
    std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

std::pair<double, double> axis_range(double lo, double hi, bool log) {
  if (hi == lo) {
    const double half = !log && lo != 0 ? std::fabs(lo) / 2 : 0.5;
    lo -= half, hi += half;
  }
  const double pad = (hi - lo) * 0.04;
  return {lo - pad, hi + pad};
}

namespace {
int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
}  // namespace

Decades decades(double lo, double hi, int max_labels) {
  Decades a;
  a.lo = int(std::floor(std::log10(lo) + 1e-9));
  a.hi = int(std::ceil(std::log10(hi) - 1e-9));
  if (a.hi <= a.lo) a.lo = a.hi - 1;
  for (int step : {1, 2, 3, 5, 10, 20, 50, 100}) {
    a.step = step;
    if ((a.hi - a.lo + step - 1) / step <= max_labels) break;
  }
  a.lo = floor_div(a.lo, a.step) * a.step;
  a.hi = -floor_div(-a.hi, a.step) * a.step;
  return a;
}

std::string decade_label(int d) {
  const std::string e = d < 0 ? "\u2212" + std::to_string(-d) : std::to_string(d);
  return "10<tspan dy=\"-6\" font-size=\"9\">" + e + "</tspan>";
}

double Frame::px(double x) const {
  return left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0) * (W - left - right);
}
double Frame::py_axis(double u) const {
  const double t = std::isfinite(u) && y1 > y0 ? (u - y0) / (y1 - y0) : 0;
  return top + (1 - std::clamp(t, 0.0, 1.0)) * (H - top - bottom);
}
double Frame::py(double v) const {
  if (log) return py_axis(v > 0 ? std::log10(v) : NAN);
  return py_axis(v);
}

std::string x_title(const Frame& f, const std::string& body_html, const std::string& attrs) {
  return text((f.left + f.box_right()) / 2, f.H - 7, "middle", body_html, attrs);
}
std::string y_title(const Frame& f, const std::string& body_html, const std::string& attrs) {
  return "<text " + attrs + " transform=\"translate(15 " +
         page::fixed((f.top + f.box_bottom()) / 2, 1) + ") rotate(-90)\" text-anchor=\"middle\">" +
         body_html + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& attrs) {
  using page::fixed;
  return "<line x1=\"" + fixed(x1, 1) + "\" y1=\"" + fixed(y1, 1) + "\" x2=\"" + fixed(x2, 1) +
         "\" y2=\"" + fixed(y2, 1) + "\" " + attrs + "/>";
}

std::string text(double x, double y, const char* anchor, const std::string& body_html,
                 const std::string& attrs) {
  using page::fixed;
  return "<text x=\"" + fixed(x, 1) + "\" y=\"" + fixed(y, 1) + "\" text-anchor=\"" + anchor +
         "\"" + (attrs.empty() ? "" : " " + attrs) + ">" + body_html + "</text>";
}

}  // namespace unroll::svg

namespace unroll::svg {

const char* const kColours[7] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                 "#E69F00", "#56B4E9", "#000000"};

std::string chart(const std::vector<Line>& lines, const Axes& a) {
  Frame f;
  f.log = a.log_y;
  auto shown = [&](double y) { return std::isfinite(y) && !(a.log_y && y <= 0); };
  auto X = [&](double x) { return a.log_x ? std::log10(1 + std::max(x, 0.0)) : x; };
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (auto& l : lines)
    for (auto& [x, y] : l.xy) {
      if (!shown(y)) continue;
      const double u = a.log_y ? std::log10(y) : y;
      x0 = std::min(x0, X(x)), x1 = std::max(x1, X(x)), y0 = std::min(y0, u), y1 = std::max(y1, u);
    }
  std::string h = "<svg class=\"chart\" viewBox=\"0 0 " + page::fixed(f.W, 0) + " " +
                  page::fixed(f.H, 0) + "\" role=\"img\">";
  if (x0 > x1)
    return h + text(f.W / 2, f.H / 2, "middle", "no data yet", "class=\"lab\"") + "</svg>";
  // One x (a single record): the point in the middle, its own value the only tick.
  const bool one_x = x1 == x0;
  f.x0 = one_x ? x0 - 1 : x0, f.x1 = one_x ? x0 + 1 : x1;
  if (a.y_hi > a.y_lo)
    f.y0 = a.y_lo, f.y1 = a.y_hi;
  else
    std::tie(f.y0, f.y1) = axis_range(y0, y1, a.log_y);
  const double left = f.left, right = f.box_right(), top = f.top, bottom = f.box_bottom();
  // y ticks in axis units (log: 1, 2, 5 steps of decades are fine as labels)
  for (double v : ticks(f.y0, f.y1, 5)) {
    const double y = f.py_axis(v);
    h += line(left, y, right, y, "class=\"grid\"") +
         text(left - 5, y + 3.5, "end", html_escape(tick_label(a.log_y ? std::pow(10, v) : v)),
              "class=\"t\"");
  }
  // x ticks: on a log x axis 0, 1, 10, 100, ... (values, not their logarithms)
  std::vector<double> xt;
  if (one_x)
    xt = {a.log_x ? std::pow(10, x0) - 1 : x0};
  else if (a.log_x) {
    for (double v = 0; X(v) <= f.x1 * (1 + 1e-12); v = v == 0 ? 1 : v * 10)
      if (X(v) >= f.x0 - 1e-12) xt.push_back(v);
  } else
    xt = ticks(f.x0, f.x1, 6);
  for (double v : xt)
    h += line(f.px(X(v)), top, f.px(X(v)), bottom, "class=\"grid\"") +
         text(f.px(X(v)), bottom + 14, "middle", html_escape(tick_label(v)), "class=\"t\"");
  for (double m : a.y_marks) {
    const double y = f.py(m);
    if (y >= top && y <= bottom)
      h += line(left, y, right, y, "stroke=\"#8d969e\" stroke-dasharray=\"3 3\"");
  }
  h += line(left, bottom, right, bottom, "class=\"axis\"") +
       line(left, top, left, bottom, "class=\"axis\"") +
       x_title(f, html_escape(a.x + (a.log_x ? " (log scale)" : "")), "class=\"lab\"") +
       y_title(f, html_escape(a.y + (a.log_y ? " (log scale)" : "")), "class=\"lab\"");
  char b[256];
  for (auto& l : lines) {
    std::string pts;
    int n = 0;
    for (auto& [x, y] : l.xy) {
      if (!shown(y)) continue;
      std::snprintf(b, sizeof b, "%.1f,%.1f ", f.px(X(x)), f.py(y));
      pts += b;
      ++n;
    }
    h += "<polyline fill=\"none\" stroke=\"" + l.colour + "\" stroke-width=\"1.8\"" +
         (l.dashed ? " stroke-dasharray=\"6 4\"" : "") + " data-series=\"" + html_escape(l.name) +
         "\" data-n=\"" + std::to_string(n) + "\" points=\"" + pts + "\"/>";
    for (size_t i = 0; i < l.xy.size(); ++i) {
      const auto [x, y] = l.xy[i];
      if (!shown(y)) continue;
      const bool ring = i < l.marked.size() && l.marked[i];
      if (!l.dots && !ring && n > 1) continue;  // a lone point is drawn as a dot
      std::snprintf(b, sizeof b,
                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\" stroke=\"%s\"/>",
                    f.px(X(x)), f.py(y), ring ? "3.5" : "2.6", ring ? "none" : l.colour.c_str(),
                    ring ? "#222" : "none");
      h += b;
    }
  }
  return h + "</svg>";
}

std::string legend(const std::vector<Line>& lines) {
  std::string h = "<ul class=\"legend\">";
  for (auto& l : lines)
    h += "<li><i" + std::string(l.dashed ? " class=\"dash\"" : "") +
         " style=\"border-color:" + l.colour + "\"></i>" + html_escape(l.name) + "</li>";
  return h + "</ul>";
}

}  // namespace unroll::svg

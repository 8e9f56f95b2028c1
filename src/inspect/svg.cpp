// The chart parts of every page (src/inspect/svg.h).
#include "svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "page_parts.h"

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

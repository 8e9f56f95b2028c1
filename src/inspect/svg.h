// src/inspect/svg.h (internal) — the chart parts that every page of
// inspect/page.h draws its SVG with: where ticks go and what they say, the
// range an axis shows, axes in whole decades, and the elements themselves.
// One place for the axis arithmetic, so that every chart reads the same way.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace unroll::svg {

// A step of 1, 2 or 5 × 10^n: the first of those at least span / n, so that
// [0, span] gets about n ticks.
double nice_step(double span, int n);

// Ticks at multiples of nice_step(hi − lo, n) from lo to hi ({lo} when the
// range is empty); a tick within rounding of 0 is 0.
std::vector<double> ticks(double lo, double hi, int n);

// A tick label: 3 significant digits below 1000, every digit from 1000 to 9999
// (1500, not 1.5e+03), k and M above.
std::string tick_label(double v);

// The range a linear axis shows for values in [lo, hi]: 4% of room at each
// end; a constant series gets an axis around its value at its own scale (a
// learning rate of 0.002 is drawn on 0.001..0.003, not 0 on ±0.5); on a log
// axis (lo, hi in log10 units) a constant gets ±0.5 decades.
std::pair<double, double> axis_range(double lo, double hi, bool log);

// A log axis from 10^lo to 10^hi, labelled every `step` decades.
struct Decades {
  int lo = -1, hi = 0, step = 1;
};
// The whole decades around the values in [lo, hi] (positive, lo <= hi),
// labelled at most `max_labels` times (steps of 1, 2, 3, 5, 10, ...).
Decades decades(double lo, double hi, int max_labels);
// "10⁻⁶" as SVG text: the exponent in a raised tspan.
std::string decade_label(int d);

// Where a chart draws: an SVG of W × H whose plot box is inset by left,
// right, top and bottom; data x in [x0, x1] and y in [y0, y1] (log10 units
// on a log axis) map onto the box, y upwards. A value the axis cannot show
// (not finite; ≤ 0 on a log axis) or outside it is drawn at the box's edge.
struct Frame {
  double W = 560, H = 260, left = 58, right = 14, top = 10, bottom = 40;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool log = false;
  double px(double x) const;
  double py(double v) const;       // v a value: its log10 is taken on a log axis
  double py_axis(double u) const;  // u in axis units (log10 already taken)
  double box_right() const { return W - right; }
  double box_bottom() const { return H - bottom; }
};
// The axis titles: under the box, and rotated along its left side.
std::string x_title(const Frame& f, const std::string& body_html, const std::string& attrs);
std::string y_title(const Frame& f, const std::string& body_html, const std::string& attrs);

// ---- line charts (the report's, the cells timeline's)

// Okabe & Ito's palette: distinguishable with every kind of colour vision.
extern const char* const kColours[7];

struct Line {
  std::string name, colour;
  bool dashed = false, dots = false;  // dots: a marker at every point (evaluations)
  std::vector<std::pair<double, double>> xy;
  std::vector<bool> marked;  // per point: drawn with a ring (clipping fired)
};

struct Axes {
  std::string x, y;             // titles (text)
  bool log_y = false;           // log10(y); values <= 0 left out
  bool log_x = false;           // x drawn at log10(1 + x), so that step 0 stays on the axis
  double y_lo = 0, y_hi = 0;    // a fixed y range when y_hi > y_lo (else from the data)
  std::vector<double> y_marks;  // dashed horizontal lines (a threshold)
};

// One chart: lines on shared axes. Every polyline carries data-n (its number
// of points) and data-series (its name) for tests.
std::string chart(const std::vector<Line>& lines, const Axes& axes);
// The lines' names beside their colour and dash, as a <ul class="legend">.
std::string legend(const std::vector<Line>& lines);

// Elements. `attrs` and `body_html` are markup already.
std::string line(double x1, double y1, double x2, double y2, const std::string& attrs);
std::string text(double x, double y, const char* anchor, const std::string& body_html,
                 const std::string& attrs = "");

}  // namespace unroll::svg

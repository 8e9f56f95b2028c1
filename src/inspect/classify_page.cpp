// The page of `unroll classify eval --html`: scores, per-class table and the
// confusion matrix as a heat map (inspect/page.h).
#include <algorithm>
#include <cstdio>

#include "page_parts.h"
#include "unroll/core/error.h"
#include "unroll/inspect/page.h"
#include "unroll_assets.h"  // src/inspect/assets/, embedded at build time

namespace unroll {

namespace {

const char* const kStyle = assets::classify_css;  // src/inspect/assets/classify.css

// White to dark blue (one hue: readable for every kind of colour vision);
// text turns white on the dark end.
std::string cell_style(double f) {
  f = std::clamp(f, 0.0, 1.0);
  const int r = int(247 - f * (247 - 8)), g = int(251 - f * (251 - 48)),
            b = int(255 - f * (255 - 107));
  char buf[96];
  std::snprintf(buf, sizeof buf, "background:rgb(%d,%d,%d);color:%s", r, g, b,
                f > 0.55 ? "#fff" : "#111");
  return buf;
}

}  // namespace

std::string classify_page_html(const nlohmann::json& d) {
  using page::field;
  page::require_format(d, "unroll-classify-1", "classification page");
  const auto& classes = page::array_or_empty(field(d, "classes"));
  const auto& confusion = page::array_or_empty(field(d, "confusion"));
  const size_t C = classes.size();
  require(confusion.size() == C,
          "classification page: the confusion matrix must have one row per class");
  double acc = 0, loss = 0, f1 = 0;
  page::number_of(field(d, "accuracy"), acc);
  page::number_of(field(d, "loss"), loss);
  page::number_of(field(d, "macro_f1"), f1);
  const std::string title = page::text_of(field(d, "title"));
  std::string h = page::document_start(title.empty() ? "Classifier" : title, kStyle);
  h += page::header_html(
      title.empty() ? "Classifier" : title,
      {{"accuracy", page::fixed(100 * acc, 2) + "%"},
       {page::text_of(field(d, "unit")).empty() ? "examples" : page::text_of(field(d, "unit")),
        page::text_of(field(d, "examples"))},
       {"loss", page::number_html(loss, 4) + " nats"},
       {"macro F1", page::fixed(f1, 4)},
       {"classes", std::to_string(C)}},
      {{"checkpoint", page::text_of(field(d, "checkpoint"))},
       {"data", page::text_of(field(d, "data"))}},
      page::text_of(field(d, "command")));

  h += "<section id=\"confusion\">\n<h2>Confusion matrix</h2>\n<p class=\"note\">Rows: the true "
       "class; "
       "columns: the predicted class. Each cell shows the count; its shade is the share of the row "
       "(white 0, dark blue all of it), so the diagonal reads as per-class recall.</p>\n"
       "<table class=\"confusion\"><tr><th class=\"axis\">true \\ predicted</th>";
  for (auto& c : classes) h += "<th class=\"col\">" + html_escape(page::text_of(&c)) + "</th>";
  h += "</tr>\n";
  for (size_t i = 0; i < C; ++i) {
    const auto& row = page::array_or_empty(&confusion[i]);
    double total = 0;
    for (auto& v : row) total += v.is_number() ? v.get<double>() : 0;
    h += "<tr><th>" + html_escape(page::text_of(&classes[i])) + "</th>";
    for (size_t j = 0; j < row.size() && j < C; ++j) {
      const double v = row[j].is_number() ? row[j].get<double>() : 0;
      h += "<td" + std::string(i == j ? " class=\"diag\"" : "") + " style=\"" +
           cell_style(total > 0 ? v / total : 0) + "\" title=\"true " +
           html_escape(page::text_of(&classes[i])) + ", predicted " +
           html_escape(page::text_of(&classes[j])) + ": " + page::text_of(&row[j]) + "\">" +
           page::text_of(&row[j]) + "</td>";
    }
    h += "</tr>\n";
  }
  h += "</table>\n</section>\n";

  h += "<section id=\"per-class\">\n<h2>Per class</h2>\n<table class=\"scores\"><tr><th>class</th>"
       "<th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>\n";
  const auto& P = page::array_or_empty(field(d, "precision"));
  const auto& R = page::array_or_empty(field(d, "recall"));
  const auto& F = page::array_or_empty(field(d, "f1"));
  const auto& S = page::array_or_empty(field(d, "support"));
  auto num = [](const nlohmann::json& a, size_t i) {
    double v = 0;
    return i < a.size() && page::number_of(&a[i], v) ? page::fixed(v, 4) : std::string("&mdash;");
  };
  for (size_t i = 0; i < C; ++i)
    h += "<tr><td>" + html_escape(page::text_of(&classes[i])) + "</td><td class=\"num\">" +
         num(P, i) + "</td><td class=\"num\">" + num(R, i) + "</td><td class=\"num\">" + num(F, i) +
         "</td><td class=\"num\">" + (i < S.size() ? page::text_of(&S[i]) : "") + "</td></tr>\n";
  h += "</table>\n</section>\n";
  h += page::document_end("unroll classify eval", "", "");
  return h;
}

}  // namespace unroll

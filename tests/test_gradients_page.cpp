// The HTML page of `unroll gradients`: a complete, self-contained document
// whose untrusted text never turns into markup, with one line per model and
// layer on log axes that cover the data, finite coordinates even for zeros,
// the right tags on the fitted factors and the scalar example when asked for.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "page_util.h"
#include "unroll/core/error.h"
#include "unroll/inspect/page.h"

using namespace unroll;
using json = nlohmann::json;
using pagetest::count;
using pagetest::kHostile;

namespace {

// v0 · f^k for k = 0..K.
std::vector<double> geometric(double v0, double f, int K) {
  std::vector<double> v(size_t(K) + 1);
  for (int k = 0; k <= K; ++k) v[size_t(k)] = v0 * std::pow(f, k);
  return v;
}

json blocks(const std::string& cell) {
  json b = json::array();
  const std::vector<std::string> names = cell == "lstm"
                                             ? std::vector<std::string>{"i", "f", "g", "o"}
                                         : cell == "gru" ? std::vector<std::string>{"r", "z", "n"}
                                                         : std::vector<std::string>{"W_hh"};
  for (const std::string& n : names)
    b.push_back({{"block", n}, {"spectral_radius", 1.02}, {"sigma_max", 1.5}});
  return b;
}

// One layer whose curves fall (or grow) by `factor` per step.
json layer(int n, double factor, double jacobian_factor, const std::string& cell, int K) {
  const std::vector<double> abs = geometric(0.012, factor, K);
  return {{"layer", n},
          {"loss_grad", abs},
          {"loss_grad_rel", geometric(1.0, factor, K)},
          {"jacobian", geometric(1.0, jacobian_factor, K)},
          {"factor", factor},
          {"jacobian_factor", jacobian_factor},
          {"w_hh", blocks(cell)}};
}

json model(const std::string& label, const std::string& cell, std::vector<double> factors, int K) {
  json layers = json::array();
  for (size_t l = 0; l < factors.size(); ++l)
    layers.push_back(layer(int(l) + 1, factors[l], factors[l], cell, K));
  return {{"label", label},
          {"cell", cell},
          {"layers", factors.size()},
          {"hidden", 16},
          {"source", "fresh, orthogonal W_hh \xC3\x97 1.0, seed 1"},
          {"per_layer", layers}};
}

json make_data(int K = 100, bool with_scalar = true) {
  json d;
  d["format"] = "unroll-gradients-1";
  d["title"] = "unroll gradients \xE2\x80\x94 4 models on input.txt";
  d["command"] = "unroll gradients --fresh rnn:1:16 --text input.txt";
  d["text"] = "/abs/path/input.txt";
  d["K"] = K;
  d["samples"] = 256;
  d["models"] = json::array({model("rnn 1\xC3\x97"
                                   "16, fresh",
                                   "rnn", {0.9}, K),
                             model("lstm 2\xC3\x97"
                                   "16, fresh",
                                   "lstm", {0.99, 0.97}, K),
                             model("gru 3\xC3\x97"
                                   "16, fresh",
                                   "gru", {0.985, 0.98, 0.95}, K),
                             model("rnn 1\xC3\x97"
                                   "16, \xC3\x97"
                                   "1.5",
                                   "rnn", {1.05}, K)});
  if (with_scalar) {
    json tanh = json::array();
    double product = 1, h = 0;
    for (int t = 1; t <= 3; ++t) {
      h = std::tanh(3.0 * h + 1.0);
      const double local = 3.0 * (1 - h * h);
      product *= local;
      tanh.push_back({{"t", t}, {"h", h}, {"local", local}, {"product", product}});
    }
    d["scalar"] = {{"w", 3.0}, {"steps", 3}, {"linear", {3, 9, 27}}, {"tanh", tanh}};
  }
  return d;
}

size_t pairs_of(const json& d) {
  size_t n = 0;
  for (const json& m : d["models"]) n += m["per_layer"].size();
  return n;
}

// The figure of one chart ("chart-rel", "chart-jac", "chart-abs"), or "".
std::string figure(const std::string& html, const std::string& id) {
  const size_t a = html.find("<figure class=\"chart\" id=\"" + id + "\"");
  if (a == std::string::npos) return "";
  const size_t b = html.find("</figure>", a);
  return b == std::string::npos ? "" : html.substr(a, b - a);
}

// Its SVG alone.
std::string svg_of(const std::string& fig) {
  const size_t a = fig.find("<svg class=\"plot\"");
  const size_t b = fig.find("</svg>", a);
  return a == std::string::npos || b == std::string::npos ? "" : fig.substr(a, b - a);
}

// The decades labelled on a chart's y axis.
std::set<int> decades(const std::string& fig) {
  std::set<int> out;
  const std::regex tick(R"re(class="tick-y" data-decade="(-?\d+)")re");
  for (auto it = std::sregex_iterator(fig.begin(), fig.end(), tick); it != std::sregex_iterator();
       ++it)
    out.insert(std::stoi((*it)[1].str()));
  return out;
}

// y of the tick of one decade.
double tick_y(const std::string& fig, int decade) {
  const std::regex tick("data-decade=\"" + std::to_string(decade) +
                        "\"><line x1=\"[^\"]*\" y1=\"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(fig, m, tick) ? std::stod(m[1].str()) : NAN;
}

// The (x, y) points of every polyline, in order.
std::vector<std::vector<std::pair<double, double>>> polylines(const std::string& svg) {
  std::vector<std::vector<std::pair<double, double>>> out;
  const std::regex poly(R"re(<polyline[^>]*points="([^"]*)")re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator();
       ++it) {
    std::vector<std::pair<double, double>> pts;
    const std::string s = (*it)[1].str();
    const std::regex pt(R"(([-0-9.]+),([-0-9.]+))");
    for (auto p = std::sregex_iterator(s.begin(), s.end(), pt); p != std::sregex_iterator(); ++p)
      pts.emplace_back(std::stod((*p)[1].str()), std::stod((*p)[2].str()));
    out.push_back(pts);
  }
  return out;
}

// The cells of the table row of series i.
std::vector<std::string> row_cells(const std::string& html, int i) {
  const size_t a = html.find("<tr data-s=\"" + std::to_string(i) + "\">");
  if (a == std::string::npos) return {};
  const size_t b = html.find("</tr>\n", a);
  const std::string row = html.substr(a, b - a);
  std::vector<std::string> cells;
  const std::regex td(R"re(<td class="(factor|num)">(.*?)</td>)re");
  for (auto it = std::sregex_iterator(row.begin(), row.end(), td); it != std::sregex_iterator();
       ++it)
    cells.push_back((*it)[2].str());
  return cells;
}

}  // namespace

TEST(GradientsPage, IsACompleteDocument) {
  const std::string html = gradients_page_html(make_data());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  const size_t end = html.rfind("</html>");
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(html.find_first_not_of(" \n", end + 7), std::string::npos);
  for (const char* part :
       {"<head>", "</head>", "<body>", "</body>", "<meta charset=\"utf-8\">",
        "<title>unroll gradients \xE2\x80\x94 4 models on input.txt</title>", "id=\"chart-rel\"",
        "id=\"chart-jac\"", "id=\"chart-abs\"", "id=\"factors\"", "id=\"scalar\""})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  // The header: text path, K, samples, the command.
  for (const char* part :
       {"/abs/path/input.txt", "k = 0 &hellip; 100", "<b>positions averaged</b>256",
        "unroll gradients --fresh rnn:1:16 --text input.txt"})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  // Scripts: the hover code and one data block per chart, nothing else.
  EXPECT_EQ(count(html, "<script"), 4u);
  EXPECT_EQ(count(html, "</script>"), 4u);
}

TEST(GradientsPage, HostileStringsNeverBecomeMarkup) {
  json d = make_data();
  d["title"] = "title " + kHostile;
  d["command"] = "unroll gradients '" + kHostile + "' && echo \"x\"";
  d["text"] = "/tmp/</script><!--.txt";
  d["models"][0]["label"] = kHostile;
  d["models"][1]["source"] = "/tmp/" + kHostile + ".safetensors";
  d["models"][2]["per_layer"][0]["w_hh"][0]["block"] = "<b>r</b>";
  d["samples"] = "<i>256</i>";
  const std::string html = gradients_page_html(d);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<b>r</b>"), std::string::npos);
  EXPECT_EQ(html.find("<i>256"), std::string::npos);
  EXPECT_EQ(html.find("<!--"), std::string::npos);
  EXPECT_EQ(count(html, "<script"), 4u);
  EXPECT_EQ(count(html, "</script>"), 4u);
  const std::string escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
  EXPECT_NE(html.find("<title>title " + escaped + "</title>"), std::string::npos);
  EXPECT_NE(html.find("unroll gradients &#39;" + escaped + "&#39; &amp;&amp; echo &quot;x&quot;"),
            std::string::npos);
  // The label in the legends, the table and the line titles; the source, block and path.
  EXPECT_GE(count(html, escaped), 3u + 3u + 1u);
  EXPECT_NE(html.find("/tmp/" + escaped + ".safetensors"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;r&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(html.find("/tmp/&lt;/script&gt;&lt;!--.txt"), std::string::npos);
  // The hover data carries the label with no '<', '>' or '&' and parses back to it.
  const std::string fig = figure(html, "chart-rel");
  const std::string open = "<script type=\"application/json\" class=\"chart-data\">";
  const size_t a = fig.find(open), b = fig.find("</script>", a);
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  const std::string j = fig.substr(a + open.size(), b - a - open.size());
  EXPECT_EQ(j.find_first_of("<>&"), std::string::npos);
  const json back = json::parse(j);
  EXPECT_EQ(back["s"][0]["name"], kHostile);
}

TEST(GradientsPage, NeedsNothingFromOutsideThePage) {
  const std::string html = gradients_page_html(make_data(500));
  for (const char* bad :
       {"http://", "https://", "src=", "@import", "url(", "<link", "<iframe", "<img", "href="})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
}

TEST(GradientsPage, OneLinePerModelAndLayerInEveryChart) {
  json d = make_data();
  ASSERT_EQ(pairs_of(d), 7u);
  std::string html = gradients_page_html(d);
  for (const char* id : {"chart-rel", "chart-jac", "chart-abs"}) {
    const std::string svg = svg_of(figure(html, id));
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(count(svg, "<polyline"), 7u) << id;
    for (const auto& pts : polylines(svg)) EXPECT_EQ(pts.size(), 101u) << id;
  }
  // A legend entry per line, with its fitted factor in the relative chart.
  const std::string rel = figure(html, "chart-rel");
  EXPECT_EQ(count(rel, "<li data-s="), 7u);
  EXPECT_NE(rel.find("layer 3 &middot; &times;&thinsp;0.950 per step"), std::string::npos);
  EXPECT_NE(rel.find("layer 1 &middot; &times;&thinsp;1.050 per step"), std::string::npos);

  // A model measured without the Jacobian: no line in that chart only.
  d["models"][0]["per_layer"][0]["jacobian"] = json::array();
  d["models"][0]["per_layer"][0]["jacobian_factor"] = nullptr;
  html = gradients_page_html(d);
  EXPECT_EQ(count(svg_of(figure(html, "chart-rel")), "<polyline"), 7u);
  EXPECT_EQ(count(svg_of(figure(html, "chart-jac")), "<polyline"), 6u);
  // None at all: a note instead of an empty chart.
  for (json& m : d["models"])
    for (json& l : m["per_layer"]) l["jacobian"] = json::array();
  html = gradients_page_html(d);
  EXPECT_EQ(figure(html, "chart-jac"), "");
  EXPECT_NE(html.find("The Jacobian was not measured"), std::string::npos);
}

TEST(GradientsPage, LayersOfAModelShareItsColourAndAreDashed) {
  const std::string svg = svg_of(figure(gradients_page_html(make_data()), "chart-rel"));
  const std::regex poly(
      R"re(<polyline class="s" data-s="(\d+)" stroke="([^"]+)"( stroke-dasharray="[^"]+")?)re");
  std::vector<std::string> colour;
  std::vector<bool> dashed;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator();
       ++it) {
    colour.push_back((*it)[2].str());
    dashed.push_back((*it)[3].matched);
  }
  ASSERT_EQ(colour.size(), 7u);
  // Series in order: rnn (1 layer), lstm (2), gru (3), rnn (1).
  EXPECT_EQ(dashed, (std::vector<bool>{false, false, true, false, true, true, false}));
  EXPECT_EQ(colour[1], colour[2]);
  EXPECT_EQ(colour[3], colour[5]);
  EXPECT_EQ(std::set<std::string>({colour[0], colour[1], colour[3], colour[6]}).size(), 4u);
}

TEST(GradientsPage, LogAxisCoversTheDecadesOfTheData) {
  // One line from 1 down to 1e-6: the decades 10^0 … 10^-6, each labelled.
  json d = make_data(60);
  d["models"] = json::array({model("one", "rnn", {std::pow(10.0, -0.1)}, 60)});
  std::string fig = figure(gradients_page_html(d), "chart-rel");
  EXPECT_EQ(decades(fig), (std::set<int>{-6, -5, -4, -3, -2, -1, 0}));
  // The line runs from the top of the axis to its bottom.
  const auto lines = polylines(svg_of(fig));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NEAR(lines[0].front().second, tick_y(fig, 0), 0.11);
  EXPECT_NEAR(lines[0].back().second, tick_y(fig, -6), 0.11);

  // Growing to 1e10 and falling to 1e-20: fewer labels, still covering both ends.
  d["K"] = 100;
  d["models"] = json::array({model("up", "rnn", {std::pow(10.0, 0.1)}, 100),
                             model("down", "rnn", {std::pow(10.0, -0.2)}, 100)});
  fig = figure(gradients_page_html(d), "chart-rel");
  const std::set<int> ds = decades(fig);
  ASSERT_FALSE(ds.empty());
  EXPECT_LE(*ds.begin(), -20);
  EXPECT_GE(*ds.rbegin(), 10);
  EXPECT_LE(ds.size(), 10u);
  EXPECT_EQ(ds.count(0), 1u);
}

TEST(GradientsPage, ZerosAndTinyValuesAreDrawnAtTheBottomWithFiniteCoordinates) {
  json d = make_data();
  json& rel = d["models"][0]["per_layer"][0]["loss_grad_rel"];
  rel[100] = 0.0;
  rel[99] = 1e-40;
  rel[98] = -1.0;
  rel[97] = nullptr;
  json& abs = d["models"][0]["per_layer"][0]["loss_grad"];
  for (size_t k = 0; k < abs.size(); ++k) abs[k] = 0.0;  // nothing drawable at all
  const std::string html = gradients_page_html(d);

  const std::string svgs = svg_of(figure(html, "chart-rel")) + svg_of(figure(html, "chart-jac")) +
                           svg_of(figure(html, "chart-abs"));
  // Every coordinate is a plain number.
  const std::regex attr(
      R"re(\s(points|x|y|x1|x2|y1|y2|cx|cy|width|height|viewBox|transform)="([^"]*)")re");
  const std::regex plain(R"(^[-0-9., ()a-z]*$)");
  size_t n = 0;
  for (auto it = std::sregex_iterator(svgs.begin(), svgs.end(), attr); it != std::sregex_iterator();
       ++it, ++n) {
    std::string v = (*it)[2].str();
    for (char& c : v) c = char(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(v.find("nan"), std::string::npos) << (*it)[0].str();
    EXPECT_EQ(v.find("inf"), std::string::npos) << (*it)[0].str();
    EXPECT_TRUE(std::regex_match(v, plain)) << (*it)[0].str();
  }
  EXPECT_GT(n, 100u);
  EXPECT_EQ(html.find("NaN"), std::string::npos);
  EXPECT_EQ(html.find("Infinity"), std::string::npos);

  // The four bad values sit on the bottom of the axis; the note says so.
  const std::string fig = figure(html, "chart-rel");
  const std::set<int> ds = decades(fig);
  ASSERT_FALSE(ds.empty());
  const double bottom = tick_y(fig, *ds.begin());
  const auto lines = polylines(svg_of(fig));
  ASSERT_EQ(lines.size(), 7u);
  for (size_t k = 97; k <= 100; ++k) EXPECT_DOUBLE_EQ(lines[0][k].second, bottom) << k;
  EXPECT_GT(lines[0][96].second, tick_y(fig, -4));  // 0.9^96 ≈ 4e-5, drawn as it is
  EXPECT_LT(lines[0][96].second, bottom);
  EXPECT_NE(fig.find("drawn at the bottom of the axis: rnn 1\xC3\x97"
                     "16, fresh \xC2\xB7 layer 1 (4 values)"),
            std::string::npos);
  // The relative chart of a clean run has no such note.
  EXPECT_EQ(figure(gradients_page_html(make_data()), "chart-rel").find("drawn at the bottom"),
            std::string::npos);
}

TEST(GradientsPage, FactorsAreTaggedVanishingExplodingOrNearOne) {
  json d = make_data();
  d["models"] = json::array({model("a", "rnn", {0.5}, 100), model("b", "rnn", {1.5}, 100),
                             model("c", "rnn", {1.01}, 100), model("d", "lstm", {0.98}, 100)});
  d["models"][0]["per_layer"][0]["jacobian_factor"] = 0.995;
  d["models"][1]["per_layer"][0]["jacobian_factor"] = nullptr;
  const std::string html = gradients_page_html(d);
  auto tag = [](const std::string& cell) {
    for (const char* t : {"vanishing", "exploding", "flat"})
      if (cell.find(std::string("class=\"tag ") + t + "\"") != std::string::npos)
        return std::string(t);
    return std::string("none");
  };
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"0.500", "vanishing"}, {"1.500", "exploding"}, {"1.010", "flat"}, {"0.980", "flat"}};
  for (int i = 0; i < 4; ++i) {
    const std::vector<std::string> cells = row_cells(html, i);
    ASSERT_EQ(cells.size(), 5u) << i;  // layer, two factors, two values at k = 50
    EXPECT_NE(cells[1].find(expected[size_t(i)].first), std::string::npos) << cells[1];
    EXPECT_EQ(tag(cells[1]), expected[size_t(i)].second) << cells[1];
  }
  EXPECT_EQ(tag(row_cells(html, 0)[2]), "flat");
  EXPECT_EQ(row_cells(html, 1)[2], "&mdash;");
  EXPECT_NE(html.find("&asymp; 1</span>"), std::string::npos);
}

TEST(GradientsPage, TableGivesTheValueAtFiftyOrAtK) {
  json d = make_data();
  std::string html = gradients_page_html(d);
  EXPECT_NE(html.find("k = 50 (&divide; k = 0)"), std::string::npos);
  EXPECT_EQ(row_cells(html, 0)[3], "0.00515");  // 0.9^50
  EXPECT_EQ(row_cells(html, 6)[3], "11.5");     // 1.05^50
  // The blocks of W_hh: four for the LSTM layer, with ρ and σ_max.
  const size_t a = html.find("<tr data-s=\"1\">");
  const std::string row = html.substr(a, html.find("</tr>\n", a) - a);
  EXPECT_EQ(count(row, "<tr><td>"), 4u);
  EXPECT_NE(row.find("<td>f</td><td>1.020</td><td>1.500</td>"), std::string::npos);
  // A radius far beyond a float's comfort: four significant digits, not 31.
  json big = make_data();
  for (json& m : big["models"])
    for (json& l : m["per_layer"])
      for (json& b : l["w_hh"]) b["spectral_radius"] = 1e30, b["sigma_max"] = 2.5e30;
  const std::string bh = gradients_page_html(big);
  EXPECT_NE(bh.find("<td>10<sup>30</sup></td><td>2.5 &times; 10<sup>30</sup></td>"),
            std::string::npos);
  EXPECT_EQ(bh.find("1000000000000000019884624838656"), std::string::npos);

  d = make_data(20);
  html = gradients_page_html(d);
  EXPECT_NE(html.find("k = 20 (&divide; k = 0)"), std::string::npos);
  EXPECT_EQ(row_cells(html, 0)[3], "0.122");  // 0.9^20
}

TEST(GradientsPage, ScalarExampleOnlyWhenGiven) {
  std::string html = gradients_page_html(make_data(100, true));
  const size_t a = html.find("<section id=\"scalar\">");
  ASSERT_NE(a, std::string::npos);
  const std::string sec = html.substr(a, html.find("</section>", a) - a);
  EXPECT_NE(sec.find("w = 3</h2>"), std::string::npos);
  const size_t r3 = sec.find("<td class=\"num\">3</td>"), r9 = sec.find("<td class=\"num\">9</td>"),
               r27 = sec.find("<td class=\"num\">27</td>");
  ASSERT_NE(r3, std::string::npos);
  ASSERT_NE(r9, std::string::npos);
  ASSERT_NE(r27, std::string::npos);
  EXPECT_LT(r3, r9);
  EXPECT_LT(r9, r27);
  // tanh: three rows of t, h_t, local factor, product (first h = tanh(1) = 0.7616).
  EXPECT_NE(sec.find("<td class=\"num\">0.7616</td>"), std::string::npos);
  EXPECT_EQ(count(sec, "<tr><td class=\"num\">"), 6u);

  html = gradients_page_html(make_data(100, false));
  EXPECT_EQ(html.find("id=\"scalar\""), std::string::npos);
  EXPECT_EQ(html.find("scalar example"), std::string::npos);
}

TEST(GradientsPage, ToleratesMissingOptionalFields) {
  std::string html;
  ASSERT_NO_THROW(html = gradients_page_html(json{{"format", "unroll-gradients-1"}}));
  EXPECT_NE(html.find("No models in this data."), std::string::npos);
  EXPECT_EQ(count(html, "<polyline"), 0u);

  // Only absolute values: the relative curve is derived from them.
  json bare = {
      {"format", "unroll-gradients-1"},
      {"models", json::array({{{"per_layer", json::array({{{"loss_grad", {2.0, 1.0, 0.5}}}})}}})}};
  ASSERT_NO_THROW(html = gradients_page_html(bare));
  EXPECT_EQ(count(svg_of(figure(html, "chart-rel")), "<polyline"), 1u);
  EXPECT_EQ(count(svg_of(figure(html, "chart-abs")), "<polyline"), 1u);
  EXPECT_NE(html.find("k = 0 &hellip; 2"), std::string::npos);

  json odd = make_data();
  odd["models"][0]["per_layer"][0]["w_hh"] = "none";
  odd["models"][1]["label"] = 42;
  odd["models"][2]["per_layer"] = nullptr;
  odd["scalar"] = {{"w", "three"}, {"linear", nullptr}};
  EXPECT_NO_THROW(gradients_page_html(odd));
}

TEST(GradientsPage, RejectsOtherData) {
  EXPECT_THROW(gradients_page_html(json::array()), Error);
  EXPECT_THROW(gradients_page_html(json{{"format", "unroll-cells-1"}}), Error);
  EXPECT_THROW(gradients_page_html(json{{"format", "unroll-gradients-2"}}), Error);
  EXPECT_THROW(gradients_page_html(json{{"format", 1}}), Error);
}

TEST(GradientsPage, EightModelsOfThreeLayersAtK500StayAReasonableSize) {
  json d = make_data(500);
  d["models"] = json::array();
  for (int m = 0; m < 8; ++m)
    d["models"].push_back(model("model " + std::to_string(m), "lstm", {0.9, 0.95, 0.99}, 500));
  const std::string html = gradients_page_html(d);
  EXPECT_EQ(count(svg_of(figure(html, "chart-rel")), "<polyline"), 24u);
  EXPECT_LT(html.size(), 2u << 20);
}

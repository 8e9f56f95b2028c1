// The HTML page of `unroll cells`: a complete, self-contained document whose
// untrusted text never turns into markup, whose embedded data parses back, and
// which stays a reasonable size for a long text.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "page_util.h"
#include "unroll/core/error.h"
#include "unroll/inspect/page.h"

using namespace unroll;
using json = nlohmann::json;
using pagetest::count;
using pagetest::kHostile;

namespace {

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

// Page data of the documented shape: n characters of a small C-like text,
// `n_series` series, two probes and (optionally) gate saturation for 2 layers.
json make_data(size_t n, int n_series, bool with_saturation = true) {
  const std::string text = "int f(int x) {\n  if (x) return \"a<b\";\n\treturn 0; // done\n}\n";
  json d;
  d["format"] = "unroll-cells-1";
  d["title"] = "unroll cells \xE2\x80\x94 model.safetensors on input.txt";
  d["command"] = "unroll cells run/best.safetensors --text input.txt";
  d["model"] = {{"cell", "lstm"},
                {"layers", 2},
                {"hidden", 8},
                {"vocab", 65},
                {"params", 227393},
                {"checkpoint", "/abs/run/best.safetensors"},
                {"text", "/abs/input.txt"}};
  json chars = json::array(), loss = json::array(), top = json::array();
  for (size_t t = 0; t < n; ++t) {
    chars.push_back(std::string(1, text[t % text.size()]));
    loss.push_back(t == 0 ? json(nullptr) : json(round3(0.5 + std::sin(double(t)) * 0.4)));
    top.push_back(
        json::array({json::array({"e", 0.412}), json::array({" ", 0.12}), json::array({"\n", 0.05}),
                     json::array({"t", 0.031}), json::array({"<", 0.002})}));
  }
  d["chars"] = chars;
  d["loss"] = loss;
  d["top"] = top;
  json series = json::array();
  for (int s = 0; s < n_series; ++s) {
    const int layer = 1 + s % 2, unit = s;
    const std::string kind = s % 3 == 0 ? "c" : s % 3 == 1 ? "h" : "f";
    json values = json::array();
    for (size_t t = 0; t < n; ++t) {
      const double v = std::sin(0.37 * double(t) + s);
      values.push_back(round3(kind == "f" ? 0.5 + 0.5 * v : v));
    }
    const std::string id = "L" + std::to_string(layer) + "." + kind + "." + std::to_string(unit);
    series.push_back({{"id", id},
                      {"layer", layer},
                      {"kind", kind},
                      {"unit", unit},
                      {"label", "layer " + std::to_string(layer) + " " + kind + "[" +
                                    std::to_string(unit) + "]"},
                      {"range", kind == "f" ? json::array({0, 1}) : json::array({-1, 1})},
                      {"values", values}});
  }
  d["series"] = series;
  d["default_series"] = series.empty() ? "" : series[0]["id"].get<std::string>();
  json quote = json::array(), depth = json::array();
  for (size_t t = 0; t < n; ++t) {
    quote.push_back(t % 20 > 12 ? 1 : 0);
    depth.push_back(int(t % 7) / 3);
  }
  const std::string id0 = series.empty() ? "L1.c.0" : series[0]["id"].get<std::string>();
  d["probes"] =
      json::array({{{"name", "double_quote"},
                    {"description", "inside double quotes"},
                    {"binary", true},
                    {"values", quote},
                    {"top", json::array({{{"id", id0}, {"corr", 0.83}, {"accuracy", 0.951}}})}},
                   {{"name", "brace_depth"},
                    {"description", "depth of { }"},
                    {"binary", false},
                    {"values", depth},
                    {"top", json::array({{{"id", id0}, {"corr", 0.31}, {"accuracy", nullptr}}})}}});
  d["summary"] = {
      {"threshold", 0.6},
      {"found", json::array({{{"probe", "double_quote"}, {"id", id0}, {"corr", 0.83}}})}};
  json sat = json::array();
  if (with_saturation)
    for (int layer = 1; layer <= 2; ++layer)
      for (const char* gate : {"i", "f", "o"}) {
        json left = json::array(), right = json::array();
        for (int u = 0; u < 8; ++u) {
          left.push_back(round3(u / 10.0));
          right.push_back(round3(0.9 - u / 10.0));
        }
        sat.push_back({{"layer", layer}, {"gate", gate}, {"left", left}, {"right", right}});
      }
  d["saturation"] = sat;
  return d;
}

// The same data with hostile text wherever the producer copies strings through.
json hostile_data() {
  json d = make_data(300, 4);
  d["title"] = "title " + kHostile;
  d["command"] = "unroll cells '" + kHostile + "' && echo \"x\"";
  d["model"]["checkpoint"] = "/tmp/" + kHostile + ".safetensors";
  d["model"]["text"] = "/tmp/</script><!--.txt";
  d["chars"][0] = "<";
  d["chars"][1] = "</script>";  // not one code point, but the page must survive it
  d["chars"][2] = kHostile;
  d["top"][3][0][0] = kHostile;
  d["series"][1]["label"] = "label " + kHostile;
  d["series"][2]["id"] = "L1.h.<b>2</b>";
  d["probes"][0]["name"] = "probe " + kHostile;
  d["probes"][0]["description"] = "desc </script><script>alert(2)</script>";
  d["probes"][1]["top"][0]["id"] = "L1.h.<b>2</b>";
  d["saturation"][0]["gate"] = kHostile;
  return d;
}

// The text between the data script's tags.
std::string embedded(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"unroll-data\">";
  const size_t a = html.find(open);
  if (a == std::string::npos) return "";
  const size_t b = html.find("</script>", a);
  if (b == std::string::npos) return "";
  return html.substr(a + open.size(), b - a - open.size());
}

}  // namespace

TEST(CellsPage, HtmlEscapeEscapesTheFiveSpecialCharacters) {
  EXPECT_EQ(html_escape("a & b < c > d \" e ' f"), "a &amp; b &lt; c &gt; d &quot; e &#39; f");
  EXPECT_EQ(html_escape("&amp;"), "&amp;amp;");
  EXPECT_EQ(html_escape("plain, caf\xC3\xA9 \xED\x95\x9C"), "plain, caf\xC3\xA9 \xED\x95\x9C");
  EXPECT_EQ(html_escape(""), "");
}

TEST(CellsPage, IsACompleteDocument) {
  const std::string html = cells_page_html(make_data(200, 3));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  const size_t end = html.rfind("</html>");
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(html.find_first_not_of(" \n", end + 7), std::string::npos);
  for (const char* part : {"<head>", "</head>", "<body>", "</body>", "<meta charset=\"utf-8\">",
                           "<title>", "id=\"viewer\"", "id=\"series\"", "id=\"info\"",
                           "id=\"text\"", "id=\"probe-list\"", "id=\"saturation\""})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  // The header states the model and the command, the summary the best cells.
  for (const char* part : {"lstm", "227,393", "/abs/run/best.safetensors", "/abs/input.txt",
                           "unroll cells run/best.safetensors --text input.txt",
                           "inside double quotes", "data-id=\"L1.c.0\"", "+0.83", "95.1%"})
    EXPECT_NE(html.find(part), std::string::npos) << part;
}

TEST(CellsPage, HostileStringsNeverBecomeMarkup) {
  const std::string html = cells_page_html(hostile_data());
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<b>2</b>"), std::string::npos);
  EXPECT_EQ(html.find("<!--"), std::string::npos);
  // The page's own two scripts (data and code) and no other.
  EXPECT_EQ(count(html, "<script"), 2u);
  EXPECT_EQ(count(html, "</script>"), 2u);
  // Static text shows the strings escaped, as text.
  EXPECT_NE(html.find("<title>title &lt;script&gt;alert(1)&lt;/script&gt;</title>"),
            std::string::npos);
  EXPECT_NE(html.find("unroll cells &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; &amp;&amp; "
                      "echo &quot;x&quot;"),
            std::string::npos);
  EXPECT_NE(html.find("probe &lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("gate &lt;script&gt;"), std::string::npos);
  // In the embedded JSON there is no '<', '>' or '&' at all.
  const std::string j = embedded(html);
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j.find_first_of("<>&"), std::string::npos);
  EXPECT_NE(j.find("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"), std::string::npos);
}

TEST(CellsPage, EmbeddedJsonParsesBackToTheInput) {
  for (const json& d : {make_data(500, 5), hostile_data()}) {
    json with_unicode = d;
    with_unicode["chars"][5] = "\xED\x95\x9C";        // 한
    with_unicode["chars"][6] = "\xF0\x9F\x98\x80";    // an emoji, outside the BMP
    with_unicode["chars"][7] = std::string("\0", 1);  // a NUL
    with_unicode["title"] = "quotes \" and \\ and \xE2\x80\xA8 line separator";
    const std::string j = embedded(cells_page_html(with_unicode));
    ASSERT_FALSE(j.empty());
    json back;
    ASSERT_NO_THROW(back = json::parse(j));
    EXPECT_EQ(back, with_unicode);
  }
}

TEST(CellsPage, NeedsNothingFromOutsideThePage) {
  const std::string html = cells_page_html(make_data(400, 6));
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("<iframe"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  // Any link stays inside the page.
  const std::regex href(R"(href\s*=\s*["']?([^"' >]*))");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), href); it != std::sregex_iterator();
       ++it)
    EXPECT_EQ((*it)[1].str().rfind("#", 0), 0u) << (*it)[0].str();
}

TEST(CellsPage, EveryProbeIsInThePage) {
  json d = make_data(300, 3);
  d["probes"][1]["name"] = "if_block";
  const std::string html = cells_page_html(d);
  const json back = json::parse(embedded(html));
  ASSERT_EQ(back["probes"].size(), d["probes"].size());
  for (size_t i = 0; i < d["probes"].size(); ++i) {
    const std::string name = d["probes"][i]["name"];
    EXPECT_EQ(back["probes"][i]["name"], name);
    // ...and in the static summary table, with a link to its section.
    EXPECT_NE(
        html.find("data-probe=\"" + std::to_string(i) + "\">" + html_escape(name) + "</button>"),
        std::string::npos)
        << name;
  }
}

TEST(CellsPage, HighlightsTheProbesACellTracks) {
  json d = make_data(300, 3);
  std::string html = cells_page_html(d);
  EXPECT_EQ(count(html, "<tr class=\"found\">"), 1u);  // 0.83 yes, 0.31 no
  // A strong negative correlation counts as tracking too.
  d["probes"][1]["top"][0]["corr"] = -0.7;
  html = cells_page_html(d);
  EXPECT_EQ(count(html, "<tr class=\"found\">"), 2u);
  EXPECT_NE(html.find("\xE2\x88\x92"
                      "0.70"),
            std::string::npos);  // a real minus sign
}

TEST(CellsPage, SaturationPlotsOnePerGateOneRowPerLayer) {
  const std::string html = cells_page_html(make_data(200, 3));
  EXPECT_EQ(count(html, "<svg"), 6u);
  EXPECT_EQ(count(html, "<div class=\"satrow\">"), 2u);
  EXPECT_EQ(count(html, "<circle"), 6u * 8u);
  EXPECT_NE(html.find("layer 2, gate f (forget)"), std::string::npos);
  EXPECT_NE(html.find("fraction left-saturated"), std::string::npos);
  EXPECT_NE(html.find("stroke-dasharray"), std::string::npos);  // the anti-diagonal
}

TEST(CellsPage, EmptySaturationGivesANoteNotAnEmptyGrid) {
  const std::string html = cells_page_html(make_data(200, 3, /*with_saturation=*/false));
  EXPECT_NE(html.find("No gates to show"), std::string::npos);
  EXPECT_EQ(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("satgrid\""), std::string::npos);
  EXPECT_EQ(html.find("<div class=\"satrow\">"), std::string::npos);
}

TEST(CellsPage, ToleratesMissingOptionalFields) {
  const json minimal = {{"format", "unroll-cells-1"}, {"chars", json::array({"a", "b"})}};
  std::string html;
  ASSERT_NO_THROW(html = cells_page_html(minimal));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("No gates to show"), std::string::npos);
  EXPECT_NE(html.find("No probes were run"), std::string::npos);
  // Text that is not valid UTF-8 is replaced, not fatal.
  json bad = minimal;
  bad["title"] = std::string("bad \xFF byte");
  EXPECT_NO_THROW(cells_page_html(bad));
}

TEST(CellsPage, RejectsOtherData) {
  EXPECT_THROW(cells_page_html(json::array()), Error);
  EXPECT_THROW(cells_page_html(json{{"format", "unroll-gradients-1"}}), Error);
}

TEST(CellsPage, LongTextStaysAReasonableSize) {
  const json d = make_data(20000, 40);
  const std::string html = cells_page_html(d);
  const size_t data_bytes = d.dump().size();
  EXPECT_LT(html.size(), 8u << 20) << html.size();
  // The page is the data plus a fixed amount of code and static HTML.
  EXPECT_LT(html.size(), data_bytes + 200000) << html.size() << " vs data " << data_bytes;
}

// A supervised run evaluates once an epoch and may write no step record at all
// (they come every --print-every seconds): its training curves then come from
// the eval records, which hold the mean since the last evaluation. Steps past
// 1000 are labelled 1000, 1500, not 1e+03; a chart of one point shows a dot.
TEST(ReportPage, TrainingCurvesFromEvalRecordsWhenStepRecordsAreFew) {
  json records = json::array();
  for (int e = 1; e <= 4; ++e)
    records.push_back({{"kind", "eval"},
                       {"step", 500 * e},
                       {"elapsed", 2.0 * e},
                       {"train_loss", 1.0 / e},
                       {"grad_norm_mean", 0.5},
                       {"clip_fraction", e == 2 ? 0.5 : 0.0},
                       {"lr", 0.002},
                       {"train_accuracy", 0.5 + 0.1 * e},
                       {"val_loss", 1.1 / e},
                       {"val_accuracy", 0.5 + 0.1 * e}});
  records.push_back({{"kind", "step"},
                     {"step", 1234},
                     {"elapsed", 5.0},
                     {"train_loss", 0.4},
                     {"lr", 0.002},
                     {"grad_norm", 0.5},
                     {"clipped", false},
                     {"tokens_per_s", 900.0}});
  const json d = {
      {"format", "unroll-report-1"},
      {"title", "t"},
      {"command", "c"},
      {"runs",
       json::array(
           {{{"name", "run"}, {"dir", "run"}, {"config", json::object()}, {"records", records}}})}};
  const std::string h = report_page_html(d);
  auto figure_of = [&](const std::string& caption) {
    const size_t at = h.find("<figcaption>" + caption);
    return at == std::string::npos ? std::string() : h.substr(at, h.find("</figure>", at) - at);
  };
  // Four eval records against one step record: the eval records draw.
  EXPECT_EQ(count(figure_of("Loss against steps"), "data-series=\"training\" data-n=\"4\""), 2u);
  EXPECT_EQ(count(figure_of("Accuracy (%)"), "data-series=\"training\" data-n=\"4\""), 1u);
  const std::string grad = figure_of("Gradient norm");
  EXPECT_NE(grad.find("data-n=\"4\""), std::string::npos) << grad.substr(0, 2000);
  EXPECT_EQ(count(grad, "stroke=\"#222\""), 1u) << "one evaluation window clipped: one ring";
  EXPECT_NE(figure_of("Learning rate").find("data-n=\"4\""), std::string::npos);
  const std::string loss = figure_of("Loss against steps");
  EXPECT_NE(loss.find(">1000</text>"), std::string::npos) << loss.substr(0, 3000);
  EXPECT_NE(loss.find(">1500</text>"), std::string::npos) << loss.substr(0, 3000);
  EXPECT_EQ(loss.find("e+03"), std::string::npos) << loss.substr(0, 3000);
  // The speed chart has one point (the one step record): a dot at step 1234, its only tick.
  const std::string speed = figure_of("Speed");
  EXPECT_NE(speed.find("data-n=\"1\""), std::string::npos) << speed;
  EXPECT_EQ(count(speed, "<circle"), 1u) << speed;
  EXPECT_NE(speed.find(">1234</text>"), std::string::npos) << speed;
}

// The report page (issue 8) of a classifier run: accuracy against steps and
// against wall time, each with a training and a validation line of the
// records' point counts.
TEST(ReportPage, ClassifierAccuracyAgainstStepsAndWallTime) {
  json records = json::array();
  for (int e = 1; e <= 3; ++e) {
    records.push_back({{"kind", "step"},
                       {"step", 10 * e},
                       {"elapsed", 1.5 * e},
                       {"train_loss", 1.0 / e},
                       {"lr", 0.002},
                       {"grad_norm", 1.0},
                       {"clipped", false},
                       {"train_accuracy", 0.5 + 0.1 * e}});
    records.push_back({{"kind", "eval"},
                       {"step", 10 * e},
                       {"elapsed", 1.5 * e + 0.2},
                       {"val_loss", 1.2 / e},
                       {"val_accuracy", 0.45 + 0.1 * e}});
  }
  records.push_back({{"kind", "step"},
                     {"step", 40},
                     {"elapsed", 6.0},
                     {"train_loss", 0.2},
                     {"lr", 0.002},
                     {"grad_norm", 1.0},
                     {"clipped", true},
                     {"train_accuracy", 0.9}});
  json d = {
      {"format", "unroll-report-1"},
      {"title", "t"},
      {"command", "unroll classify train x"},
      {"runs",
       json::array(
           {{{"name", "run"}, {"dir", "run"}, {"config", json::object()}, {"records", records}}})}};
  const std::string h = report_page_html(d);
  for (const char* caption : {"Accuracy (%)", "Accuracy against wall time"}) {
    const size_t at = h.find("<figcaption>" + std::string(caption));
    ASSERT_NE(at, std::string::npos) << caption;
    const std::string fig = h.substr(at, h.find("</figure>", at) - at);
    EXPECT_EQ(count(fig, "data-series=\"training\" data-n=\"4\""), 1u) << caption;
    EXPECT_EQ(count(fig, "data-series=\"validation\" data-n=\"3\""), 1u) << caption;
  }
  EXPECT_NE(h.find("seconds of training</text>"), std::string::npos);
  // The constant learning rate is drawn on an axis around it: its value is a tick label,
  // and no tick is negative (it was drawn as 0 on a ±0.5 axis).
  {
    const size_t at = h.find("<figcaption>Learning rate");
    ASSERT_NE(at, std::string::npos);
    const std::string fig = h.substr(at, h.find("</figure>", at) - at);
    EXPECT_NE(fig.find(">0.002</text>"), std::string::npos) << fig.substr(0, 3000);
    EXPECT_EQ(fig.find(">-0."), std::string::npos) << fig.substr(0, 3000);
  }
  // The loss is in nats per example for a classifier, per token for a language model
  // (no task recorded), and both named when the runs overlaid differ.
  auto loss_caption = [](const json& page) {
    const std::string html = report_page_html(page);
    const size_t at = html.find("<figcaption>Loss against steps");
    return at == std::string::npos ? std::string() : html.substr(at, html.find(';', at) - at);
  };
  EXPECT_EQ(loss_caption(d), "<figcaption>Loss against steps (nats per token");
  d["runs"][0]["config"] = {{"train", {{"task", "classify"}}}};
  EXPECT_EQ(loss_caption(d), "<figcaption>Loss against steps (nats per example");
  json two = d;
  two["runs"].push_back(d["runs"][0]);
  two["runs"][1]["config"]["train"]["task"] = "tag";
  EXPECT_EQ(loss_caption(two), "<figcaption>Loss against steps (nats per token or example");
  // A language model's records hold no accuracy: no accuracy charts.
  for (auto& r : d["runs"][0]["records"])
    r.erase(r["kind"] == "step" ? "train_accuracy" : "val_accuracy");
  EXPECT_EQ(report_page_html(d).find("Accuracy"), std::string::npos);
}

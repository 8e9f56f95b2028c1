// The cells across training (inspect/timeline.h): a planted run whose quote
// cell is switched on at a known step, and linear CKA's defining properties.
#include <gtest/gtest.h>

#include <cmath>

#include "planted.h"
#include "unroll/core/rng.h"
#include "unroll/inspect/page.h"
#include "unroll/inspect/timeline.h"
#include "unroll/text/utf8.h"

using namespace unroll;

TEST(Timeline, LinearCkaIsOneUpToRotationAndScaleAndLowForUnrelated) {
  Rng rng(7);
  const size_t rows = 400, cols = 6;
  std::vector<float> X(rows * cols), Y(rows * cols), Z(rows * cols);
  for (float& v : X) v = rng.uniform(-1, 1);
  for (float& v : Z) v = rng.uniform(-1, 1);
  // Y = 3 X R + 5 for a rotation R of the first two columns.
  const double a = 0.7;
  for (size_t r = 0; r < rows; ++r) {
    const float* x = &X[r * cols];
    float* y = &Y[r * cols];
    y[0] = float(3 * (std::cos(a) * x[0] - std::sin(a) * x[1]) + 5);
    y[1] = float(3 * (std::sin(a) * x[0] + std::cos(a) * x[1]) + 5);
    for (size_t c = 2; c < cols; ++c) y[c] = 3 * x[c] + 5;
  }
  EXPECT_NEAR(linear_cka(X, X, rows, cols), 1.0, 1e-6);
  EXPECT_NEAR(linear_cka(X, Y, rows, cols), 1.0, 1e-5);
  EXPECT_LT(linear_cka(X, Z, rows, cols), 0.1);
  EXPECT_NEAR(linear_cka(X, Z, rows, cols), linear_cka(Z, X, rows, cols), 1e-9);
}

// Five checkpoints at steps 0..40 of one model; the quote cell is planted from
// step 30 on. The timeline must say that the double quote's cell first reaches
// the threshold at step 30, that it is unit 1 from then on, and that the states
// moved: nothing at step 0, something by the end.
TEST(Timeline, PlantedQuoteCellAppearsAtItsStep) {
  const ModelConfig cfg = lstm_config(1, 6, 3);
  auto run = planted_run(cfg, 11, 5, 30, 2);  // ids: a = 0, b = 1, " = 2
  Rng rng(12);
  const std::u32string text = quoted_text(rng, 2500);
  std::vector<int32_t> ids;
  for (char32_t c : text) ids.push_back(c == U'a' ? 0 : c == U'b' ? 1 : 2);
  std::vector<TimelinePoint> points;
  for (int i = 0; i < 5; ++i) points.push_back({"ck" + std::to_string(i), 10 * i, 1000 * i});
  const Vocab vocab = Vocab::from_tokens({"a", "b", "\""}, "char");
  TimelineOptions opt;
  opt.show_chars = 300;
  opt.unit_correlations = true;
  std::vector<size_t> order;
  const Timeline t = cells_timeline_data(points, cfg, int64_t(run[0]->layout().count()), vocab,
                                         text, builtin_probes(text), opt, [&](size_t i) {
                                           order.push_back(i);
                                           return record_activations(*run[i], ids, 100);
                                         });
  EXPECT_EQ(order, (std::vector<size_t>{4, 0, 1, 2, 3})) << "the last first, then the first";
  const TimelineRow* quote = nullptr;
  for (const TimelineRow& r : t.rows)
    if (r.probe == "double_quote") quote = &r;
  ASSERT_NE(quote, nullptr);
  EXPECT_EQ(quote->first, 3) << "planted at step 30, the fourth checkpoint";
  EXPECT_TRUE(quote->first_id == "L1.c.1" || quote->first_id == "L1.h.1") << quote->first_id;
  EXPECT_EQ(quote->final_id, quote->first_id);
  EXPECT_LE(quote->same_since, 3);
  EXPECT_GT(quote->final_corr, 0.95);

  const nlohmann::json& d = t.data;
  EXPECT_EQ(d["format"], "unroll-cells-timeline-1");
  EXPECT_EQ(d["chars"].size(), 300u);
  ASSERT_EQ(d["checkpoints"].size(), 5u);
  EXPECT_EQ(d["checkpoints"][3]["step"], 30);
  EXPECT_EQ(d["checkpoints"][3]["tokens"], 3000);
  for (const auto& c : d["checkpoints"]) {
    EXPECT_EQ(c["loss"].size(), 300u);
    EXPECT_EQ(c["top"].size(), 300u);
  }
  // The series shown at every step: the final best cells, values per checkpoint.
  bool shown = false;
  for (const auto& s : d["series"]) {
    ASSERT_EQ(s["values"].size(), 5u);
    EXPECT_EQ(s["values"][0].size(), 300u);
    shown |= s["id"] == quote->final_id;
  }
  EXPECT_TRUE(shown);
  EXPECT_EQ(d["default_series"], quote->final_id);
  for (const auto& p : d["probes"]) {
    if (p["name"] != "double_quote") continue;
    EXPECT_EQ(p["first"], 3);
    ASSERT_EQ(p["final_corr"].size(), 5u);
    EXPECT_LT(std::fabs(p["final_corr"][2].get<double>()), 0.6) << "not planted at step 20";
    EXPECT_GT(p["final_corr"][3].get<double>(), 0.95);
    EXPECT_EQ(p["unit_corr"].size(), 5u);
    EXPECT_EQ(p["unit_corr"][0].size(), 12u) << "h and c of 6 units";
  }
  // Drift from the first checkpoint: none at 0, and the same weights until step 20.
  ASSERT_EQ(d["drift"].size(), 1u);
  const auto& drift = d["drift"][0];
  EXPECT_EQ(drift["mean_abs"][0], 0.0);
  EXPECT_EQ(drift["mean_abs"][2], 0.0);
  EXPECT_GT(drift["mean_abs"][4].get<double>(), 0.01);
  EXPECT_NEAR(drift["cka_first"][0].get<double>(), 1.0, 1e-3);
  EXPECT_NEAR(drift["cka_last"][4].get<double>(), 1.0, 1e-3);

  // The page draws the table from the data: the first step, and a chart line per probe.
  const std::string html = cells_timeline_page_html(d);
  EXPECT_NE(html.find("data-first=\"3\""), std::string::npos);
  EXPECT_NE(html.find("data-series=\"double_quote\" data-n=\"5\""), std::string::npos);
  EXPECT_THROW(cells_timeline_page_html(nlohmann::json{{"format", "unroll-cells-1"}}), Error);
}

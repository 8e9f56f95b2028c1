// Recording activations, ranking cells against probes, gate saturation, .npy.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "planted.h"
#include "unroll/core/rng.h"
#include "unroll/infer/evaluate.h"
#include "unroll/inspect/cells.h"
#include "unroll/text/utf8.h"

using namespace unroll;

TEST(Pearson, KnownValuesAndConstants) {
  const float x[] = {1, 2, 3, 4}, y[] = {2, 4, 6, 8}, z[] = {4, 3, 2, 1}, k[] = {5, 5, 5, 5};
  EXPECT_NEAR(pearson(x, 1, y, 4), 1.0, 1e-12);
  EXPECT_NEAR(pearson(x, 1, z, 4), -1.0, 1e-12);
  EXPECT_EQ(pearson(k, 1, y, 4), 0.0);
  EXPECT_EQ(pearson(x, 1, k, 4), 0.0);
  const float xs[] = {1, 9, 2, 9, 3, 9, 4, 9};  // stride 2 reads 1 2 3 4
  EXPECT_NEAR(pearson(xs, 2, z, 4), -1.0, 1e-12);
}

TEST(BestThreshold, MatchesBruteForce) {
  Rng rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 1 + int(rng.below(40));
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; ++i) {
      x[i] = float(rng.below(8));  // ties on purpose
      y[i] = float(rng.below(2));
    }
    double brute = 0;
    for (float th = -1; th <= 8; th += 0.5f) {
      int above = 0, below = 0;
      for (int i = 0; i < n; ++i) {
        above += (x[i] > th) == (y[i] > 0.5f);
        below += (x[i] < th) == (y[i] > 0.5f);
      }
      brute = std::max({brute, double(above) / n, double(below) / n});
    }
    EXPECT_NEAR(best_threshold_accuracy(x.data(), 1, y.data(), n), brute, 1e-12)
        << "trial " << trial;
  }
}

TEST(Cells, PlantedQuoteCellRanksFirst) {
  LanguageModel<float> m(lstm_config(1, 6, 3));
  Rng rng(11);
  m.init(rng);
  plant_quote_cell(m, 2);  // ids: a = 0, b = 1, " = 2
  const std::u32string text = quoted_text(rng, 3000);
  std::vector<int32_t> ids;
  for (char32_t c : text) ids.push_back(c == U'a' ? 0 : c == U'b' ? 1 : 2);
  Recording rec = record_activations(m, ids, 100);
  Probe quote;
  for (const Probe& p : builtin_probes(text))
    if (p.name == "double_quote") quote = p;
  ASSERT_EQ(quote.values.size(), text.size());
  auto ranked = rank_units(rec, quote, {rec.kind_index("h"), rec.kind_index("c")});
  ASSERT_EQ(ranked.size(), 12u);
  EXPECT_EQ(ranked[0].unit, 1);
  EXPECT_EQ(ranked[1].unit, 1);  // its h and its c
  EXPECT_GT(ranked[0].corr, 0.95);
  EXPECT_GT(ranked[0].accuracy, 0.99);
  EXPECT_LT(std::fabs(ranked[2].corr), 0.9) << "another cell should not track quotes as well";

  // The planted input gate is shut except on quotes: left-saturated that often.
  size_t quotes = 0;
  for (char32_t c : text) quotes += c == U'"';
  for (const Saturation& s : gate_saturation(rec))
    if (s.gate == "i") {
      EXPECT_NEAR(s.left[1], 1.0 - double(quotes) / text.size(), 1e-6);
      EXPECT_NEAR(s.right[1], double(quotes) / text.size(), 1e-6);
    }
}

// The page's data is built in the library (cells_page_data): the planted cell is the double
// quote's best unit and counts as found, probes constant over the text are absent, and
// every series the page can show holds one value per character.
TEST(Cells, PageDataNamesThePlantedCellAndEveryShownSeries) {
  LanguageModel<float> m(lstm_config(1, 6, 3));
  Rng rng(11);
  m.init(rng);
  plant_quote_cell(m, 2);
  const std::u32string text = quoted_text(rng, 2000);
  std::vector<int32_t> ids;
  for (char32_t c : text) ids.push_back(c == U'a' ? 0 : c == U'b' ? 1 : 2);
  const Recording rec = record_activations(m, ids, 100);
  const Vocab vocab = Vocab::from_tokens({"a", "b", "\""}, "char");
  CellsPageOptions opt;
  opt.cells = {4};
  opt.top = 2;
  const CellsPage page = cells_page_data(m, vocab, text, rec, builtin_probes(text), opt);
  const nlohmann::json& d = page.data;
  EXPECT_EQ(d["format"], "unroll-cells-1");
  EXPECT_EQ(d["chars"].size(), text.size());
  bool quote_found = false;
  for (const ProbeRow& r : page.rows) {
    if (r.probe == "double_quote") {
      EXPECT_TRUE(r.present);
      EXPECT_TRUE(r.id == "L1.h.1" || r.id == "L1.c.1") << r.id;
      EXPECT_GT(r.corr, 0.95);
    }
    if (r.probe == "bracket_depth") {
      EXPECT_FALSE(r.present) << "no brackets in the text";
    }
  }
  for (auto& f : d["summary"]["found"]) quote_found |= f["probe"] == "double_quote";
  EXPECT_TRUE(quote_found);
  // Shown: --cells 4 in every kind (h, c, i, f, g, o), and each present probe's top 2.
  EXPECT_EQ(page.series, d["series"].size());
  std::set<std::string> ids_shown;
  for (auto& s : d["series"]) {
    EXPECT_EQ(s["values"].size(), text.size());
    ids_shown.insert(s["id"].get<std::string>());
  }
  for (const char* id : {"L1.h.4", "L1.c.4", "L1.i.4", "L1.f.4", "L1.g.4", "L1.o.4", "L1.h.1"})
    EXPECT_TRUE(ids_shown.count(id)) << id;
  EXPECT_EQ(d["default_series"], "L1.h.4");
}

// What cells records equals a plain forward pass run one step at a time: h,
// c and gates of every layer, and the loss of every prediction.
TEST(Cells, RecordingEqualsStepByStepForward) {
  LanguageModel<float> m(lstm_config(2, 8, 5));
  Rng rng(4);
  m.init(rng);
  std::vector<int32_t> ids(300);
  for (auto& v : ids) v = int32_t(rng.below(5));
  Recording rec = record_activations(m, ids, 64);
  ASSERT_EQ(rec.kinds, (std::vector<std::string>{"h", "c", "i", "f", "g", "o"}));

  m.reset_state(1);
  double loss_sum = 0;
  for (size_t n = 0; n < ids.size(); ++n) {
    m.forward(&ids[n], nullptr, 1, 1, Mode::Eval);
    for (int l = 0; l < 2; ++l)
      for (int u = 0; u < 8; ++u) {
        ASSERT_NEAR(rec.at(n, l, 0, u), m.state_h[l * 8 + u], 1e-5) << "h n" << n;
        ASSERT_NEAR(rec.at(n, l, 1, u), m.state_c[l * 8 + u], 1e-5) << "c n" << n;
        for (int g = 0; g < 4; ++g)
          ASSERT_NEAR(rec.at(n, l, 2 + g, u), m.layer(l).gates[g * 8 + u], 1e-5) << "gate n" << n;
      }
    if (n > 0) loss_sum += rec.loss[n];
  }
  EXPECT_TRUE(std::isnan(rec.loss[0]));
  EvalResult r = evaluate(m, ids, 1, 64);
  EXPECT_NEAR(loss_sum / double(ids.size() - 1), r.loss, 1e-5);
  // The top guess is the most likely one, probabilities descending.
  for (const auto& g : rec.top) {
    for (int i = 1; i < 5; ++i) EXPECT_GE(g[i - 1].p, g[i].p);
    EXPECT_GT(g[0].p, 0.0f);
  }
}

TEST(Cells, RecordingLeavesTheCarriedStateAlone) {
  LanguageModel<float> m(lstm_config(1, 4, 3));
  Rng rng(2);
  m.init(rng);
  m.reset_state(2);
  m.state_h[3] = 0.25f;
  std::vector<int32_t> ids = {0, 1, 2, 1};
  record_activations(m, ids);
  EXPECT_EQ(m.state_batch(), 2);
  EXPECT_EQ(m.state_h[3], 0.25f);
}

TEST(Npy, HeaderAndDataReadBack) {
  const std::string path = ::testing::TempDir() + "unroll_test.npy";
  const std::vector<float> data = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  write_npy(path, {2, 3}, data.data());
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  ASSERT_GE(s.size(), 10u);
  EXPECT_EQ(s.substr(0, 6), "\x93NUMPY");
  const size_t hlen = uint8_t(s[8]) | (uint8_t(s[9]) << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  const std::string header = s.substr(10, hlen);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(header.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_EQ(header.back(), '\n');
  ASSERT_EQ(s.size(), 10 + hlen + data.size() * 4);
  std::vector<float> back(data.size());
  std::memcpy(back.data(), s.data() + 10 + hlen, data.size() * 4);
  EXPECT_EQ(back, data);
  write_npy(path, {4}, data.data());
  std::ifstream g(path, std::ios::binary);
  std::string one((std::istreambuf_iterator<char>(g)), {});
  EXPECT_NE(one.find("'shape': (4,)"), std::string::npos);
  std::remove(path.c_str());
}

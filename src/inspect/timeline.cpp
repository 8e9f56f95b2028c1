// The hidden cells across training (inspect/timeline.h).
#include "unroll/inspect/timeline.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>

#include "unroll/core/error.h"
#include "unroll/core/gemm.h"
#include "unroll/text/utf8.h"

namespace unroll {

namespace {

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

// ‖AᵀB‖²_F for A, B [rows, cols], through one product.
double cross_norm2(const std::vector<float>& A, const std::vector<float>& B, size_t rows,
                   size_t cols) {
  std::vector<float> C(cols * cols);
  gemm(true, false, int64_t(cols), int64_t(cols), int64_t(rows), 1.0f, A.data(), int64_t(cols),
       B.data(), int64_t(cols), 0.0f, C.data(), int64_t(cols));
  double s = 0;
  for (float v : C) s += double(v) * v;
  return s;
}

void centre_columns(std::vector<float>& X, size_t rows, size_t cols) {
  for (size_t c = 0; c < cols; ++c) {
    double m = 0;
    for (size_t r = 0; r < rows; ++r) m += X[r * cols + c];
    m /= double(rows);
    for (size_t r = 0; r < rows; ++r) X[r * cols + c] -= float(m);
  }
}

}  // namespace

double linear_cka(const std::vector<float>& X_in, const std::vector<float>& Y_in, size_t rows,
                  size_t cols) {
  require(X_in.size() == rows * cols && Y_in.size() == rows * cols, "linear_cka: shapes differ");
  std::vector<float> X = X_in, Y = Y_in;
  centre_columns(X, rows, cols);
  centre_columns(Y, rows, cols);
  const double xy = cross_norm2(X, Y, rows, cols);
  const double xx = std::sqrt(cross_norm2(X, X, rows, cols));
  const double yy = std::sqrt(cross_norm2(Y, Y, rows, cols));
  if (!std::isfinite(xy) || !std::isfinite(xx) || !std::isfinite(yy))
    return std::numeric_limits<double>::quiet_NaN();  // a diverged checkpoint: left out of the
                                                      // chart
  return xx > 0 && yy > 0 ? xy / (xx * yy) : 0;
}

Timeline cells_timeline_data(const std::vector<TimelinePoint>& points, const ModelConfig& model,
                             int64_t params, const Vocab& vocab, const std::u32string& text,
                             const std::vector<Probe>& probes, const TimelineOptions& opt,
                             const std::function<Recording(size_t)>& record,
                             const std::function<void(size_t)>& done) {
  const size_t C = points.size();
  require(C >= 1, "no checkpoints to compare");
  const size_t N = text.size(), W = std::min(N, opt.show_chars);
  const size_t P = probes.size();
  for (const Probe& p : probes)
    require(p.values.size() == N, "probe '" + p.name + "' does not cover the text");

  // The order of recording: the last (it picks the series), the first (drift's origin), the rest.
  std::vector<size_t> order = {C - 1};
  if (C > 1) order.push_back(0);
  for (size_t i = 1; i + 1 < C; ++i) order.push_back(i);

  std::vector<bool> present(P);
  for (size_t p = 0; p < P; ++p) {
    const auto [lo, hi] = std::minmax_element(probes[p].values.begin(), probes[p].values.end());
    present[p] = *lo != *hi;
  }
  // Per probe and checkpoint: the best unit and its correlation, and that of the final best.
  struct Best {
    std::string id;
    double corr = 0;
  };
  std::vector<std::vector<Best>> best(P, std::vector<Best>(C));
  std::vector<std::vector<double>> final_corr(P, std::vector<double>(C, 0));
  std::vector<std::array<int, 3>> final_unit(P);          // layer, kind, unit
  std::vector<std::vector<std::vector<float>>> all_corr;  // [P][C][units], unit_correlations only
  if (opt.unit_correlations) all_corr.assign(P, std::vector<std::vector<float>>(C));

  // Series (chosen on the last checkpoint): each probe's final best unit, and --cells.
  std::vector<std::array<int, 3>> series;
  std::vector<std::vector<std::vector<float>>> series_values;  // [S][C][W]
  std::vector<std::string> kinds;
  // Per checkpoint: the loss and top guesses over the shown text, the mean loss over all.
  std::vector<std::vector<float>> loss(C);
  std::vector<std::vector<std::array<Guess, 5>>> top(C);
  std::vector<double> mean_loss(C, 0);
  // Drift: the hidden states of the first and the last checkpoint, [N][L][H].
  int L = 0, H = 0;
  std::vector<float> h_first, h_last;
  const size_t every = std::max<size_t>(1, (N + kCkaRows - 1) / kCkaRows);
  const size_t rows = (N + every - 1) / every;
  std::vector<std::vector<double>> drift, cka_first, cka_last;  // [L][C]
  auto states_of = [&](const Recording& rec) {
    std::vector<float> h(N * size_t(L) * H);
    for (size_t n = 0; n < N; ++n)
      for (int l = 0; l < L; ++l)
        for (int u = 0; u < H; ++u) h[(n * L + l) * H + u] = rec.at(n, l, 0, u);
    return h;
  };
  auto cka_rows = [&](const std::vector<float>& h, int l) {
    std::vector<float> X(rows * size_t(H));
    for (size_t r = 0; r < rows; ++r)
      std::copy_n(h.begin() + long((r * every * L + l) * H), H, X.begin() + long(r * H));
    return X;
  };
  std::vector<std::vector<float>> first_rows, last_rows;  // [L]: the CKA references, taken once
  auto measure = [&](const std::vector<float>& h, size_t j) {  // needs h_first and h_last
    if (first_rows.empty())
      for (int l = 0; l < L; ++l)
        first_rows.push_back(cka_rows(h_first, l)), last_rows.push_back(cka_rows(h_last, l));
    for (int l = 0; l < L; ++l) {
      double d = 0;
      for (size_t n = 0; n < N; ++n)
        for (int u = 0; u < H; ++u) {
          const size_t at = (n * L + l) * H + u;
          d += std::fabs(h[at] - h_first[at]);
        }
      drift[l][j] = d / (double(N) * H);
      const std::vector<float> X = cka_rows(h, l);
      cka_first[l][j] = linear_cka(X, first_rows[l], rows, H);
      cka_last[l][j] = linear_cka(X, last_rows[l], rows, H);
    }
  };

  size_t recorded = 0;
  for (size_t i : order) {
    const Recording rec = record(i);
    require(size_t(rec.N) == N, "a recording does not cover the text");
    if (recorded == 0) {
      L = rec.L, H = rec.H, kinds = rec.kinds;
      drift.assign(L, std::vector<double>(C, 0));
      cka_first.assign(L, std::vector<double>(C, 0));
      cka_last.assign(L, std::vector<double>(C, 0));
    }
    require(rec.L == L && rec.H == H && rec.kinds == kinds,
            "the checkpoints differ in shape: " + points[i].name);
    std::vector<int> rank_kinds = {0};
    if (rec.kind_index("c") >= 0) rank_kinds.push_back(rec.kind_index("c"));
    std::vector<int> layers;
    if (opt.layer > 0) layers.push_back(opt.layer - 1);

    for (size_t p = 0; p < P; ++p) {
      if (!present[p]) continue;
      std::vector<UnitScore> ranked = rank_units(rec, probes[p], rank_kinds, layers);
      best[p][i] = {unit_id(rec.kinds, ranked[0].layer, ranked[0].kind, ranked[0].unit),
                    ranked[0].corr};
      if (recorded == 0) final_unit[p] = {ranked[0].layer, ranked[0].kind, ranked[0].unit};
      for (const UnitScore& s : ranked)
        if (std::array<int, 3>{s.layer, s.kind, s.unit} == final_unit[p]) final_corr[p][i] = s.corr;
      if (opt.unit_correlations) {
        // In the recording's order: layer, kind (h, then c), unit.
        std::sort(ranked.begin(), ranked.end(), [](const UnitScore& a, const UnitScore& b) {
          return std::tie(a.layer, a.kind, a.unit) < std::tie(b.layer, b.kind, b.unit);
        });
        for (const UnitScore& s : ranked) all_corr[p][i].push_back(float(round3(s.corr)));
      }
    }
    if (recorded == 0) {  // the series every checkpoint will show
      auto add = [&](int l, int k, int u) {
        const std::array<int, 3> s = {l, k, u};
        if (std::find(series.begin(), series.end(), s) == series.end()) series.push_back(s);
      };
      for (size_t p = 0; p < P; ++p)
        if (present[p]) add(final_unit[p][0], final_unit[p][1], final_unit[p][2]);
      for (int c : opt.cells)
        for (int k : rank_kinds) add(opt.layer > 0 ? opt.layer - 1 : 0, k, c);
      series_values.assign(series.size(), std::vector<std::vector<float>>(C));
    }
    for (size_t s = 0; s < series.size(); ++s) {
      const auto [l, k, u] = series[s];
      std::vector<float>& v = series_values[s][i];
      v.resize(W);
      for (size_t n = 0; n < W; ++n) {
        const float x = rec.at(n, l, k, u);
        v[n] = kinds[k] == "c" ? std::tanh(x) : x;
      }
    }
    loss[i].assign(rec.loss.begin(), rec.loss.begin() + long(W));
    top[i].assign(rec.top.begin(), rec.top.begin() + long(W));
    double sum = 0;
    size_t counted = 0;
    for (float v : rec.loss)
      if (!std::isnan(v)) sum += v, ++counted;
    mean_loss[i] = counted ? sum / double(counted) : 0;

    // Drift: the last is measured once the first is at hand.
    if (i == C - 1) h_last = states_of(rec);
    if (i == 0) {
      h_first = states_of(rec);
      measure(h_first, 0);
      if (C > 1) measure(h_last, C - 1);
    } else if (i != C - 1) {
      measure(states_of(rec), i);
    }
    ++recorded;
    if (done) done(recorded);
  }

  // ---- the page's data
  Timeline out;
  nlohmann::json& j = out.data;
  j["format"] = "unroll-cells-timeline-1";
  j["title"] = opt.title;
  j["command"] = opt.command;
  j["model"] = {{"cell", cell_name(model.cell)},
                {"layers", model.layers},
                {"hidden", model.hidden},
                {"vocab", vocab.size()},
                {"params", params},
                {"text", opt.text_name},
                {"characters", N}};
  auto& chars = j["chars"] = nlohmann::json::array();
  for (size_t n = 0; n < W; ++n) chars.push_back(encode_utf8(std::u32string(1, text[n])));
  auto& jc = j["checkpoints"] = nlohmann::json::array();
  for (size_t i = 0; i < C; ++i) {
    nlohmann::json l = nlohmann::json::array(), t = nlohmann::json::array();
    for (float v : loss[i])
      l.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(round3(v)));
    for (const auto& guesses : top[i]) {
      auto g = nlohmann::json::array();
      for (int q = 0; q < 3; ++q)
        if (guesses[q].p > 0) g.push_back({vocab.token(guesses[q].id), round3(guesses[q].p)});
      t.push_back(std::move(g));
    }
    jc.push_back({{"name", points[i].name},
                  {"step", points[i].step},
                  {"tokens", points[i].tokens < 0 ? nlohmann::json(nullptr)
                                                  : nlohmann::json(points[i].tokens)},
                  {"mean_loss", round3(mean_loss[i])},
                  {"loss", std::move(l)},
                  {"top", std::move(t)}});
  }
  auto& js = j["series"] = nlohmann::json::array();
  for (size_t s = 0; s < series.size(); ++s) {
    const auto [l, k, u] = series[s];
    nlohmann::json vals = nlohmann::json::array();
    for (size_t i = 0; i < C; ++i) {
      nlohmann::json v = nlohmann::json::array();
      for (float x : series_values[s][i]) v.push_back(round3(x));
      vals.push_back(std::move(v));
    }
    std::string label;  // the probes it is best for at the end
    for (size_t p = 0; p < P; ++p)
      if (present[p] && final_unit[p] == series[s])
        label += (label.empty() ? "best at the end for " : ", ") + probes[p].name;
    js.push_back({{"id", unit_id(kinds, l, k, u)},
                  {"label", label.empty() ? std::string("chosen with --cells") : label},
                  {"layer", l + 1},
                  {"kind", kinds[k]},
                  {"unit", u},
                  {"range", activation_range(kinds[k])},
                  {"values", std::move(vals)}});
  }
  auto& jp = j["probes"] = nlohmann::json::array();
  double best_final = -1;
  for (size_t p = 0; p < P; ++p) {
    TimelineRow row{probes[p].name, probes[p].description, present[p]};
    if (!present[p]) {
      out.rows.push_back(row);
      jp.push_back({{"name", row.probe}, {"description", row.description}, {"present", false}});
      continue;
    }
    nlohmann::json ids = nlohmann::json::array(), corr = nlohmann::json::array(),
                   fin = nlohmann::json::array();
    for (size_t i = 0; i < C; ++i) {
      ids.push_back(best[p][i].id);
      corr.push_back(round3(best[p][i].corr));
      fin.push_back(round3(final_corr[p][i]));
      if (row.first < 0 && std::fabs(best[p][i].corr) >= opt.threshold) {
        row.first = int(i);
        row.first_id = best[p][i].id;
      }
    }
    row.final_id = best[p][C - 1].id;
    row.final_corr = best[p][C - 1].corr;
    row.same_since = int(C - 1);
    while (row.same_since > 0 && best[p][row.same_since - 1].id == row.final_id) --row.same_since;
    if (std::fabs(row.final_corr) > best_final) {
      best_final = std::fabs(row.final_corr);
      j["default_series"] = row.final_id;
    }
    nlohmann::json jr = {
        {"name", row.probe},
        {"description", row.description},
        {"present", true},
        {"binary", probes[p].binary},
        {"best_id", std::move(ids)},
        {"best_corr", std::move(corr)},
        {"final_id", row.final_id},
        {"final_corr", std::move(fin)},
        {"first", row.first < 0 ? nlohmann::json(nullptr) : nlohmann::json(row.first)},
        {"same_since", row.same_since}};
    if (opt.unit_correlations) jr["unit_corr"] = all_corr[p];
    jp.push_back(std::move(jr));
    out.rows.push_back(row);
  }
  if (!opt.cells.empty())  // the cell asked for, as the one-checkpoint page does
    j["default_series"] = unit_id(kinds, opt.layer > 0 ? opt.layer - 1 : 0, 0, opt.cells[0]);
  if (!j.contains("default_series") && !series.empty()) j["default_series"] = js[0]["id"];
  j["summary"] = {{"threshold", opt.threshold}, {"cka_rows", rows}};
  auto& jd = j["drift"] = nlohmann::json::array();
  for (int l = 0; l < L; ++l) {
    nlohmann::json a = nlohmann::json::array(), f = nlohmann::json::array(),
                   z = nlohmann::json::array();
    for (size_t i = 0; i < C; ++i) {
      a.push_back(std::round(drift[l][i] * 1e5) / 1e5);
      f.push_back(round3(cka_first[l][i]));
      z.push_back(round3(cka_last[l][i]));
    }
    jd.push_back({{"layer", l + 1}, {"mean_abs", a}, {"cka_first", f}, {"cka_last", z}});
  }
  return out;
}

}  // namespace unroll

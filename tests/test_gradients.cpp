// Gradient flow measurements (inspect/gradients.h) against finite differences
// and closed forms.
#include <gtest/gtest.h>

#include <cmath>

#include "grad_check.h"
#include "unroll/inspect/gradients.h"

using namespace unroll;

namespace {

ModelConfig cfg(CellKind cell, int layers, int hidden, int vocab) {
  return gradcheck::uniform_config(cell, layers, hidden, vocab, 0.6f);
}

std::vector<int32_t> random_ids(Rng& rng, size_t n, int vocab) {
  std::vector<int32_t> ids(n);
  for (auto& v : ids) v = int32_t(rng.below(vocab));
  return ids;
}

}  // namespace

// ‖∂L_T/∂h_{T-k}‖ of the top layer equals the norm of finite differences of the
// loss with respect to h_{T-k}: perturb the carried state between two chunks.
TEST(GradientFlow, LossGradientMatchesFiniteDifferences) {
  for (auto [cell, layers] : std::vector<std::pair<CellKind, int>>{
           {CellKind::RnnTanh, 1}, {CellKind::Lstm, 1}, {CellKind::Gru, 1}, {CellKind::Lstm, 2}}) {
    const int H = 4, V = 5, K = 6, warm = 3, W = K + 1;
    LanguageModel<double> m(cfg(cell, layers, H, V));
    Rng rng(7);
    m.init(rng);
    // A text of exactly the span a window needs: the window starts at 0.
    const std::vector<int32_t> ids = random_ids(rng, warm + W + 1, V);
    FlowOptions opt;
    opt.K = K, opt.batch = 1, opt.repeats = 1, opt.warmup = warm, opt.jacobian = false;
    const auto flow = measure_flow(m, ids, opt);
    ASSERT_EQ(flow.size(), size_t(layers));
    const int top = layers - 1;

    // Loss at step T = W-1 after perturbing the top layer's h after step t.
    auto loss_with = [&](int t, int j, double eps) {
      m.reset_state(1);
      m.forward(ids.data(), nullptr, warm, 1, Mode::Eval);
      m.forward(ids.data() + warm, nullptr, t + 1, 1, Mode::Eval);
      m.state_h[size_t(top) * H + j] += eps;
      std::vector<int32_t> tg(W - 1 - t, -1);
      tg.back() = ids[warm + W];
      return m.forward(ids.data() + warm + t + 1, tg.data(), W - 1 - t, 1, Mode::Eval).sum;
    };
    for (int k = 1; k <= K; ++k) {
      const int t = W - 1 - k;
      double norm2 = 0;
      for (int j = 0; j < H; ++j) {
        const double e = 1e-6;
        const double g = (loss_with(t, j, e) - loss_with(t, j, -e)) / (2 * e);
        norm2 += g * g;
      }
      EXPECT_NEAR(flow[top].loss_grad[k], std::sqrt(norm2), 1e-7 * (1 + std::sqrt(norm2)))
          << cell_name(cell) << " L" << layers << " k=" << k;
    }
    EXPECT_GT(flow[top].loss_grad[K], 0.0);
  }
}

// A linear RNN (ReLU with every pre-activation positive) with W_hh = a·I: each
// step back multiplies the gradient by exactly a, and ∂h_T/∂h_{T-k} = a^k I.
TEST(GradientFlow, LinearRnnWithScaledIdentityShrinksByExactlyA) {
  for (double a : {0.9, 1.1}) {
    const int H = 3, V = 4, K = 12;
    LanguageModel<double> m(cfg(CellKind::RnnRelu, 1, H, V));
    Rng rng(3);
    m.init(rng);
    RecurrentParams<double> w = m.weights(0);
    for (int i = 0; i < H * V; ++i) w.W_ih[i] = std::fabs(w.W_ih[i]);
    for (int i = 0; i < H; ++i) {
      for (int j = 0; j < H; ++j) w.W_hh[i * H + j] = i == j ? a : 0.0;
      w.b_ih[i] = 1.0, w.b_hh[i] = 0.0;
    }
    FlowOptions opt;
    opt.K = K, opt.batch = 3, opt.repeats = 2, opt.warmup = 4;
    const auto flow = measure_flow(m, random_ids(rng, 200, V), opt);
    for (int k = 0; k < K; ++k) {
      EXPECT_NEAR(flow[0].loss_grad[k + 1] / flow[0].loss_grad[k], a, 1e-12) << "k=" << k;
      EXPECT_NEAR(flow[0].jacobian[k], std::pow(a, k), 1e-9) << "k=" << k;
    }
    EXPECT_NEAR(fitted_factor(flow[0].loss_grad, 1, K), a, 1e-12);
  }
}

TEST(GradientFlow, FittedFactorOfAGeometricCurve) {
  std::vector<double> v;
  for (int k = 0; k <= 20; ++k) v.push_back(5 * std::pow(0.8, k));
  EXPECT_NEAR(fitted_factor(v, 0, 20), 0.8, 1e-12);
  v[3] = 0;  // skipped, not log(0)
  EXPECT_NEAR(fitted_factor(v, 0, 20), 0.8, 1e-12);
  EXPECT_TRUE(std::isnan(fitted_factor({1.0}, 0, 0)));
}

TEST(GradientFlow, SpectralRadiusAndSigmaMax) {
  // A rotation by 60° scaled by 1.5: complex eigenvalues of modulus 1.5
  // (power iteration on A alone would not converge), singular values 1.5.
  const float c = 0.5f, s = std::sqrt(3.0f) / 2;
  const float rot[] = {1.5f * c, -1.5f * s, 1.5f * s, 1.5f * c};
  EXPECT_NEAR(spectral_radius(rot, 2), 1.5, 1e-3);
  EXPECT_NEAR(sigma_max(rot, 2, 2), 1.5, 1e-6);
  // Upper triangular: eigenvalues 0.5 and −2, but σ_max > 2.
  const float tri[] = {0.5f, 3.0f, 0.0f, -2.0f};
  EXPECT_NEAR(spectral_radius(tri, 2), 2.0, 2e-3);
  EXPECT_GT(sigma_max(tri, 2, 2), 3.0);
  const float nil[] = {0, 1, 0, 0};
  EXPECT_NEAR(spectral_radius(nil, 2), 0.0, 1e-6);
  const float wide[] = {3, 0, 0, 0, 1, 0};  // [2, 3]
  EXPECT_NEAR(sigma_max(wide, 2, 3), 3.0, 1e-6);
  // A cyclic shift × 0.9 (orthogonal × 0.9; eigenvalues 0.9 × the 64th roots
  // of unity): a Frobenius-norm Gelfand estimate would read 0.9 × 64^(1/8192).
  const int n = 64;
  std::vector<float> shift(n * n, 0.0f);
  for (int i = 0; i < n; ++i) shift[i * n + (i + 1) % n] = 0.9f;
  const double rho = spectral_radius(shift.data(), n), smax = sigma_max(shift.data(), n, n);
  EXPECT_NEAR(rho, 0.9, 1e-5);
  EXPECT_LE(rho, smax);
}

TEST(GradientFlow, OrthogonalInitIsScaledOrthogonal) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm}) {
    const int H = 16;
    LanguageModel<float> m(cfg(cell, 2, H, 7));
    Rng rng(5);
    init_orthogonal(m, rng, 0.5);
    auto stats = recurrent_weight_stats(m);
    ASSERT_EQ(stats.size(), 2u);
    ASSERT_EQ(stats[0].size(), size_t(gate_count(cell)));
    for (const auto& layer : stats)
      for (const BlockStats& b : layer) {
        EXPECT_NEAR(b.sigma_max, 0.5, 1e-4) << b.block;
        EXPECT_NEAR(b.spectral_radius, 0.5, 2e-3) << b.block;
      }
    const float* w = m.weights(1).W_hh;  // rows orthogonal: W Wᵀ = 0.25 I
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < H; ++j) {
        double dot = 0;
        for (int k = 0; k < H; ++k) dot += double(w[i * H + k]) * w[j * H + k];
        EXPECT_NEAR(dot, i == j ? 0.25 : 0.0, 1e-5);
      }
  }
}

TEST(GradientFlow, ScalarExample) {
  EXPECT_EQ(scalar_linear(3, 3), (std::vector<double>{3, 9, 27}));
  EXPECT_EQ(scalar_linear(0.5, 2), (std::vector<double>{0.5, 0.25}));
  // With tanh the state saturates towards the fixed point of tanh(3h), and each
  // step's factor 3(1 − h²) falls below 1: the product ends far below 3^t.
  const auto steps = scalar_tanh(3, 6, 0.1, 0.0);
  ASSERT_EQ(steps.size(), 6u);
  double product = 1;
  for (const auto& s : steps) {
    EXPECT_NEAR(s.local, 3 * (1 - s.h * s.h), 1e-15);
    EXPECT_NEAR(s.product, product *= s.local, 1e-12);
  }
  EXPECT_GT(steps.back().h, 0.99);
  EXPECT_LT(steps.back().local, 0.1);
  EXPECT_LT(steps.back().product, std::pow(3.0, 6) / 100);
}

// The page's data, CSV and summary rows are built in the library (gradients_page_data):
// a layer whose gradient shrinks by exactly 0.9 a step has a fitted factor of 0.9 and a
// relative gradient of 0.9^k at k; a layer without Jacobians has none (null in the JSON,
// NaN in the row); the CSV has a line per model, layer and k.
TEST(GradientsPage, DataRowsAndCsvFromMeasurements) {
  const int K = 20, k_at = 10;
  MeasuredModel m;
  m.label = "rnn 2×8 (run/best.safetensors)";
  m.source = "run/best.safetensors";
  m.cfg.cell = CellKind::RnnTanh;
  m.cfg.layers = 2;
  m.cfg.hidden = 8;
  for (int l = 0; l < 2; ++l) {
    LayerFlow f;
    for (int k = 0; k <= K; ++k) f.loss_grad.push_back(3.0 * std::pow(0.9, k));
    if (l == 0)
      for (int k = 0; k <= K; ++k) f.jacobian.push_back(std::pow(1.1, k));
    m.flow.push_back(f);
    m.blocks.push_back({{"W_hh", 0.95, 1.25}});
  }
  const GradientsPage p =
      gradients_page_data({m}, K, k_at, 64, "t.txt", "unroll gradients x", nlohmann::json());
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_NEAR(p.rows[0].factor, 0.9, 1e-9);
  EXPECT_NEAR(p.rows[0].jacobian_factor, 1.1, 1e-9);
  EXPECT_NEAR(p.rows[0].rel_at, std::pow(0.9, k_at), 1e-12);
  EXPECT_TRUE(std::isnan(p.rows[1].jacobian_factor));
  EXPECT_EQ(p.rows[1].layer, 2);
  EXPECT_EQ(p.rows[0].w_hh, "W_hh 0.95/1.25");
  const nlohmann::json& d = p.data;
  EXPECT_EQ(d["format"], "unroll-gradients-1");
  EXPECT_EQ(d["K"], K);
  EXPECT_EQ(d.count("scalar"), 0u);
  EXPECT_NEAR(d["models"][0]["per_layer"][0]["factor"].get<double>(), 0.9, 1e-9);
  EXPECT_TRUE(d["models"][0]["per_layer"][1]["jacobian_factor"].is_null());
  size_t lines = 0;
  for (char c : p.csv) lines += c == '\n';
  EXPECT_EQ(lines, 1u + 2 * (K + 1));
  EXPECT_EQ(p.csv.rfind("model,layer,k,loss_grad,loss_grad_rel,jacobian\n", 0), 0u);
  EXPECT_NE(p.csv.find("\"rnn 2×8 (run/best.safetensors)\",2,20,"), std::string::npos);
}

// Gradient flow through time (see inspect/gradients.h).
#include "unroll/inspect/gradients.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "unroll/core/error.h"
#include "unroll/core/gemm.h"
#include "unroll/infer/evaluate.h"

namespace unroll {

namespace {

// Largest singular value of the [m, n] matrix whose row i is rows + i·stride,
// by power iteration on JᵀJ, starting from v ([n], unit length; updated, so
// it warm-starts the next, similar matrix).
template <class F>
double power_sigma(const F* rows, size_t stride, int m, int n, std::vector<double>& v, int iters) {
  std::vector<double> u(m), w(n);
  double sigma = 0;
  for (int it = 0; it < iters; ++it) {
    for (int i = 0; i < m; ++i) {  // u = J v
      const F* r = rows + i * stride;
      double s = 0;
      for (int j = 0; j < n; ++j) s += double(r[j]) * v[j];
      u[i] = s;
    }
    std::fill(w.begin(), w.end(), 0.0);  // w = Jᵀ u
    for (int i = 0; i < m; ++i) {
      const F* r = rows + i * stride;
      for (int j = 0; j < n; ++j) w[j] += double(r[j]) * u[i];
    }
    double norm = 0;
    for (double x : w) norm += x * x;
    norm = std::sqrt(norm);
    if (norm == 0) return 0;
    sigma = std::sqrt(norm);  // ‖JᵀJ v‖ → σ² for a unit v
    for (int j = 0; j < n; ++j) v[j] = w[j] / norm;
  }
  return sigma;
}

struct Window {
  std::vector<int32_t> warm, win, tgt;  // time-major [steps][B]
};

// B windows starting at the given positions: warm-up steps, then K+1 steps,
// the loss only at the last of them.
Window make_window(const std::vector<int32_t>& ids, const std::vector<size_t>& starts, int warmup,
                   int W) {
  const int B = int(starts.size());
  Window w;
  w.warm.resize(size_t(warmup) * B);
  w.win.resize(size_t(W) * B);
  w.tgt.assign(size_t(W) * B, -1);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < warmup; ++t) w.warm[size_t(t) * B + b] = ids[starts[b] + t];
    for (int t = 0; t < W; ++t) w.win[size_t(t) * B + b] = ids[starts[b] + warmup + t];
    w.tgt[size_t(W - 1) * B + b] = ids[starts[b] + warmup + W];
  }
  return w;
}

}  // namespace

template <class F>
std::vector<LayerFlow> measure_flow(LanguageModel<F>& m, const std::vector<int32_t>& ids,
                                    const FlowOptions& opt) {
  const ModelConfig& cfg = m.config();
  const int L = cfg.layers, H = cfg.hidden, K = opt.K, W = K + 1;
  require(cfg.head == HeadKind::Softmax, "gradient flow is measured on a language model");
  require(K >= 1 && opt.batch >= 1 && opt.repeats >= 1 && opt.warmup >= 0, "bad flow options");
  const size_t span = size_t(opt.warmup) + W + 1;
  require(ids.size() >= span, "the text has " + std::to_string(ids.size()) +
                                  " tokens; distances up to " + std::to_string(K) + " after " +
                                  std::to_string(opt.warmup) + " warm-up steps need at least " +
                                  std::to_string(span));
  StateGuard<F> guard(m);
  m.record_hidden_gradients(true);
  Rng rng(opt.seed);
  auto starts = [&](int B, bool same) {
    std::vector<size_t> s(B, rng.below(ids.size() - span + 1));
    if (!same)
      for (auto& v : s) v = rng.below(ids.size() - span + 1);
    return s;
  };
  std::vector<LayerFlow> out(L);
  for (auto& f : out) f.loss_grad.assign(K + 1, 0.0);

  // ‖∂L_T/∂h_{T-k}‖: B streams at random places, the loss at the last step.
  Buffer<F> hs, cs;
  for (int rep = 0; rep < opt.repeats; ++rep) {
    const int B = opt.batch;
    Window w = make_window(ids, starts(B, false), opt.warmup, W);
    m.reset_state(B);
    if (opt.warmup) m.forward(w.warm.data(), nullptr, opt.warmup, B, Mode::Eval);
    m.forward(w.win.data(), w.tgt.data(), W, B, Mode::Grad);
    // States that overflowed would stop the backward pass dead (past an
    // infinity a ReLU's output and slope are 0) and read as a vanished
    // gradient: refuse instead.
    for (int l = 0; l < L; ++l) {
      m.layer_states(l, hs, cs);
      for (size_t i = 0; i < size_t(W + 1) * B * H; ++i)
        require(std::isfinite(double(hs[i])),
                "the model's states overflow on this text (layer " + std::to_string(l + 1) +
                    " reaches infinity), so the gradient flow cannot be measured; weights this "
                    "large (for a --fresh model, its SCALE) overflow a float");
    }
    m.zero_grad();
    m.backward(F(1));
    for (int l = 0; l < L; ++l) {
      const F* d = m.hidden_gradients(l);
      for (int t = 0; t < W; ++t)
        for (int b = 0; b < B; ++b) {
          const F* r = d + (size_t(t) * B + b) * H;
          double s = 0;
          for (int j = 0; j < H; ++j) s += double(r[j]) * r[j];
          out[l].loss_grad[W - 1 - t] += std::sqrt(s) / (double(opt.repeats) * B);
        }
    }
  }
  m.zero_grad();

  // ‖∂h_T/∂h_{T-k}‖: H copies of one window, stream b seeded with unit b of h_T.
  if (opt.jacobian) {
    for (auto& f : out) f.jacobian.assign(K + 1, 0.0);
    std::vector<F> seed(size_t(W) * H * H, F(0));
    for (int b = 0; b < H; ++b) seed[(size_t(W - 1) * H + b) * H + b] = F(1);
    for (int rep = 0; rep < opt.repeats; ++rep) {
      Window w = make_window(ids, starts(H, true), opt.warmup, W);
      m.reset_state(H);
      if (opt.warmup) m.forward(w.warm.data(), nullptr, opt.warmup, H, Mode::Eval);
      m.forward(w.win.data(), nullptr, W, H, Mode::Grad);
      for (int l = 0; l < L; ++l) {
        m.backward_through_layer(l, seed.data());
        const F* d = m.hidden_gradients(l);
        std::vector<double> v(H, 1.0 / std::sqrt(double(H)));
        for (int k = 0; k <= K; ++k) {
          const F* rows = d + size_t(W - 1 - k) * H * H;  // row b: ∂h_T[b]/∂h_{T-k}
          out[l].jacobian[k] += power_sigma(rows, H, H, H, v, k == 0 ? 30 : 8) / opt.repeats;
        }
      }
    }
  }
  m.record_hidden_gradients(false);
  return out;
}

template std::vector<LayerFlow> measure_flow(LanguageModel<float>&, const std::vector<int32_t>&,
                                             const FlowOptions&);
template std::vector<LayerFlow> measure_flow(LanguageModel<double>&, const std::vector<int32_t>&,
                                             const FlowOptions&);

double fitted_factor(const std::vector<double>& v, int k0, int k1) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (int k = std::max(0, k0); k <= k1 && k < int(v.size()); ++k) {
    if (!(v[k] > 0) || !std::isfinite(v[k])) continue;
    const double y = std::log(v[k]);
    n += 1, sx += k, sy += y, sxx += double(k) * k, sxy += k * y;
  }
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  return std::exp((n * sxy - sx * sy) / (n * sxx - sx * sx));
}

double sigma_max(const float* a, int m, int n, int iters) {
  std::vector<double> v(n, 1.0 / std::sqrt(double(n)));
  return power_sigma(a, size_t(n), m, n, v, iters);
}

double spectral_radius(const float* a, int n, int squarings) {
  // A^(2^i) = e^{log_scale} · M with ‖M‖_F = 1.
  std::vector<float> M(a, a + size_t(n) * n), P(size_t(n) * n);
  auto normalise = [&](std::vector<float>& X) {
    double s = 0;
    for (float x : X) s += double(x) * x;
    s = std::sqrt(s);
    if (s > 0)
      for (float& x : X) x = float(x / s);
    return s;
  };
  double s0 = normalise(M);
  if (s0 == 0) return 0;
  double log_scale = std::log(s0);
  for (int i = 0; i < squarings; ++i) {
    gemm(false, false, n, n, n, 1.0f, M.data(), n, M.data(), n, 0.0f, P.data(), n);
    const double s = normalise(P);
    if (s == 0) return 0;  // nilpotent
    log_scale = 2 * log_scale + std::log(s);
    std::swap(M, P);
  }
  // ‖A^k‖_2 = e^{log_scale} σ_max(M): the spectral norm, not the Frobenius
  // norm, whose extra factor of up to √n would survive the k-th root as a bias
  // of n^(1/2k) (1.001 for an orthogonal 128×128 matrix at k = 2^12).
  const double sm = sigma_max(M.data(), n, n);
  if (!(sm > 0)) return 0;
  const double rho = std::exp((log_scale + std::log(sm)) / std::ldexp(1.0, squarings));
  return std::min(rho, sigma_max(a, n, n));  // ρ(A) ≤ σ_max(A) always
}

std::vector<std::vector<BlockStats>> recurrent_weight_stats(LanguageModel<float>& m) {
  const ModelConfig& cfg = m.config();
  const int H = cfg.hidden, G = gate_count(cfg.cell);
  const char* lstm[] = {"i", "f", "g", "o"};
  const char* gru[] = {"r", "z", "n"};
  std::vector<std::vector<BlockStats>> out(cfg.layers);
  for (int l = 0; l < cfg.layers; ++l) {
    const float* w = m.weights(l).W_hh;
    for (int g = 0; g < G; ++g) {
      const float* blk = w + size_t(g) * H * H;
      BlockStats s;
      s.block = cfg.cell == CellKind::Lstm ? lstm[g] : cfg.cell == CellKind::Gru ? gru[g] : "W_hh";
      s.spectral_radius = spectral_radius(blk, H);
      s.sigma_max = sigma_max(blk, H, H);
      out[l].push_back(s);
    }
  }
  return out;
}

template <class F>
void init_orthogonal(LanguageModel<F>& m, Rng& rng, double scale) {
  const ModelConfig& cfg = m.config();
  Rng r0 = rng;
  m.init(r0);  // embedding and the LSTM forget bias as usual; the rest is replaced
  const int H = cfg.hidden, G = gate_count(cfg.cell);
  auto xavier = [&](F* w, size_t count, int fan_in, int fan_out) {
    const double a = std::sqrt(6.0 / (fan_in + fan_out));
    for (size_t i = 0; i < count; ++i) w[i] = F(rng.uniform(-a, a));
  };
  std::vector<double> q(size_t(H) * H);
  for (int l = 0; l < cfg.layers; ++l) {
    RecurrentParams<F> w = m.weights(l);
    const int In = cfg.input_size(l);
    xavier(w.W_ih, size_t(G) * H * In, In, H);
    std::fill(w.b_hh, w.b_hh + size_t(G) * H, F(0));
    for (int k = 0; k < G * H; ++k)  // b_ih: 0 but the LSTM forget gate's
      if (!(cfg.cell == CellKind::Lstm && k >= H && k < 2 * H)) w.b_ih[k] = F(0);
    for (int g = 0; g < G; ++g) {
      // Rows of a Gaussian matrix, orthonormalised (modified Gram-Schmidt).
      for (double& x : q) x = rng.normal();
      for (int i = 0; i < H; ++i) {
        double* qi = q.data() + size_t(i) * H;
        for (int j = 0; j < i; ++j) {
          const double* qj = q.data() + size_t(j) * H;
          double dot = 0;
          for (int c = 0; c < H; ++c) dot += qi[c] * qj[c];
          for (int c = 0; c < H; ++c) qi[c] -= dot * qj[c];
        }
        double norm = 0;
        for (int c = 0; c < H; ++c) norm += qi[c] * qi[c];
        norm = std::sqrt(norm);
        for (int c = 0; c < H; ++c) qi[c] /= norm;
      }
      F* blk = w.W_hh + size_t(g) * H * H;
      for (size_t i = 0; i < q.size(); ++i) blk[i] = F(scale * q[i]);
    }
  }
  xavier(m.param("head.weight"), size_t(cfg.outputs) * H, H, cfg.outputs);
  std::fill_n(m.param("head.bias"), cfg.outputs, F(0));
}

template void init_orthogonal(LanguageModel<float>&, Rng&, double);
template void init_orthogonal(LanguageModel<double>&, Rng&, double);

std::vector<double> scalar_linear(double w, int steps) {
  std::vector<double> out;
  double p = 1;
  for (int t = 1; t <= steps; ++t) out.push_back(p *= w);
  return out;
}

std::vector<ScalarStep> scalar_tanh(double w, int steps, double h0, double x) {
  std::vector<ScalarStep> out;
  double h = h0, p = 1;
  for (int t = 1; t <= steps; ++t) {
    h = std::tanh(w * h + x);
    const double local = w * (1 - h * h);
    out.push_back({t, h, local, p *= local});
  }
  return out;
}

GradientsPage gradients_page_data(const std::vector<MeasuredModel>& models, int K, int k_at,
                                  int samples, const std::string& text_name,
                                  const std::string& command, const nlohmann::json& scalar) {
  GradientsPage out;
  nlohmann::json& j = out.data;
  j["format"] = "unroll-gradients-1";
  j["title"] = "unroll gradients — " + std::to_string(models.size()) + " model" +
               (models.size() > 1 ? "s" : "") + " on " + text_name;
  j["command"] = command;
  j["text"] = text_name;
  j["K"] = K;
  j["samples"] = samples;
  if (!scalar.is_null()) j["scalar"] = scalar;
  auto& jm = j["models"] = nlohmann::json::array();
  std::ostringstream csv;
  csv << "model,layer,k,loss_grad,loss_grad_rel,jacobian\n";
  auto num = [](double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  };
  for (const MeasuredModel& r : models) {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < r.flow.size(); ++l) {
      const LayerFlow& f = r.flow[l];
      std::vector<double> rel(f.loss_grad.size());
      for (size_t k = 0; k < rel.size(); ++k)
        rel[k] = f.loss_grad[0] > 0 ? f.loss_grad[k] / f.loss_grad[0] : 0.0;
      GradientsRow row;
      row.label = r.label;
      row.layer = int(l) + 1;
      row.factor = fitted_factor(f.loss_grad, 1, K);
      row.jacobian_factor = f.jacobian.empty() ? NAN : fitted_factor(f.jacobian, 1, K);
      row.rel_at = rel[k_at];
      row.jacobian_at = f.jacobian.empty() ? NAN : f.jacobian[k_at];
      nlohmann::json blocks = nlohmann::json::array();
      for (const BlockStats& b : r.blocks[l]) {
        blocks.push_back({{"block", b.block},
                          {"spectral_radius", b.spectral_radius},
                          {"sigma_max", b.sigma_max}});
        // Four significant digits, whatever the size: a fixed-point format
        // cut large values short.
        char rho[32], sigma[32];
        std::snprintf(rho, sizeof rho, "%.4g", b.spectral_radius);
        std::snprintf(sigma, sizeof sigma, "%.4g", b.sigma_max);
        row.w_hh += (row.w_hh.empty() ? "" : ", ") + b.block + " " + rho + "/" + sigma;
      }
      layers.push_back({{"layer", l + 1},
                        {"loss_grad", f.loss_grad},
                        {"loss_grad_rel", rel},
                        {"jacobian", f.jacobian},
                        {"factor", num(row.factor)},
                        {"jacobian_factor", num(row.jacobian_factor)},
                        {"w_hh", blocks}});
      for (int k = 0; k <= K; ++k) {
        csv << '"' << r.label << "\"," << l + 1 << ',' << k << ',' << f.loss_grad[k] << ','
            << rel[k] << ',';
        if (!f.jacobian.empty()) csv << f.jacobian[k];  // 6 significant digits, like the others
        csv << '\n';
      }
      out.rows.push_back(std::move(row));
    }
    jm.push_back({{"label", r.label},
                  {"cell", cell_name(r.cfg.cell)},
                  {"layers", r.cfg.layers},
                  {"hidden", r.cfg.hidden},
                  {"source", r.source},
                  {"per_layer", layers}});
  }
  out.csv = csv.str();
  return out;
}

}  // namespace unroll

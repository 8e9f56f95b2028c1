// unroll/inspect/gradients.h — how the gradient of a loss at step T shrinks or
// grows with the distance k to an earlier hidden state h_{T-k}.
//
// Backpropagation through time multiplies by the step Jacobian
// ∂h_t/∂h_{t-1} once per step (vanilla RNN: diag(1 − h_t²) · W_hh), so the
// gradient reaching h_{T-k} behaves roughly like a product of k factors:
// geometric decay (vanishing) or growth (exploding). Two measurements:
//   loss gradient  ‖∂L_T/∂h_{T-k}‖, the loss taken at step T only;
//   Jacobian       ‖∂h_T/∂h_{T-k}‖ (spectral norm) of the same layer, from
//                  H backward passes seeded with the unit vectors of h_T
//                  (run as H streams of one batch), one matrix per k.
// Both are averaged over many positions T of a text and, for the first, over
// the batch; every layer is measured.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unroll/core/rng.h"
#include "unroll/model/model.h"

namespace unroll {

struct FlowOptions {
  int K = 100;      // largest distance
  int batch = 32;   // streams per measurement (loss gradient)
  int repeats = 8;  // windows per stream (loss gradient), positions (Jacobian)
  int warmup = 50;  // steps run before each window, so h_{T-K} is a typical state
  bool jacobian = true;
  uint64_t seed = 1;  // window positions
};

struct LayerFlow {
  std::vector<double> loss_grad;  // [K+1] mean ‖∂L_T/∂h_{T-k}‖
  std::vector<double>
      jacobian;  // [K+1] mean spectral norm of ∂h_T/∂h_{T-k} (empty if not measured)
};

// Runs the model over windows of ids (each window K+1 steps after a warm-up);
// needs ids.size() > K + warmup + 1. Leaves the model's carried state as it
// found it. Gradients of the deterministic network: dropout is not applied.
template <class F>
std::vector<LayerFlow> measure_flow(LanguageModel<F>& model, const std::vector<int32_t>& ids,
                                    const FlowOptions& opt);

// Per-step factor of a curve: exp of the least-squares slope of log(v_k)
// against k over k in [k0, k1] (entries ≤ 0 or not finite are skipped).
// Returns NaN with fewer than two usable points.
double fitted_factor(const std::vector<double>& v, int k0, int k1);

// Largest singular value of a row-major [m, n] matrix (power iteration on AᵀA).
double sigma_max(const float* a, int m, int n, int iters = 100);
// Spectral radius (largest |eigenvalue|) of a square [n, n] matrix, from
// Gelfand's formula ρ = lim ‖Aᵏ‖₂^(1/k) with k = 2^squarings (normalised
// repeated squaring, then the spectral norm of Aᵏ by power iteration);
// never above sigma_max(A).
double spectral_radius(const float* a, int n, int squarings = 12);

// W_hh of every layer, split into its gate blocks of [H, H].
struct BlockStats {
  std::string block;  // "W_hh" (RNN), i f g o (LSTM), r z n (GRU)
  double spectral_radius = 0, sigma_max = 0;
};
std::vector<std::vector<BlockStats>> recurrent_weight_stats(LanguageModel<float>& model);

// Initialisation for studying gradient flow: W_hh gate blocks = scale ×
// a random orthogonal matrix (QR of a Gaussian one), W_ih and the head
// Xavier-uniform, biases 0 (LSTM forget bias as configured).
template <class F>
void init_orthogonal(LanguageModel<F>& model, Rng& rng, double scale);

// The lecture's scalar example, h_t = f(w·h_{t-1} + x): ∂h_t/∂h_0 after
// t = 1..steps. Linear f: w^t. tanh: each step multiplies by w·(1 − h_t²).
struct ScalarStep {
  int t = 0;
  double h = 0, local = 0, product = 0;
};
std::vector<double> scalar_linear(double w, int steps);
std::vector<ScalarStep> scalar_tanh(double w, int steps, double h0, double x);

// ---- what `unroll gradients` draws (inspect/page.h, gradients_page_html), writes as JSON and
// CSV, and prints ----
struct MeasuredModel {
  std::string label, source;  // how the page names the model, and where it came from
  ModelConfig cfg;
  std::vector<LayerFlow> flow;                  // per layer, measure_flow
  std::vector<std::vector<BlockStats>> blocks;  // per layer, recurrent_weight_stats
};
struct GradientsRow {       // one line of the summary table: a model's layer
  std::string label, w_hh;  // w_hh: "i 0.91/1.2, f ..." (spectral radius / sigma_max per block)
  int layer = 0;            // 1-based
  double factor = 0, jacobian_factor = 0;  // fitted per-step factors over k = 1..K (NaN: none)
  double rel_at = 0,
         jacobian_at = 0;  // ‖∂L_T/∂h_{T−k}‖ relative to k = 0, and the Jacobian, at k = k_at
};
struct GradientsPage {
  nlohmann::json data;  // format "unroll-gradients-1"
  std::string csv;      // model,layer,k,loss_grad,loss_grad_rel,jacobian
  std::vector<GradientsRow> rows;
};
// K: the largest distance measured; samples: positions averaged; scalar: the scalar
// example's data, or null.
GradientsPage gradients_page_data(const std::vector<MeasuredModel>& models, int K, int k_at,
                                  int samples, const std::string& text_name,
                                  const std::string& command, const nlohmann::json& scalar);

}  // namespace unroll

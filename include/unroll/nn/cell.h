// unroll/nn/cell.h — the cell math, all of it, in one place.
//
// Each cell has a fused element-wise forward and backward for one time step of
// B streams. The matrix products around them (the input projection of a whole
// chunk, the recurrent product per step, the weight gradients per chunk) live
// in nn/recurrent.h; here only the per-unit equations.
//
// Names follow the math: x input, h hidden, c LSTM cell state. Weights are
// PyTorch-shaped: W_ih = [W_xh] is [G*H, In], W_hh is [G*H, H], gate blocks
// stacked in PyTorch order (LSTM i,f,g,o; GRU r,z,n).
//
// Vanilla RNN (G = 1):
//   h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)          (or relu)
//   FLOPs/token/layer ≈ 2·H·(In + H) forward; memory/token: H (h_t, kept as the gate)
// LSTM (G = 4):
//   [i f g o] = W_ih x_t + W_hh h_{t-1} + b_ih + b_hh
//   i = σ(i), f = σ(f), g = tanh(g), o = σ(o)
//   c_t = f ⊙ c_{t-1} + i ⊙ g
//   h_t = o ⊙ tanh(c_t)
//   FLOPs/token/layer ≈ 8·H·(In + H) forward; memory/token: 4H (i f g o; c, h recomputed)
// GRU (G = 3), as PyTorch:
//   r = σ(W_ir x + b_ir + W_hr h + b_hr)
//   z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//   h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
//   FLOPs/token/layer ≈ 6·H·(In + H) forward; memory/token: 4H (r z n, W_hn h + b_hn)
// Backward costs twice the forward's FLOPs (one product for the input
// gradient, one for the weight gradient).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "unroll/core/fastmath.h"

namespace unroll {

enum class CellKind { RnnTanh, RnnRelu, Lstm, Gru };

inline int gate_count(CellKind k) {
  switch (k) {
    case CellKind::Lstm:
      return 4;
    case CellKind::Gru:
      return 3;
    default:
      return 1;
  }
}
std::string cell_name(CellKind k);        // "rnn", "rnn-relu", "lstm", "gru"
CellKind parse_cell(const std::string&);  // throws Error listing the accepted names

// Stable sigmoid for any scalar (used by the losses; the cells use act_sigmoid).
template <class T>
inline T sigmoid(T x) {
  if (x >= 0) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}

// ---- Vanilla RNN ---------------------------------------------------------
// a: [H] pre-activations in, activations out (h_t).
template <class T>
inline void rnn_forward(bool relu, int H, T* a) {
  if (relu) {
#pragma omp simd
    for (int j = 0; j < H; ++j) a[j] = a[j] > 0 ? a[j] : T(0);
  } else {
#pragma omp simd
    for (int j = 0; j < H; ++j) a[j] = act_tanh(a[j]);
  }
}
// h: [H] h_t; dh: [H] dL/dh_t in, dL/d(pre-activation) out.
template <class T>
inline void rnn_backward(bool relu, int H, const T* h, T* dh) {
  if (relu) {
#pragma omp simd
    for (int j = 0; j < H; ++j) dh[j] = h[j] > 0 ? dh[j] : T(0);
  } else {
#pragma omp simd
    for (int j = 0; j < H; ++j) dh[j] *= T(1) - h[j] * h[j];
  }
}

// ---- LSTM ----------------------------------------------------------------
template <class T>
inline T lstm_c(T i, T f, T n, T c_prev) {
  return f * c_prev + i * n;
}
template <class T>
inline T lstm_h(T o, T c) {
  return o * act_tanh(c);
}

// g: [4H] pre-activations in, activated gates out; c_prev, c, h: [H].
template <class T>
inline void lstm_forward(int H, T* g, const T* c_prev, T* c, T* h) {
  T *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    T i = act_sigmoid(gi[j]), f = act_sigmoid(gf[j]), n = act_tanh(gg[j]), o = act_sigmoid(go[j]);
    gi[j] = i, gf[j] = f, gg[j] = n, go[j] = o;
    c[j] = lstm_c(i, f, n, c_prev[j]);
    h[j] = lstm_h(o, c[j]);
  }
}
// The state update alone, from activated gates g: [4H] (LanguageModel recomputes h
// and c from the stored gates with it instead of keeping them per layer).
template <class T>
inline void lstm_state(int H, const T* g, const T* c_prev, T* c, T* h) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    c[j] = lstm_c(g[j], g[H + j], g[2 * H + j], c_prev[j]);
    h[j] = lstm_h(g[3 * H + j], c[j]);
  }
}
// g: [4H] activated gates; dh: [H] dL/dh_t; dc: [H] dL/dc_t from step t+1 in,
// dL/dc_{t-1} out; dg: [4H] dL/d(pre-activations) out.
template <class T>
inline void lstm_backward(int H, const T* g, const T* c_prev, const T* c, const T* dh, T* dc,
                          T* dg) {
  const T *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    T i = gi[j], f = gf[j], n = gg[j], o = go[j];
    T tc = act_tanh(c[j]);
    T dct = dc[j] + dh[j] * o * (T(1) - tc * tc);
    dg[j] = dct * n * i * (T(1) - i);              // d i
    dg[H + j] = dct * c_prev[j] * f * (T(1) - f);  // d f
    dg[2 * H + j] = dct * i * (T(1) - n * n);      // d g
    dg[3 * H + j] = dh[j] * tc * o * (T(1) - o);   // d o
    dc[j] = dct * f;
  }
}

// ---- GRU -----------------------------------------------------------------
template <class T>
inline T gru_h(T z, T n, T h_prev) {
  return (T(1) - z) * n + z * h_prev;
}

// gi: [3H] W_ih x + b_ih in, activated r z n out; gh: [3H] W_hh h + b_hh in;
// ghn: [H] keeps W_hn h + b_hn for the backward; h_prev, h: [H].
template <class T>
inline void gru_forward(int H, T* gi, const T* gh, T* ghn, const T* h_prev, T* h) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    T r = act_sigmoid(gi[j] + gh[j]);
    T z = act_sigmoid(gi[H + j] + gh[H + j]);
    T n = act_tanh(gi[2 * H + j] + r * gh[2 * H + j]);
    gi[j] = r, gi[H + j] = z, gi[2 * H + j] = n;
    ghn[j] = gh[2 * H + j];
    h[j] = gru_h(z, n, h_prev[j]);
  }
}
// The state update alone, from activated gates g: [3H] r z n.
template <class T>
inline void gru_state(int H, const T* g, const T* h_prev, T* h) {
#pragma omp simd
  for (int j = 0; j < H; ++j) h[j] = gru_h(g[H + j], g[2 * H + j], h_prev[j]);
}
// g: [3H] activated r z n; ghn: [H] W_hn h + b_hn; dh: [H] dL/dh_t.
// Out: dgi [3H] = dL/d(W_ih x + b_ih) per gate; dghn [H] = dL/d(W_hn h + b_hn)
// (the r and z parts of dL/d(W_hh h + b_hh) equal dgi's); dh_prev [H] = the
// direct part z ⊙ dh (the part through W_hh is added by the caller's product).
// dgi may alias g and dghn may alias ghn: each unit reads before it writes.
template <class T>
inline void gru_backward(int H, const T* g, const T* ghn, const T* h_prev, const T* dh, T* dgi,
                         T* dghn, T* dh_prev) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    T r = g[j], z = g[H + j], n = g[2 * H + j];
    T dn = dh[j] * (T(1) - z) * (T(1) - n * n);
    T dz = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
    T dr = dn * ghn[j] * r * (T(1) - r);
    dgi[j] = dr;
    dgi[H + j] = dz;
    dgi[2 * H + j] = dn;
    dghn[j] = dn * r;
    dh_prev[j] = dh[j] * z;
  }
}

}  // namespace unroll

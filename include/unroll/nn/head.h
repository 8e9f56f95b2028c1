// unroll/nn/head.h — the output side: linear head, losses, dropout, embedding.
// Shapes in comments; backward functions accumulate (+=) into weight gradients.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "unroll/core/fastmath.h"
#include "unroll/core/gemm.h"
#include "unroll/core/rng.h"
#include "unroll/nn/cell.h"

namespace unroll {

// y[N, O] = x[N, In] W^T + b        W: [O, In], b: [O]     (W_hy, b_y)
template <class T>
void linear_forward(const T* x, const T* W, const T* b, int64_t N, int In, int O, T* y) {
#pragma omp parallel for schedule(static) if (N * O > 65536)
  for (int64_t r = 0; r < N; ++r) std::memcpy(y + r * O, b, sizeof(T) * O);
  gemm(false, true, N, O, In, T(1), x, In, W, In, T(1), y, O);
}

// dW += alpha dy^T x; db += alpha Σ_rows dy; dx = alpha dy W (if dx).
template <class T>
void linear_backward(const T* x, const T* W, const T* dy, int64_t N, int In, int O, T alpha, T* dW,
                     T* db, T* dx) {
  gemm(true, false, O, In, N, alpha, dy, O, x, In, T(1), dW, In);
  for (int64_t r = 0; r < N; ++r)
    for (int k = 0; k < O; ++k) db[k] += alpha * dy[r * O + k];
  if (dx) gemm(false, false, N, In, O, alpha, dy, O, W, In, T(0), dx, In);
}

struct LossSum {
  double sum = 0;     // summed loss in nats over counted positions
  int64_t count = 0;  // positions with a target
};

// Softmax cross-entropy over O classes, fused with its gradient.
// logits: [N, O]; targets: [N], -1 = no loss here. dlogits (if given): [N, O]
// gets softmax − onehot(target) (zero rows for ignored positions).
template <class T>
LossSum softmax_xent(const T* logits, const int32_t* targets, int64_t N, int O, T* dlogits) {
  thread_local std::vector<double> row_loss_buf;  // summed in order: deterministic
  row_loss_buf.assign(N, 0.0);
  double* row_loss = row_loss_buf.data();  // the caller's buffer, shared by the team
#pragma omp parallel for schedule(static) if (N * O > 65536)
  for (int64_t r = 0; r < N; ++r) {
    const T* z = logits + r * O;
    const int32_t y = targets[r];
    if (y < 0) {
      if (dlogits) std::fill(dlogits + r * O, dlogits + (r + 1) * O, T(0));
      continue;
    }
    const T m = *std::max_element(z, z + O);
    T s = 0;
    if (dlogits) {  // one pass: e^(z−m) into dlogits, then normalise to softmax − onehot
      T* d = dlogits + r * O;
#pragma omp simd reduction(+ : s)
      for (int k = 0; k < O; ++k) s += (d[k] = act_exp(z[k] - m));
      const T inv = T(1) / s;
#pragma omp simd
      for (int k = 0; k < O; ++k) d[k] *= inv;
      d[y] -= T(1);
    } else {
#pragma omp simd reduction(+ : s)
      for (int k = 0; k < O; ++k) s += act_exp(z[k] - m);
    }
    row_loss[r] = double(m + std::log(s) - z[y]);
  }
  LossSum out;
  for (int64_t r = 0; r < N; ++r)
    if (targets[r] >= 0) out.sum += row_loss[r], ++out.count;
  return out;
}

// Binary cross-entropy on one logit per position, numerically stable:
// loss = max(z,0) − z·y + log(1 + exp(−|z|)), dloss/dz = σ(z) − y.
// logits, dlogits: [N]; targets: [N] in {0, 1}, -1 = no loss here.
template <class T>
LossSum sigmoid_bce(const T* logits, const int32_t* targets, int64_t N, T* dlogits) {
  double sum = 0;
  int64_t count = 0;
  for (int64_t r = 0; r < N; ++r) {
    const T z = logits[r];
    const int32_t y = targets[r];
    if (y < 0) {
      if (dlogits) dlogits[r] = 0;
      continue;
    }
    sum += double(std::max(z, T(0)) - z * T(y) + std::log1p(std::exp(-std::abs(z))));
    ++count;
    if (dlogits) dlogits[r] = sigmoid(z) - T(y);
  }
  return {sum, count};
}

// Inverted dropout: y = x ⊙ mask, mask ∈ {0, 1/(1−p)}; n elements.
template <class T>
void dropout_forward(Rng& rng, float p, int64_t n, const T* x, T* mask, T* y) {
  const T keep = T(1) / T(1 - p);
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = rng.uniform() < p ? T(0) : keep;
    y[i] = x[i] * mask[i];
  }
}
// Locked (variational) dropout, Gal & Ghahramani 2016: one mask per stream
// for the whole chunk. x, y, mask: [N·B, width] rows r = t·B + b (time-major);
// the B rows of step 0 are drawn, every later step repeats them. Backward is
// dropout_backward with the full mask.
template <class T>
void locked_dropout_forward(Rng& rng, float p, int64_t N, int64_t B, int64_t width, const T* x,
                            T* mask, T* y) {
  const T keep = T(1) / T(1 - p);
  const int64_t step = B * width;
  for (int64_t i = 0; i < std::min(step, N * width); ++i) mask[i] = rng.uniform() < p ? T(0) : keep;
  for (int64_t t = 1; t * B < N; ++t)
    std::memcpy(mask + t * step, mask, sizeof(T) * std::min(step, (N - t * B) * width));
  for (int64_t i = 0; i < N * width; ++i) y[i] = x[i] * mask[i];
}
template <class T>
void dropout_backward(int64_t n, const T* mask, const T* dy, T* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * mask[i];
}

// Embedding lookup: y[N, E] = table[ids[r]]; backward: dtable[ids[r]] += dy[r].
template <class T>
void embedding_forward(const T* table, const int32_t* ids, int64_t N, int E, T* y) {
  for (int64_t r = 0; r < N; ++r)
    std::memcpy(y + r * E, table + int64_t(ids[r]) * E, sizeof(T) * E);
}
template <class T>
void embedding_backward(const int32_t* ids, const T* dy, int64_t N, int E, T* dtable) {
  for (int64_t r = 0; r < N; ++r) {
    T* d = dtable + int64_t(ids[r]) * E;
    for (int k = 0; k < E; ++k) d[k] += dy[r * E + k];
  }
}

}  // namespace unroll

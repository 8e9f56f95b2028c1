// unroll/nn/recurrent.h — one recurrent layer run over a whole chunk of
// T steps × B streams (row r = t·B + b), forward and backward.
//
//   forward:  gates[TB, GH] = x[TB, In] W_ih^T + b     one GEMM (a column gather for one-hot x)
//             per step t:  gates_t += h_{t-1} W_hh^T   one GEMM [B,H]×[H,GH]
//                          fused cell math (nn/cell.h)
//   backward: per step t (T-1 → 0): fused cell backward, dh_{t-1} = dgates_t W_hh
//             (backward_steps), then (backward_weights)
//             dW_hh += dgates^T [GH,TB] · h_{0..T-1} [TB,H]   one GEMM over the chunk
//             dW_ih += dgates^T · x                           one GEMM (a column scatter for
//             one-hot) dx     = dgates · W_ih                          one GEMM
// The gradient does not flow into the previous chunk (truncated BPTT): the
// carried state enters as a constant h_0, c_0.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "unroll/core/buffer.h"
#include "unroll/core/error.h"
#include "unroll/core/gemm.h"
#include "unroll/nn/cell.h"

namespace unroll {

template <class F>
struct RecurrentParams {  // views into the flat parameter (or gradient) buffer
  F* W_ih;                // [G*H, In]  (W_xh)
  F* W_hh;                // [G*H, H]
  F* b_ih;                // [G*H]
  F* b_hh;                // [G*H]
};

// out[k] += Σ_r a[r, k] for a: [rows, cols] with row stride lda. Rows are read
// contiguously; each thread owns a block of columns, so the sum order never
// depends on the thread count.
template <class F>
void column_sums(const F* a, size_t rows, int cols, size_t lda, F* out) {
  constexpr int kBlock = 64;
  const int blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int blk = 0; blk < blocks; ++blk) {
    const int k0 = blk * kBlock, k1 = std::min(cols, k0 + kBlock);
    F s[kBlock] = {};
    for (size_t r = 0; r < rows; ++r) {
      const F* row = a + r * lda;
#pragma omp simd
      for (int k = k0; k < k1; ++k) s[k - k0] += row[k];
    }
    for (int k = k0; k < k1; ++k) out[k] += s[k - k0];
  }
}

// out[c, r] = a[r, c] for a: [rows, cols], in cache-sized tiles.
template <class F>
void transpose(const F* a, int rows, int cols, F* out) {
  constexpr int kTile = 32;
#pragma omp parallel for schedule(static) collapse(2) if (size_t(rows) * cols > 65536)
  for (int r0 = 0; r0 < rows; r0 += kTile)
    for (int c0 = 0; c0 < cols; c0 += kTile)
      for (int r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (int c = c0; c < std::min(cols, c0 + kTile); ++c)
          out[size_t(c) * rows + r] = a[size_t(r) * cols + c];
}

template <class F>
class RecurrentLayer {
 public:
  CellKind kind = CellKind::Lstm;
  int In = 0, H = 0;  // input and hidden sizes
  int G() const { return gate_count(kind); }

  // What a layer keeps of the last forward chunk is its gates: h and c of
  // every step follow from them and h_0, c_0 (states()), so the model lends
  // each layer shared h and c buffers instead of keeping one per layer.
  Buffer<F> gates;   // [T*B, G*H] activated gates (RNN: h_t itself); after backward_steps:
                     // dL/d(pre-activations), written in place (GRU: input-side sums)
  Buffer<F> ghn;     // GRU only: [T*B, H], W_hn h_{t-1} + b_hn; after backward its gradient
  Buffer<F> h0, c0;  // [B, H] the chunk's initial state
  Buffer<F> dh, dc;  // [B, H] gradient carried backwards through time
  Buffer<F> dht;     // [B, H] dL/dh_t at the current step
  Buffer<F>* w_hh_t = nullptr;  // [H, G*H] W_hh transposed for the per-step product
                                // (forward or backward, by CPU); scratch the model lends
  Buffer<F> w_ih_t;  // one-hot input: [In, G*H] W_ih transposed (forward) / dW_ih^T (backward)
  Buffer<F>* record_dh = nullptr;  // if set, backward_steps stores dL/dh_t of every step, [T*B, H]
  int T_ = 0, B_ = 0;
  bool has_activations = false;  // gates hold activations (a forward ran, no backward since)

  const F* dh0() const { return dh.data(); }  // dL/dh_0 after backward

  // x: [T*B, In] dense input, or ids: [T*B] token ids for a one-hot input
  // (then x == nullptr and In is the vocabulary size). h0, c0: [B, H].
  // h, c: [(T+1)*B, H] out: h_0 .. h_T and (LSTM) c_0 .. c_T. x may point into
  // h: it is read in full before h is written.
  void forward(const RecurrentParams<F>& w, const F* x, const int32_t* ids, int T, int B,
               const F* h_init, const F* c_init, F* h, F* c) {
    T_ = T, B_ = B;
    const int GH = G() * H;
    const size_t TB = size_t(T) * B;
    F* g = ensure(gates, TB * GH);
    std::memcpy(ensure(h0, size_t(B) * H), h_init, sizeof(F) * B * H);
    if (kind == CellKind::Lstm) std::memcpy(ensure(c0, size_t(B) * H), c_init, sizeof(F) * B * H);
    F* ghs = nullptr;
    F* gn = nullptr;
    if (kind == CellKind::Gru) {
      ghs = ensure(dht, size_t(B) * GH);  // scratch for W_hh h + b_hh of one step
      gn = ensure(ghn, TB * H);
    }
    // Input projection of all T*B positions at once, plus the biases that add to it.
    if (ids && TB < size_t(In)) {  // few positions (sampling): read the columns in place
      for (size_t r = 0; r < TB; ++r)
        for (int k = 0; k < GH; ++k) g[r * GH + k] = w.W_ih[size_t(k) * In + ids[r]];
    } else if (ids) {  // one-hot x: row ids[r] of W_ih^T (transposed once, then contiguous copies)
      F* wt = ensure(w_ih_t, size_t(In) * GH);
      for (int k = 0; k < GH; ++k)
        for (int v = 0; v < In; ++v) wt[size_t(v) * GH + k] = w.W_ih[size_t(k) * In + v];
#pragma omp parallel for schedule(static) if (TB * GH > 65536)
      for (size_t r = 0; r < TB; ++r)
        std::memcpy(g + r * GH, wt + size_t(ids[r]) * GH, sizeof(F) * GH);
    } else {
      gemm(false, true, TB, GH, In, F(1), x, In, w.W_ih, In, F(0), g, GH);
    }
    std::memcpy(h, h_init, sizeof(F) * B * H);  // after the projection: x may alias h
    if (c) std::memcpy(c, c_init, sizeof(F) * B * H);
    const bool fold_hh = kind != CellKind::Gru;  // GRU keeps b_hh inside r ⊙ (W_hn h + b_hn)
#pragma omp parallel for schedule(static) if (TB * GH > 65536)
    for (size_t r = 0; r < TB; ++r)
      for (int k = 0; k < GH; ++k) g[r * GH + k] += w.b_ih[k] + (fold_hh ? w.b_hh[k] : F(0));

    // h_{t-1} W_hh^T: on CPUs where oneDNN prefers B as [K, N]
    // (short_gemm_wants_bt() false) W_hh^T is stored row-major once per chunk;
    // that pays off over a chunk, not for one step of batch 1 (sampling).
    const bool pre_t = size_t(T) * B >= 64 && !short_gemm_wants_bt();
    Buffer<F> own;
    Buffer<F>& wt = w_hh_t ? *w_hh_t : own;
    if (pre_t) transpose(w.W_hh, GH, H, ensure(wt, size_t(H) * GH));
    auto recurrent = [&](const F* hp, F* out) {  // out[B, GH] += h_{t-1} W_hh^T
      if (pre_t)
        gemm(false, false, B, GH, H, F(1), hp, H, wt.data(), GH, F(1), out, GH);
      else
        gemm(false, true, B, GH, H, F(1), hp, H, w.W_hh, H, F(1), out, GH);
    };
    for (int t = 0; t < T; ++t) {
      F* gt = g + size_t(t) * B * GH;
      const F* hp = h + size_t(t) * B * H;
      F* hn = h + size_t(t + 1) * B * H;
      if (kind == CellKind::Gru) {
        for (int b = 0; b < B; ++b) std::memcpy(ghs + size_t(b) * GH, w.b_hh, sizeof(F) * GH);
        recurrent(hp, ghs);
      } else {
        recurrent(hp, gt);
      }
#pragma omp parallel for schedule(static) if (size_t(B) * GH > 16384)
      for (int b = 0; b < B; ++b) {
        F* gb = gt + size_t(b) * GH;
        switch (kind) {
          case CellKind::RnnTanh:
          case CellKind::RnnRelu:
            rnn_forward(kind == CellKind::RnnRelu, H, gb);
            std::memcpy(hn + size_t(b) * H, gb, sizeof(F) * H);
            break;
          case CellKind::Lstm: {
            const F* cp = c + size_t(t) * B * H + size_t(b) * H;
            F* cn = c + size_t(t + 1) * B * H + size_t(b) * H;
            lstm_forward(H, gb, cp, cn, hn + size_t(b) * H);
            break;
          }
          case CellKind::Gru:
            gru_forward(H, gb, ghs + size_t(b) * GH, gn + (size_t(t) * B + b) * H,
                        hp + size_t(b) * H, hn + size_t(b) * H);
            break;
        }
      }
    }
    has_activations = true;
  }

  // Recomputes what forward wrote to h and c ([(T+1)*B, H] each; c only for
  // the LSTM) from the gates and the initial state, with the same cell
  // equations (nn/cell.h): element-wise work, no matrix products.
  void states(F* h, F* c) const {
    require(has_activations, "layer states are only available after a forward, before backward");
    const int B = B_, GH = G() * H;
    std::memcpy(h, h0.data(), sizeof(F) * B * H);
    if (kind == CellKind::Lstm) std::memcpy(c, c0.data(), sizeof(F) * B * H);
#pragma omp parallel for schedule(static) if (size_t(B) * H * T_ > 65536)
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T_; ++t) {
        const size_t r = size_t(t) * B + b;
        const F* g = gates.data() + r * GH;
        F* hn = h + (r + B) * H;
        switch (kind) {
          case CellKind::RnnTanh:
          case CellKind::RnnRelu:
            std::memcpy(hn, g, sizeof(F) * H);
            break;
          case CellKind::Lstm:
            lstm_state(H, g, c + r * H, c + (r + B) * H, hn);
            break;
          case CellKind::Gru:
            gru_state(H, g, h + r * H, hn);
            break;
        }
      }
  }

  // Backward through time, first half. dout: [T*B, H] dL/dh_t from above (the
  // head or the next layer); h, c: this layer's states as forward wrote them.
  // Leaves dL/d(pre-activations) in gates (and ghn) and dL/dh_0 in dh0().
  void backward_steps(const RecurrentParams<F>& w, const F* dout, const F* h, const F* c) {
    require(has_activations, "backward needs a forward first");
    has_activations = false;
    const int T = T_, B = B_, GH = G() * H;
    // Each step's gate gradients overwrite its activations, which nothing
    // needs after that step's backward: one [T*B, G*H] buffer instead of two.
    F* dg = gates.data();
    F* dhc = ensure(dh, size_t(B) * H);
    F* dcc = kind == CellKind::Lstm ? ensure(dc, size_t(B) * H) : nullptr;
    F* dhs = ensure(dht, size_t(B) * std::max(H, GH));
    std::fill(dhc, dhc + size_t(B) * H, F(0));
    if (dcc) std::fill(dcc, dcc + size_t(B) * H, F(0));
    const F* g = gates.data();  // read at row r just before dg overwrites that row
    F* dgn = ghn.data();        // GRU: dL/d(W_hn h + b_hn) overwrites W_hn h + b_hn, row by row
    const bool gru = kind == CellKind::Gru;
    F* rec = record_dh ? ensure(*record_dh, size_t(T) * B * H) : nullptr;
    // dgates_t W_hh: the mirror of forward's choice — where oneDNN prefers B
    // as [N, K], W_hh^T is stored row-major once for the whole chunk.
    const bool bt = size_t(T) * B >= 64 && short_gemm_wants_bt();
    Buffer<F> own;
    Buffer<F>& wtb = w_hh_t ? *w_hh_t : own;
    const F* wt = bt ? ensure(wtb, size_t(H) * GH) : nullptr;
    if (bt) transpose(w.W_hh, GH, H, wtb.data());

    for (int t = T - 1; t >= 0; --t) {
      const size_t row0 = size_t(t) * B;
#pragma omp parallel for schedule(static) if (size_t(B) * GH > 16384)
      for (int b = 0; b < B; ++b) {
        const size_t r = row0 + b;
        F* d = dhs + size_t(b) * H;  // dL/dh_t = from above + from step t+1
        for (int j = 0; j < H; ++j) d[j] = dout[r * H + j] + dhc[size_t(b) * H + j];
        if (rec) std::memcpy(rec + r * H, d, sizeof(F) * H);
        switch (kind) {
          case CellKind::RnnTanh:
          case CellKind::RnnRelu:
            std::memcpy(dg + r * GH, d, sizeof(F) * H);  // overwrites g: read h_t from h
            rnn_backward(kind == CellKind::RnnRelu, H, h + (r + B) * H, dg + r * GH);
            break;
          case CellKind::Lstm:
            lstm_backward(H, g + r * GH, c + r * H, c + (r + B) * H, d, dcc + size_t(b) * H,
                          dg + r * GH);
            break;
          case CellKind::Gru:
            gru_backward(H, g + r * GH, dgn + r * H, h + r * H, d, dg + r * GH, dgn + r * H,
                         dhc + size_t(b) * H);
            break;
        }
      }
      // dh_{t-1} = dL/d(W_hh h_{t-1} + b_hh) · W_hh. For the GRU that gradient is
      // dgates' r and z blocks plus dghn for the n block, added to the z ⊙ dh_t
      // term gru_backward wrote.
      if (gru && bt) {
        gemm(false, true, B, H, 2 * H, F(1), dg + row0 * GH, GH, wt, GH, F(1), dhc, H);
        gemm(false, true, B, H, H, F(1), dgn + row0 * H, H, wt + 2 * H, GH, F(1), dhc, H);
      } else if (gru) {
        gemm(false, false, B, H, 2 * H, F(1), dg + row0 * GH, GH, w.W_hh, H, F(1), dhc, H);
        gemm(false, false, B, H, H, F(1), dgn + row0 * H, H, w.W_hh + size_t(2) * H * H, H, F(1),
             dhc, H);
      } else if (bt) {
        gemm(false, true, B, H, GH, F(1), dg + row0 * GH, GH, wt, GH, F(0), dhc, H);
      } else {
        gemm(false, false, B, H, GH, F(1), dg + row0 * GH, GH, w.W_hh, H, F(0), dhc, H);
      }
    }
  }

  // Backward, second half (after backward_steps): weight gradients, one GEMM
  // each over the whole chunk (parameter sharing across time is exactly this
  // sum over t), then the input gradient. grad: accumulates (+=) dL/dW.
  // h: this layer's states (read first); x, ids: the input as given to
  // forward; dx: [T*B, In] dL/dx out, or nullptr (one-hot input). dx may be
  // the buffer h points into: it is written last.
  void backward_weights(const RecurrentParams<F>& w, const RecurrentParams<F>& grad, const F* h,
                        const F* x, const int32_t* ids, F* dx) {
    const int T = T_, B = B_, GH = G() * H;
    const size_t TB = size_t(T) * B;
    const F* dg = gates.data();
    const F* dgn = ghn.data();
    if (kind == CellKind::Gru) {
      gemm(true, false, 2 * H, H, TB, F(1), dg, GH, h, H, F(1), grad.W_hh, H);
      gemm(true, false, H, H, TB, F(1), dgn, H, h, H, F(1), grad.W_hh + size_t(2) * H * H, H);
      column_sums(dg, TB, 2 * H, GH, grad.b_hh);
      column_sums(dgn, TB, H, H, grad.b_hh + 2 * H);
    } else {
      gemm(true, false, GH, H, TB, F(1), dg, GH, h, H, F(1), grad.W_hh, H);
      column_sums(dg, TB, GH, GH, grad.b_hh);
    }
    if (ids) {  // one-hot x: add each row of dgates to row ids[r] of dW_ih^T, then transpose
      F* acc = ensure(w_ih_t, size_t(In) * GH);
      std::fill(acc, acc + size_t(In) * GH, F(0));
      for (size_t r = 0; r < TB; ++r) {
        F* a = acc + size_t(ids[r]) * GH;
        const F* d = dg + r * GH;
#pragma omp simd
        for (int k = 0; k < GH; ++k) a[k] += d[k];
      }
      for (int k = 0; k < GH; ++k)
        for (int v = 0; v < In; ++v) grad.W_ih[size_t(k) * In + v] += acc[size_t(v) * GH + k];
    } else {
      gemm(true, false, GH, In, TB, F(1), dg, GH, x, In, F(1), grad.W_ih, In);
    }
    column_sums(dg, TB, GH, GH, grad.b_ih);
    if (dx) gemm(false, false, TB, In, GH, F(1), dg, GH, w.W_ih, In, F(0), dx, In);
  }
};

}  // namespace unroll

// unroll/model/sequence_model.h — many-to-one over whole sequences (model/stack.h
// for the layers and head): one result per sequence, from the summary
// (Last, Mean or Max) of the top layer's states; optionally bidirectional.
// Every sequence starts from a zero state; nothing is carried between batches.
// Memory: every layer's h (and c) at every position for both directions,
// O(L·dirs·(T+1)·B·H) — sequences are short, so no buffer is shared, unlike
// LanguageModel.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "unroll/model/stack.h"

namespace unroll {

template <class F>
class SequenceModel : public Stack<F> {
 public:
  explicit SequenceModel(const ModelConfig& cfg) : Stack<F>(cfg) {
    require(cfg.summary != Summary::Steps,
            "this model has a head at every step (summary 'steps'): one result per sequence "
            "needs summary last, mean or max");
  }

  // inputs: [T*B] token ids, time-major and right-padded: sequence b holds
  // rows t*B + b for t < lengths[b] (1 ≤ lengths[b] ≤ T); the rows after its
  // end hold any valid id and never reach its result. labels: [B] class ids
  // (sigmoid head: 0 or 1), or nullptr for logits only; weights: [B] loss
  // weight of each sequence, or nullptr for 1. The bidirectional encoder runs
  // a second stack over each sequence reversed (its own last step is the
  // sequence's first); layer l+1 of both stacks reads both of layer l's
  // states at the same position, as in PyTorch. logits() is then [B, outputs].
  // Returns the summed weighted loss and the number of labelled sequences.
  LossSum classify(const int32_t* inputs, const int32_t* lengths, const int32_t* labels,
                   const F* weights, int T, int B, Mode mode, Rng* rng = nullptr);

  void backward(F scale) override;

 private:
  struct SeqLayer {
    Buffer<F> h[2], c[2];  // [(T+1)·B, H] per direction
    Buffer<F> rev_in;      // [T*B, In] the layer's dense input, reversed per sequence
    Buffer<F> out;         // [T*B, dirs·H] both directions' states at each position
  };
  std::vector<SeqLayer> seq_;
  using Stack<F>::cfg_;  // as in LanguageModel
  using Stack<F>::layers_;
  using Stack<F>::rev_layers_;
  using Stack<F>::targets_;
  using Stack<F>::train_;
  std::vector<int32_t> lengths_, perm_, rev_ids_, labels_, argmax_;
  Buffer<F> zeros_, summary_, dsummary_, dout_, dh_, dx_, dxr_;
};

// perm_[r] for row r = t·B + b: the row that holds position len_b − 1 − t of
// sequence b (t < len_b; padding rows map to themselves). An involution:
// reversing twice is the identity.
template <class F>
LossSum SequenceModel<F>::classify(const int32_t* inputs, const int32_t* lengths,
                                   const int32_t* labels, const F* weights, int T, int B, Mode mode,
                                   Rng* rng) {
  require(T >= 1 && B >= 1, "a batch needs at least one sequence of at least one step");
  const int H = cfg_.hidden, L = cfg_.layers, O = cfg_.outputs, S = cfg_.state_size();
  const int dirs = cfg_.directions();
  const size_t TB = size_t(T) * B;
  for (int b = 0; b < B; ++b)
    require(lengths[b] >= 1 && lengths[b] <= T, "sequence " + std::to_string(b) + " has length " +
                                                    std::to_string(lengths[b]) + ", outside 1.." +
                                                    std::to_string(T));
  lengths_.assign(lengths, lengths + B);
  const F* x = this->input_forward(inputs, T, B, mode, rng);  // nullptr: one-hot ids
  labels_.assign(B, -1);
  if (labels) labels_.assign(labels, labels + B);
  targets_ = labels ? labels_.data() : nullptr;
  perm_.resize(TB);
  for (int t = 0; t < T; ++t)
    for (int b = 0; b < B; ++b)
      perm_[size_t(t) * B + b] = t < lengths[b] ? (lengths[b] - 1 - t) * B + b : t * B + b;
  seq_.resize(L);
  F* zeros = ensure(zeros_, size_t(B) * H);
  std::fill(zeros, zeros + size_t(B) * H, F(0));

  for (int l = 0; l < L; ++l) {
    SeqLayer& s = seq_[l];
    const int In = cfg_.input_size(l);
    for (int d = 0; d < dirs; ++d) {
      F* h = ensure(s.h[d], TB * H + size_t(B) * H);
      F* c = cfg_.cell == CellKind::Lstm ? ensure(s.c[d], TB * H + size_t(B) * H) : nullptr;
      const F* xin = x;
      const int32_t* ids = x ? nullptr : inputs;
      if (d == 1 && x) {
        F* xr = ensure(s.rev_in, TB * In);
        for (size_t r = 0; r < TB; ++r)
          std::memcpy(xr + r * In, x + size_t(perm_[r]) * In, sizeof(F) * In);
        xin = xr;
      } else if (d == 1) {
        rev_ids_.resize(TB);
        for (size_t r = 0; r < TB; ++r) rev_ids_[r] = inputs[perm_[r]];
        ids = rev_ids_.data();
      }
      (d ? rev_layers_ : layers_)[l].forward(this->run_weights(l, d), xin, ids, T, B, zeros, zeros,
                                             h, c);
    }
    F* out = ensure(s.out, TB * S);
    for (size_t r = 0; r < TB; ++r) {
      std::memcpy(out + r * S, s.h[0].data() + r * H + size_t(B) * H, sizeof(F) * H);
      if (dirs == 2)
        std::memcpy(out + r * S + H, s.h[1].data() + size_t(perm_[r]) * H + size_t(B) * H,
                    sizeof(F) * H);
    }
    if (l + 1 < L) x = this->maybe_drop(l + 1, out, TB, S, rng);
  }

  // The summary of each sequence: its states at its own last step (the
  // reversed stack's last step is position 0), their mean over its steps, or
  // each unit's maximum over its steps (argmax_ keeps the step, for backward).
  const F* top = seq_[L - 1].out.data();
  F* sm = ensure(summary_, size_t(B) * S);
  if (cfg_.summary == Summary::Max) argmax_.assign(size_t(B) * S, 0);
  for (int b = 0; b < B; ++b) {
    F* o = sm + size_t(b) * S;
    const int len = lengths[b];
    if (cfg_.summary == Summary::Last) {
      std::memcpy(o, top + (size_t(len - 1) * B + b) * S, sizeof(F) * H);
      if (dirs == 2) std::memcpy(o + H, top + size_t(b) * S + H, sizeof(F) * H);
    } else if (cfg_.summary == Summary::Max) {
      std::memcpy(o, top + size_t(b) * S, sizeof(F) * S);
      for (int t = 1; t < len; ++t)
        for (int k = 0; k < S; ++k) {
          const F v = top[(size_t(t) * B + b) * S + k];
          if (v > o[k]) o[k] = v, argmax_[size_t(b) * S + k] = t;
        }
    } else {
      std::fill(o, o + S, F(0));
      for (int t = 0; t < len; ++t)
        for (int k = 0; k < S; ++k) o[k] += top[(size_t(t) * B + b) * S + k];
      for (int k = 0; k < S; ++k) o[k] /= F(len);
    }
  }
  this->head_forward(sm, B, S, rng);
  if (!labels) return {};
  const F* z = this->logits_.data();
  F* dz = train_ ? ensure(this->dlogits_, size_t(B) * O) : nullptr;
  LossSum total;
  for (int b = 0; b < B; ++b) {  // one row at a time: each has its own weight
    const F w = weights ? weights[b] : F(1);
    LossSum l =
        cfg_.head == HeadKind::Softmax
            ? softmax_xent(z + size_t(b) * O, labels + b, 1, O, dz ? dz + size_t(b) * O : nullptr)
            : sigmoid_bce(z + b, labels + b, 1, dz ? dz + b : nullptr);
    total.sum += double(w) * l.sum;
    total.count += l.count;
    if (dz)
      for (int k = 0; k < O; ++k) dz[size_t(b) * O + k] *= w;
  }
  return total;
}

template <class F>
void SequenceModel<F>::backward(F scale) {
  require(train_ && targets_, "backward needs a training classify() with labels");
  const int T = this->T_, B = this->B_, H = cfg_.hidden, L = cfg_.layers;
  const int S = cfg_.state_size(), dirs = cfg_.directions();
  const size_t TB = size_t(T) * B;
  F* ds = ensure(dsummary_, size_t(B) * S);
  std::fill(ds, ds + size_t(B) * S, F(0));
  this->head_backward(B, S, scale, ds);
  // dL/d(top layer's states at every position): only the summarised ones.
  F* dout = ensure(dout_, TB * S);
  std::fill(dout, dout + TB * S, F(0));
  for (int b = 0; b < B; ++b) {
    const F* g = ds + size_t(b) * S;
    const int len = lengths_[b];
    if (cfg_.summary == Summary::Last) {
      F* o = dout + (size_t(len - 1) * B + b) * S;
      for (int k = 0; k < H; ++k) o[k] += g[k];
      if (dirs == 2)
        for (int k = H; k < S; ++k) dout[size_t(b) * S + k] += g[k];
    } else if (cfg_.summary == Summary::Max) {
      for (int k = 0; k < S; ++k)
        dout[(size_t(argmax_[size_t(b) * S + k]) * B + b) * S + k] += g[k];
    } else {
      for (int t = 0; t < len; ++t)
        for (int k = 0; k < S; ++k) dout[(size_t(t) * B + b) * S + k] += g[k] / F(len);
    }
  }
  for (int l = L - 1; l >= 0; --l) {
    SeqLayer& s = seq_[l];
    const int In = cfg_.input_size(l);
    const F* x = l > 0 ? this->layer_input(l) : (cfg_.embed ? this->layer_input(0) : nullptr);
    F* dx = x ? ensure(dx_, TB * In) : nullptr;
    F* dh = ensure(dh_, TB * H);
    for (int d = 0; d < dirs; ++d) {
      // Row r of the reversed stack is position perm_[r] of the sequence.
      for (size_t r = 0; r < TB; ++r)
        std::memcpy(dh + r * H, dout + (d ? size_t(perm_[r]) : r) * S + size_t(d) * H,
                    sizeof(F) * H);
      RecurrentLayer<F>& layer = (d ? rev_layers_ : layers_)[l];
      const F* c = cfg_.cell == CellKind::Lstm ? s.c[d].data() : nullptr;
      layer.backward_steps(this->run_weights(l, d), dh, s.h[d].data(), c);
      const F* xin = d && x ? s.rev_in.data() : x;
      const int32_t* ids = x ? nullptr : d ? rev_ids_.data() : this->inputs_;
      F* dxd = d && dx ? ensure(dxr_, TB * In) : dx;
      layer.backward_weights(this->run_weights(l, d), this->run_grads(l, d), s.h[d].data(), xin,
                             ids, dxd);
      this->fold_dropped_weight_grads(l, d);
      if (d && dx)
        for (size_t r = 0; r < TB; ++r)
          for (int k = 0; k < In; ++k) dx[r * In + k] += dxd[size_t(perm_[r]) * In + k];
    }
    if (!dx) break;
    if (l == 0) {
      this->input_backward(dx);
      break;
    }
    this->undrop(l, dx, TB * In);
    std::memcpy(dout, dx, sizeof(F) * TB * In);
  }
}

}  // namespace unroll

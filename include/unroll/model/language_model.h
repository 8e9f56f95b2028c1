// unroll/model/language_model.h — the stacked language model (model/stack.h
// for the layers and head): a head at every step of a stream read in chunks.
// A chunk is T steps × B streams, time-major: row r = t·B + b.
// The carried state (h, c of every layer for B streams) persists across
// chunks; forward starts from it and leaves the final state in it, which is
// truncated BPTT's "detach".
// Memory: two shared [(T+1)·B, max(H, E)] buffers that take turns holding h
// and dL/dh, one [(T+1)·B, H] for c (see backward), plus each layer's gates:
// depth costs only gates.
#pragma once
#include <cstdint>
#include <vector>

#include "unroll/model/stack.h"

namespace unroll {

template <class F>
class LanguageModel : public Stack<F> {
 public:
  explicit LanguageModel(const ModelConfig& cfg) : Stack<F>(cfg) {
    require(cfg.summary == Summary::Steps,
            "this model reads whole sequences (summary '" + summary_name(cfg.summary) +
                "'), with no head at every step: make_model builds it");
  }

  // ---- carried state: h[L][B][H], c[L][B][H] (c only for LSTM) ----
  void reset_state(int B) {
    state_B_ = B;
    from_categories_ = false;
    state_h.assign(size_t(cfg_.layers) * B * cfg_.hidden, F(0));
    state_c.assign(size_t(cfg_.layers) * B * cfg_.hidden, F(0));
  }
  void clear_state() {  // back to "no state yet": the next forward starts from zeros
    state_B_ = -1;
    state_h.clear();
    state_c.clear();
  }
  int state_batch() const { return state_B_; }

  // Conditional language models: B streams that start from their categories'
  // vectors (h of layer l = category.weight[cats[b], l·H .. (l+1)·H), c = 0).
  // The next forward's chunk starts there, and its backward adds dL/dh_0 of
  // every layer to those rows' gradients.
  void start_state(const int32_t* cats, int B) {
    require(cfg_.categories > 0, "this model is not conditioned on categories");
    reset_state(B);
    const int H = cfg_.hidden, L = cfg_.layers;
    const F* table = this->params.data() + layout_.parts().category;
    cats_.assign(cats, cats + B);
    for (int b = 0; b < B; ++b) {
      require(cats[b] >= 0 && cats[b] < cfg_.categories, "category " + std::to_string(cats[b]) +
                                                             " is outside 0.." +
                                                             std::to_string(cfg_.categories - 1));
      for (int l = 0; l < L; ++l)
        std::copy_n(table + (size_t(cats[b]) * L + l) * H, H,
                    state_h.data() + (size_t(l) * B + b) * H);
    }
    from_categories_ = true;
  }
  Buffer<F> state_h, state_c;

  // Runs a chunk. inputs, targets: [T*B] token ids (targets may be nullptr:
  // logits only; −1 marks a position without loss). Returns the summed loss.
  // Mode::Train applies dropout (drawing from rng) and prepares the backward.
  LossSum forward(const int32_t* inputs, const int32_t* targets, int T, int B, Mode mode,
                  Rng* rng = nullptr) {
    require(T >= 1 && B >= 1, "chunk must have at least one step and one stream");
    if (state_B_ != B) reset_state(B);
    const int H = cfg_.hidden, L = cfg_.layers, O = cfg_.outputs;
    const size_t TB = size_t(T) * B;
    const F* x = this->input_forward(inputs, T, B, mode, rng);  // nullptr: one-hot ids
    targets_ = targets;
    chunk_from_categories_ = from_categories_;  // only the first chunk starts there
    from_categories_ = false;

    // Shared workspace (see backward): every layer writes its h into xbuf_ and
    // its c into cbuf_, over the layer below's, which its input projection has
    // already read.
    const size_t rows = TB + B, width = std::max<size_t>(H, cfg_.embed);
    F* hbuf = ensure(xbuf_, rows * width);
    F* cbuf = cfg_.cell == CellKind::Lstm ? ensure(cbuf_, rows * H) : nullptr;
    for (int l = 0; l < L; ++l) {
      if (l > 0) x = this->maybe_drop(l, hbuf + size_t(B) * H, TB, H, rng);
      F* h0 = state_h.data() + size_t(l) * B * H;
      F* c0 = state_c.data() + size_t(l) * B * H;
      layers_[l].forward(this->run_weights(l), x, x ? nullptr : inputs, T, B, h0, c0, hbuf, cbuf);
      // The final state becomes the next chunk's initial state.
      std::copy_n(hbuf + TB * H, size_t(B) * H, h0);
      if (cbuf) std::copy_n(cbuf + TB * H, size_t(B) * H, c0);
    }
    this->head_forward(hbuf + size_t(B) * H, TB, H, rng);
    if (!targets) return {};
    F* z = this->logits_.data();
    F* dz = train_ ? ensure(this->dlogits_, TB * O) : nullptr;
    return cfg_.head == HeadKind::Softmax ? softmax_xent(z, targets, TB, O, dz)
                                          : sigmoid_bce(z, targets, TB, dz);
  }

  void backward(F scale) override {
    require(train_ && targets_, "backward needs a training forward with targets");
    const int B = this->B_, H = cfg_.hidden, L = cfg_.layers;
    const size_t TB = size_t(this->T_) * B;
    // Three shared [(T+1)·B, ·] buffers take turns (per layer only the gates
    // are kept): for layer l, hb holds h_l, db holds dL/dh_l from above, and
    // cbuf_ holds c_l. Once the per-step backward has read db and c_l, the
    // layer below's h and c are recomputed into db and cbuf_; once dW_hh has
    // read h_l, dL/dh_{l-1} goes into hb. Then the two swap roles.
    F* hb = xbuf_.data();  // the forward left the top layer's h and c here
    F* db = ensure(ybuf_, (TB + B) * std::max<size_t>(H, cfg_.embed));
    F* cb = cbuf_.data();
    this->head_backward(TB, H, scale, db);
    for (int l = L - 1; l >= 0; --l) {
      layers_[l].backward_steps(this->run_weights(l), db, hb, cb);
      if (chunk_from_categories_) {  // h_0 of layer l is a row of category.weight
        F* g = this->grads.data() + layout_.parts().category;
        for (int b = 0; b < B; ++b)
          for (int j = 0; j < H; ++j)
            g[(size_t(cats_[b]) * L + l) * H + j] += layers_[l].dh0()[size_t(b) * H + j];
      }
      if (l > 0) layers_[l - 1].states(db, cb);  // h_{l-1}, c_{l-1}
      const bool onehot = l == 0 && !cfg_.embed;
      // Layer l's input: the dropped copy if dropout ran, else h_{l-1} (in db).
      const F* x = l > 0 ? (this->dropped(l) ? this->layer_input(l) : db + size_t(B) * H)
                         : (cfg_.embed ? this->layer_input(0) : nullptr);
      layers_[l].backward_weights(this->run_weights(l), this->run_grads(l), hb, x,
                                  onehot ? this->inputs_ : nullptr, onehot ? nullptr : hb);
      this->fold_dropped_weight_grads(l);
      if (l == 0) {
        if (cfg_.embed) this->input_backward(hb);
        break;
      }
      this->undrop(l, hb, TB * size_t(cfg_.input_size(l)));
      std::swap(hb, db);
    }
  }

  // The last chunk's length; layer l, and its weights and gradients as views
  // into the flat buffers.
  int chunk_steps() const { return this->T_; }
  const RecurrentLayer<F>& layer(int l) const { return layers_[l]; }
  RecurrentParams<F> weights(int l) { return this->views_of(this->params, l); }
  RecurrentParams<F> grad_views(int l) { return this->views_of(this->grads, l); }

  // h and c of layer l at every step of the last forward, [(T+1)·B, H] each,
  // rows 0..B-1 holding the initial state (c only for the LSTM). Valid after
  // a forward and before backward (which turns the gates into gradients).
  void layer_states(int l, Buffer<F>& h, Buffer<F>& c) const {
    require(l >= 0 && l < cfg_.layers, "no layer " + std::to_string(l));
    const size_t n = (size_t(this->T_) + 1) * this->B_ * cfg_.hidden;
    layers_[l].states(ensure(h, n), cfg_.cell == CellKind::Lstm ? ensure(c, n) : nullptr);
  }

  // With recording on, every backward also keeps dL/dh_t of every layer at
  // every step (the total gradient reaching h_t: from the layer above, or the
  // head, and from step t+1): hidden_gradients(l) is [T*B, H], row t*B + b.
  void record_hidden_gradients(bool on) {
    dh_steps_.resize(cfg_.layers);
    for (int l = 0; l < cfg_.layers; ++l) layers_[l].record_dh = on ? &dh_steps_[l] : nullptr;
  }
  const F* hidden_gradients(int l) const { return dh_steps_.at(l).data(); }

  // Backpropagates dout ([T*B, H], a gradient on layer l's outputs h_1..h_T)
  // through layer l's own steps alone: no head, no other layer, no weight
  // gradients. With recording on, hidden_gradients(l) then holds the gradient
  // of Σ dout·h with respect to every h_t of that layer: seeding one unit of
  // h_T gives a row of the Jacobian ∂h_T/∂h_t. Needs a Mode::Grad forward;
  // turns layer l's gates into gradients, as backward does.
  void backward_through_layer(int l, const F* dout) {
    require(train_, "backward_through_layer needs a Mode::Grad forward");
    Buffer<F> h, c;
    layer_states(l, h, c);
    layers_[l].backward_steps(this->run_weights(l), dout, h.data(), c.data());
  }

 private:
  // The Stack's members read here unqualified: a class template's base
  // members must be named (C++'s dependent-base rule); the rest are reached
  // through this->.
  using Stack<F>::cfg_;
  using Stack<F>::layout_;
  using Stack<F>::layers_;
  using Stack<F>::targets_;
  using Stack<F>::train_;

  // Shared workspace, [(T+1)·B, max(H, E)] each: forward writes every layer's
  // h into xbuf_ and c into cbuf_; backward rotates xbuf_ and ybuf_ between
  // h and dL/dh (see backward).
  Buffer<F> xbuf_, ybuf_, cbuf_;
  int state_B_ = -1;
  bool from_categories_ = false, chunk_from_categories_ = false;
  std::vector<int32_t> cats_;
  std::vector<Buffer<F>> dh_steps_;  // per layer, when recording hidden gradients
};

}  // namespace unroll

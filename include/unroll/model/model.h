// unroll/model/model.h — a stacked recurrent model over token ids:
//   input (one-hot row lookup, or embedding) → L recurrent layers → dropout →
//   linear head → softmax cross-entropy (or one logit + sigmoid BCE).
// One flat parameter buffer and a parallel gradient buffer (model/params.h).
// A chunk is T steps × B streams, time-major: row r = t·B + b.
// The carried state (h, c of every layer for B streams) persists across
// chunks; forward starts from it and leaves the final state in it, which is
// truncated BPTT's "detach".
#pragma once
#include <cstdint>
#include <vector>

#include "unroll/core/buffer.h"
#include "unroll/core/error.h"
#include "unroll/core/rng.h"
#include "unroll/model/config.h"
#include "unroll/model/params.h"
#include "unroll/nn/head.h"
#include "unroll/nn/recurrent.h"

namespace unroll {

// Train: dropout on, keeps what backward needs. Grad: keeps what backward
// needs, no dropout (gradients of the deterministic network, for analysis).
// Eval: neither.
enum class Mode { Train, Eval, Grad };

template <class F>
class Model {
 public:
  explicit Model(const ModelConfig& cfg) : cfg_(cfg), layout_(cfg) {
    cfg_.validate();
    params.assign(layout_.total(), F(0));
    grads.assign(layout_.total(), F(0));
    for (int d = 0; d < cfg.directions(); ++d) {
      auto& stack = d ? rev_layers_ : layers_;
      stack.resize(cfg.layers);
      for (int l = 0; l < cfg.layers; ++l) {
        stack[l].kind = cfg.cell;
        stack[l].In = cfg.input_size(l);
        stack[l].H = cfg.hidden;
        stack[l].w_hh_t = &wt_;
      }
    }
    masks_.resize(cfg.layers + 1);
    inputs_of_.assign(cfg.layers + 1, nullptr);
  }

  Model(const Model&) = delete;  // the layers point into the model's scratch
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  Buffer<F> params;  // [layout().total()]
  Buffer<F> grads;   // same layout

  F* param(const std::string& name) { return params.data() + layout_.at(name).offset; }
  F* grad(const std::string& name) { return grads.data() + layout_.at(name).offset; }

  // The starting weights (config.h, InitKind): Uniform, every weight
  // U(−init_scale, init_scale) and biases 0; or PyTorch's defaults per
  // parameter kind. Then the LSTM forget-gate bias is added.
  void init(Rng& rng) {
    std::fill(params.begin(), params.end(), F(0));
    const bool torch = cfg_.init == InitKind::PyTorch;
    for (auto& v : layout_.views()) {
      const bool bias = v.name.find("bias") != std::string::npos;
      F* p = params.data() + v.offset;
      if (!torch) {
        if (bias) continue;
        for (size_t i = 0; i < v.size; ++i)
          p[i] = F(rng.uniform(-cfg_.init_scale, cfg_.init_scale));
      } else if (v.name == "embedding.weight" && !cfg_.tie) {
        for (size_t i = 0; i < v.size; ++i) p[i] = F(rng.normal());
      } else if (v.name.rfind("rnn.", 0) == 0 || v.name.rfind("head.", 0) == 0 ||
                 v.name == "embedding.weight") {
        // nn.RNN/LSTM/GRU: 1/√H for all; nn.Linear: 1/√fan_in (the head's input width),
        // also for a tied embedding, which is the head's weight (N(0, 1) would start
        // the logits at a spread of √H).
        const double fan_in =
            v.name.rfind("rnn.", 0) == 0 ? cfg_.hidden : double(cfg_.state_size());
        const double bound = 1.0 / std::sqrt(fan_in);
        for (size_t i = 0; i < v.size; ++i) p[i] = F(rng.uniform(-bound, bound));
      } else {  // category.weight: no PyTorch layer to follow
        for (size_t i = 0; i < v.size; ++i)
          p[i] = F(rng.uniform(-cfg_.init_scale, cfg_.init_scale));
      }
    }
    if (cfg_.cell == CellKind::Lstm)
      for (int l = 0; l < cfg_.layers; ++l)
        for (int d = 0; d < cfg_.directions(); ++d) {
          F* b = views_of(params, l, d).b_ih;
          for (int j = 0; j < cfg_.hidden; ++j) b[cfg_.hidden + j] += F(cfg_.forget_bias);
        }
  }
  void zero_grad() { std::fill(grads.begin(), grads.end(), F(0)); }

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
    const F* table = (params.data() + layout_.parts().category);
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
    require(cfg_.summary == Summary::Steps, "this model reads whole sequences (summary '" +
                                                summary_name(cfg_.summary) +
                                                "'): run it with classify()");
    require(T >= 1 && B >= 1, "chunk must have at least one step and one stream");
    if (state_B_ != B) reset_state(B);
    const int H = cfg_.hidden, L = cfg_.layers, O = cfg_.outputs;
    const size_t TB = size_t(T) * B;
    check_token_ids(inputs, TB);
    T_ = T, B_ = B, train_ = mode != Mode::Eval;
    start_regularisation(mode, rng);
    inputs_ = inputs;
    targets_ = targets;
    chunk_from_categories_ = from_categories_;  // only the first chunk starts there
    from_categories_ = false;

    // Shared workspace (see backward): every layer writes its h into xbuf_ and
    // its c into cbuf_, over the layer below's, which its input projection has
    // already read.
    const size_t rows = TB + B, width = std::max<size_t>(H, cfg_.embed);
    F* hbuf = ensure(xbuf_, rows * width);
    F* cbuf = cfg_.cell == CellKind::Lstm ? ensure(cbuf_, rows * H) : nullptr;
    const F* x = nullptr;  // dense input of the current layer
    if (cfg_.embed) {
      F* e = ensure(embed_out_, TB * cfg_.embed);
      embedding_forward((params.data() + layout_.parts().embedding), inputs, TB, cfg_.embed, e);
      drop_embedding_rows(e, inputs, TB);
      x = maybe_drop(0, e, TB, cfg_.embed, rng);
    }
    for (int l = 0; l < L; ++l) {
      if (l > 0) x = maybe_drop(l, hbuf + size_t(B) * H, TB, H, rng);
      F* h0 = state_h.data() + size_t(l) * B * H;
      F* c0 = state_c.data() + size_t(l) * B * H;
      layers_[l].forward(run_weights(l), x, l == 0 && !cfg_.embed ? inputs : nullptr, T, B, h0, c0,
                         hbuf, cbuf);
      // The final state becomes the next chunk's initial state.
      std::copy_n(hbuf + TB * H, size_t(B) * H, h0);
      if (cbuf) std::copy_n(cbuf + TB * H, size_t(B) * H, c0);
    }
    head_in_ = maybe_drop(L, hbuf + size_t(B) * H, TB, H, rng);
    F* z = ensure(logits_, TB * O);
    linear_forward(head_in_, head_weight(params), (params.data() + layout_.parts().head_bias), TB,
                   H, O, z);
    if (!targets) return {};
    F* dz = train_ ? ensure(dlogits_, TB * O) : nullptr;
    return cfg_.head == HeadKind::Softmax ? softmax_xent(z, targets, TB, O, dz)
                                          : sigmoid_bce(z, targets, TB, dz);
  }

  // Backward of the last Mode::Train forward (with targets): accumulates
  // scale · d(summed loss)/dθ into grads. scale sets the normalisation, e.g.
  // 1/count for the mean per token, 1/B for "summed over steps, mean over batch".
  void backward(F scale) {
    if (cfg_.summary != Summary::Steps) return backward_sequences(scale);
    require(train_ && targets_, "backward needs a training forward with targets");
    const int T = T_, B = B_, H = cfg_.hidden, L = cfg_.layers, O = cfg_.outputs;
    const size_t TB = size_t(T) * B;
    // Three shared [(T+1)·B, ·] buffers take turns (per layer only the gates
    // are kept): for layer l, hb holds h_l, db holds dL/dh_l from above, and
    // cbuf_ holds c_l. Once the per-step backward has read db and c_l, the
    // layer below's h and c are recomputed into db and cbuf_; once dW_hh has
    // read h_l, dL/dh_{l-1} goes into hb. Then the two swap roles.
    F* hb = xbuf_.data();  // the forward left the top layer's h and c here
    F* db = ensure(ybuf_, (TB + B) * std::max<size_t>(H, cfg_.embed));
    F* cb = cbuf_.data();
    linear_backward(head_in_, head_weight(params), dlogits_.data(), TB, H, O, scale,
                    head_weight(grads), (grads.data() + layout_.parts().head_bias), db);
    undrop(L, db, TB * H);
    for (int l = L - 1; l >= 0; --l) {
      layers_[l].backward_steps(run_weights(l), db, hb, cb);
      if (chunk_from_categories_) {  // h_0 of layer l is a row of category.weight
        F* g = (grads.data() + layout_.parts().category);
        for (int b = 0; b < B; ++b)
          for (int j = 0; j < H; ++j)
            g[(size_t(cats_[b]) * L + l) * H + j] += layers_[l].dh0()[size_t(b) * H + j];
      }
      if (l > 0) layers_[l - 1].states(db, cb);  // h_{l-1}, c_{l-1}
      const bool onehot = l == 0 && !cfg_.embed;
      // Layer l's input: the dropped copy if dropout ran, else h_{l-1} (in db).
      const F* x = l > 0 ? (masks_[l].on ? layer_input(l) : db + size_t(B) * H)
                         : (cfg_.embed ? layer_input(0) : nullptr);
      layers_[l].backward_weights(run_weights(l), run_grads(l), hb, x, onehot ? inputs_ : nullptr,
                                  onehot ? nullptr : hb);
      fold_dropped_weight_grads(l);
      if (onehot) break;
      undrop(l, hb, TB * size_t(cfg_.input_size(l)));
      std::swap(hb, db);
    }
    if (cfg_.embed) {
      undrop_embedding_rows(db, inputs_, TB);
      embedding_backward(inputs_, db, TB, cfg_.embed, (grads.data() + layout_.parts().embedding));
    }
  }

  // h and c of layer l at every step of the last forward, [(T+1)·B, H] each,
  // rows 0..B-1 holding the initial state (c only for the LSTM). Valid after
  // a forward and before backward (which turns the gates into gradients).
  void layer_states(int l, Buffer<F>& h, Buffer<F>& c) const {
    require(l >= 0 && l < cfg_.layers, "no layer " + std::to_string(l));
    const size_t n = (size_t(T_) + 1) * B_ * cfg_.hidden;
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
    layers_[l].backward_steps(run_weights(l), dout, h.data(), c.data());
  }

  // Logits of the last forward: [T*B, outputs].
  const F* logits() const { return logits_.data(); }
  int chunk_steps() const { return T_; }
  const RecurrentLayer<F>& layer(int l) const { return layers_[l]; }

  RecurrentParams<F> weights(int l) { return views_of(params, l); }
  RecurrentParams<F> grad_views(int l) { return views_of(grads, l); }

  // ---- many-to-one: one result per sequence (summary Last or Mean) ----
  // inputs: [T*B] token ids, time-major and right-padded: sequence b holds
  // rows t*B + b for t < lengths[b] (1 ≤ lengths[b] ≤ T); the rows after its
  // end hold any valid id and never reach its result. Every sequence starts
  // from a zero state (no carried state). labels: [B] class ids (sigmoid
  // head: 0 or 1), or nullptr for logits only; weights: [B] loss weight of
  // each sequence, or nullptr for 1. The bidirectional encoder runs a second
  // stack over each sequence reversed (its own last step is the sequence's
  // first); layer l+1 of both stacks reads both of layer l's states at the
  // same position, as in PyTorch. logits() is then [B, outputs]. Returns the
  // summed weighted loss and the number of labelled sequences.
  LossSum classify(const int32_t* inputs, const int32_t* lengths, const int32_t* labels,
                   const F* weights, int T, int B, Mode mode, Rng* rng = nullptr);

 private:
  void backward_sequences(F scale);
  void check_token_ids(const int32_t* ids, size_t n) const {
    for (size_t r = 0; r < n; ++r)
      require(ids[r] >= 0 && ids[r] < cfg_.vocab, "token id " + std::to_string(ids[r]) +
                                                      " is outside the vocabulary of " +
                                                      std::to_string(cfg_.vocab));
  }
  RecurrentParams<F> views_of(Buffer<F>& buf, int l, int d = 0) {
    const RecurrentOffsets& o = layout_.parts().layer(l, d);
    return {buf.data() + o.w_ih, buf.data() + o.w_hh, buf.data() + o.b_ih, buf.data() + o.b_hh};
  }
  // ---- regularisation (training only; config.h says what each does) ----
  // A forward in Mode::Train draws this chunk's masks in a fixed order:
  // embedding rows, then W_hh of every layer (DropConnect), then the dense
  // inputs from the bottom up as the forward reaches them.
  void start_regularisation(Mode mode, Rng* rng) {
    regularise_ = mode == Mode::Train;
    const bool any = cfg_.any_dropout() || cfg_.embed_dropout > 0 || cfg_.weight_drop > 0;
    require(!regularise_ || !any || rng, "dropout needs a random generator");
    for (auto& m : masks_) m.on = false;
    embed_drop_on_ = regularise_ && cfg_.embed_dropout > 0;
    if (embed_drop_on_) {
      const F keep = F(1) / F(1 - cfg_.embed_dropout);
      embed_mask_.resize(cfg_.vocab);
      for (auto& m : embed_mask_) m = rng->uniform() < cfg_.embed_dropout ? F(0) : keep;
    }
    weight_drop_on_ = regularise_ && cfg_.weight_drop > 0;
    if (weight_drop_on_) {
      const size_t n = whh_size();
      const F keep = F(1) / F(1 - cfg_.weight_drop);
      weight_drops_.resize(size_t(cfg_.layers) * cfg_.directions());
      for (int l = 0; l < cfg_.layers; ++l)
        for (int d = 0; d < cfg_.directions(); ++d) {
          WeightDrop& wd = weight_drop(l, d);
          const F* w = views_of(params, l, d).W_hh;
          F* mask = ensure(wd.mask, n);
          F* out = ensure(wd.w, n);
          for (size_t i = 0; i < n; ++i) {
            mask[i] = rng->uniform() < cfg_.weight_drop ? F(0) : keep;
            out[i] = w[i] * mask[i];
          }
        }
    }
  }
  size_t whh_size() const { return size_t(gate_count(cfg_.cell)) * cfg_.hidden * cfg_.hidden; }
  // Embedding dropout: row r of the lookup scaled by its token's mask.
  void drop_embedding_rows(F* e, const int32_t* ids, size_t rows) {
    if (!embed_drop_on_) return;
    for (size_t r = 0; r < rows; ++r)
      for (int k = 0; k < cfg_.embed; ++k) e[r * cfg_.embed + k] *= embed_mask_[ids[r]];
  }
  void undrop_embedding_rows(F* d, const int32_t* ids, size_t rows) {
    drop_embedding_rows(d, ids, rows);
  }
  // The recurrent weights a forward and backward run with: W_hh masked under
  // DropConnect. Their W_hh gradient then goes to scratch, and
  // fold_dropped_weight_grads adds it to grads through the mask.
  RecurrentParams<F> run_weights(int l, int d = 0) {
    RecurrentParams<F> w = views_of(params, l, d);
    if (weight_drop_on_) w.W_hh = weight_drop(l, d).w.data();
    return w;
  }
  RecurrentParams<F> run_grads(int l, int d = 0) {
    RecurrentParams<F> g = views_of(grads, l, d);
    if (weight_drop_on_) {
      const size_t n = whh_size();
      F* s = ensure(weight_drop(l, d).g, n);
      std::fill(s, s + n, F(0));
      g.W_hh = s;
    }
    return g;
  }
  void fold_dropped_weight_grads(int l, int d = 0) {
    if (!weight_drop_on_) return;
    const WeightDrop& wd = weight_drop(l, d);
    F* g = views_of(grads, l, d).W_hh;
    const size_t n = whh_size();
    for (size_t i = 0; i < n; ++i) g[i] += wd.g[i] * wd.mask[i];
  }
  // Dropout on dense input k (config.h, dropout_at; k = L: the head's input):
  // x is [rows, width], time-major with B_ rows a step.
  const F* maybe_drop(int k, const F* x, size_t rows, size_t width, Rng* rng) {
    const float p = cfg_.dropout_at(k);
    DropState& ds = masks_[k];
    ds.on = regularise_ && p > 0;
    if (!ds.on) {
      inputs_of_[k] = x;
      return x;
    }
    F* mask = ensure(ds.mask, rows * width);
    F* y = ensure(ds.out, rows * width);
    if (cfg_.locked)
      locked_dropout_forward(*rng, p, int64_t(rows), int64_t(B_), int64_t(width), x, mask, y);
    else
      dropout_forward(*rng, p, int64_t(rows * width), x, mask, y);
    inputs_of_[k] = y;
    return y;
  }
  const F* layer_input(int k) const { return inputs_of_.at(k); }
  void undrop(int k, F* d, size_t n) {
    if (masks_[k].on) dropout_backward(n, masks_[k].mask.data(), d, d);
  }
  // The head's weight: head.weight, or with tie the embedding.
  F* head_weight(Buffer<F>& buf) { return buf.data() + layout_.parts().head_weight; }

  struct DropState {
    Buffer<F> mask, out;  // [T*B, width] of the layer input
    bool on = false;      // this chunk's forward dropped it
  };
  struct WeightDrop {
    Buffer<F> mask, w, g;  // [G·H, H]: the mask, the masked W_hh, its gradient
  };
  WeightDrop& weight_drop(int l, int d) { return weight_drops_[size_t(l) * cfg_.directions() + d]; }
  bool regularise_ = false, embed_drop_on_ = false, weight_drop_on_ = false;
  std::vector<F> embed_mask_;  // [vocab]
  std::vector<WeightDrop> weight_drops_;

  ModelConfig cfg_;
  ParamLayout layout_;
  std::vector<RecurrentLayer<F>> layers_;
  std::vector<DropState> masks_;
  std::vector<const F*> inputs_of_;  // [L + 1] dense inputs (k = L: head)
  Buffer<F> embed_out_, logits_, dlogits_;
  // Shared workspace, [(T+1)·B, max(H, E)] each: forward writes every layer's
  // h into xbuf_ and c into cbuf_; backward rotates xbuf_ and ybuf_ between
  // h and dL/dh (see backward). wt_ lends every layer room for W_hh^T.
  Buffer<F> xbuf_, ybuf_, cbuf_, wt_;
  const F* head_in_ = nullptr;
  const int32_t* inputs_ = nullptr;
  const int32_t* targets_ = nullptr;
  int T_ = 0, B_ = 0, state_B_ = -1;
  bool train_ = false;
  bool from_categories_ = false, chunk_from_categories_ = false;
  std::vector<int32_t> cats_;
  std::vector<Buffer<F>> dh_steps_;  // per layer, when recording hidden gradients

  // classify(): the reversed stack, and every layer's states kept (sequences
  // are short; no buffer sharing as in the language-model path).
  std::vector<RecurrentLayer<F>> rev_layers_;
  struct SeqLayer {
    Buffer<F> h[2], c[2];  // [(T+1)·B, H] per direction
    Buffer<F> rev_in;      // [T*B, In] the layer's dense input, reversed per sequence
    Buffer<F> out;         // [T*B, dirs·H] both directions' states at each position
  };
  std::vector<SeqLayer> seq_;
  std::vector<int32_t> lengths_, perm_, rev_ids_, labels_, argmax_;
  Buffer<F> zeros_, summary_, dsummary_, dout_, dh_, dx_, dxr_;
};

// perm_[r] for row r = t·B + b: the row that holds position len_b − 1 − t of
// sequence b (t < len_b; padding rows map to themselves). An involution:
// reversing twice is the identity.
template <class F>
LossSum Model<F>::classify(const int32_t* inputs, const int32_t* lengths, const int32_t* labels,
                           const F* weights, int T, int B, Mode mode, Rng* rng) {
  require(cfg_.summary != Summary::Steps,
          "this model has a head at every step: classify() needs summary last, mean or max");
  require(T >= 1 && B >= 1, "a batch needs at least one sequence of at least one step");
  const int H = cfg_.hidden, L = cfg_.layers, O = cfg_.outputs, S = cfg_.state_size();
  const int dirs = cfg_.directions();
  const size_t TB = size_t(T) * B;
  check_token_ids(inputs, TB);
  lengths_.assign(lengths, lengths + B);
  for (int b = 0; b < B; ++b)
    require(lengths[b] >= 1 && lengths[b] <= T, "sequence " + std::to_string(b) + " has length " +
                                                    std::to_string(lengths[b]) + ", outside 1.." +
                                                    std::to_string(T));
  T_ = T, B_ = B, train_ = mode != Mode::Eval;
  start_regularisation(mode, rng);
  inputs_ = inputs;
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

  const F* x = nullptr;  // dense input of the current layer (nullptr: one-hot ids)
  if (cfg_.embed) {
    F* e = ensure(embed_out_, TB * cfg_.embed);
    embedding_forward((params.data() + layout_.parts().embedding), inputs, TB, cfg_.embed, e);
    drop_embedding_rows(e, inputs, TB);
    x = maybe_drop(0, e, TB, cfg_.embed, rng);
  }
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
      (d ? rev_layers_ : layers_)[l].forward(run_weights(l, d), xin, ids, T, B, zeros, zeros, h, c);
    }
    F* out = ensure(s.out, TB * S);
    for (size_t r = 0; r < TB; ++r) {
      std::memcpy(out + r * S, s.h[0].data() + r * H + size_t(B) * H, sizeof(F) * H);
      if (dirs == 2)
        std::memcpy(out + r * S + H, s.h[1].data() + size_t(perm_[r]) * H + size_t(B) * H,
                    sizeof(F) * H);
    }
    if (l + 1 < L) x = maybe_drop(l + 1, out, TB, S, rng);
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
  head_in_ = maybe_drop(L, sm, B, S, rng);
  F* z = ensure(logits_, size_t(B) * O);
  linear_forward(head_in_, head_weight(params), (params.data() + layout_.parts().head_bias), B, S,
                 O, z);
  if (!labels) return {};
  F* dz = train_ ? ensure(dlogits_, size_t(B) * O) : nullptr;
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
void Model<F>::backward_sequences(F scale) {
  require(train_ && targets_, "backward needs a training classify() with labels");
  const int T = T_, B = B_, H = cfg_.hidden, L = cfg_.layers, O = cfg_.outputs;
  const int S = cfg_.state_size(), dirs = cfg_.directions();
  const size_t TB = size_t(T) * B;
  F* ds = ensure(dsummary_, size_t(B) * S);
  std::fill(ds, ds + size_t(B) * S, F(0));
  linear_backward(head_in_, head_weight(params), dlogits_.data(), B, S, O, scale,
                  head_weight(grads), (grads.data() + layout_.parts().head_bias), ds);
  undrop(L, ds, size_t(B) * S);
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
    const F* x = l > 0 ? layer_input(l) : (cfg_.embed ? layer_input(0) : nullptr);
    F* dx = x ? ensure(dx_, TB * In) : nullptr;
    F* dh = ensure(dh_, TB * H);
    for (int d = 0; d < dirs; ++d) {
      // Row r of the reversed stack is position perm_[r] of the sequence.
      for (size_t r = 0; r < TB; ++r)
        std::memcpy(dh + r * H, dout + (d ? size_t(perm_[r]) : r) * S + size_t(d) * H,
                    sizeof(F) * H);
      RecurrentLayer<F>& layer = (d ? rev_layers_ : layers_)[l];
      const F* c = cfg_.cell == CellKind::Lstm ? s.c[d].data() : nullptr;
      layer.backward_steps(run_weights(l, d), dh, s.h[d].data(), c);
      const F* xin = d && x ? s.rev_in.data() : x;
      const int32_t* ids = x ? nullptr : d ? rev_ids_.data() : inputs_;
      F* dxd = d && dx ? ensure(dxr_, TB * In) : dx;
      layer.backward_weights(run_weights(l, d), run_grads(l, d), s.h[d].data(), xin, ids, dxd);
      fold_dropped_weight_grads(l, d);
      if (d && dx)
        for (size_t r = 0; r < TB; ++r)
          for (int k = 0; k < In; ++k) dx[r * In + k] += dxd[size_t(perm_[r]) * In + k];
    }
    if (!dx) break;
    undrop(l, dx, TB * In);
    if (l == 0) {
      undrop_embedding_rows(dx, inputs_, TB);
      embedding_backward(inputs_, dx, TB, cfg_.embed, (grads.data() + layout_.parts().embedding));
    } else
      std::memcpy(dout, dx, sizeof(F) * TB * In);
  }
}

}  // namespace unroll

// unroll/model/stack.h — what every model over token ids shares:
//   input (one-hot row lookup, or embedding) → L recurrent layers → dropout →
//   linear head → softmax cross-entropy (or one logit + sigmoid BCE).
// One flat parameter buffer and a parallel gradient buffer (model/params.h),
// the layers, the head, the starting weights and the training-time
// regularisation. How the states of a batch are kept is each model's own:
//   LanguageModel (model/language_model.h): chunks of a stream, a carried
//     state, shared buffers that the layers take in turn — memory
//     O((T+1)·B·max(H, E)) for any depth, plus each layer's gates.
//   SequenceModel (model/sequence_model.h): whole sequences, one result each,
//     optionally bidirectional — every layer's states kept, O(L·dirs·T·B·H).
#pragma once
#include <cstdint>
#include <string>
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
class Stack {
 public:
  explicit Stack(const ModelConfig& cfg) : cfg_(cfg), layout_(cfg) {
    cfg_.validate();
    params.assign(layout_.total(), F(0));
    grads.assign(layout_.total(), F(0));
    for (int d = 0; d < cfg.directions(); ++d) {
      auto& direction = d ? rev_layers_ : layers_;
      direction.resize(cfg.layers);
      for (int l = 0; l < cfg.layers; ++l) {
        direction[l].kind = cfg.cell;
        direction[l].In = cfg.input_size(l);
        direction[l].H = cfg.hidden;
        direction[l].w_hh_t = &wt_;
      }
    }
    masks_.resize(cfg.layers + 1);
    inputs_of_.assign(cfg.layers + 1, nullptr);
  }
  virtual ~Stack() = default;
  Stack(const Stack&) = delete;  // the layers point into the model's scratch
  Stack& operator=(const Stack&) = delete;

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
      } else if (v.part == Part::Embedding && !cfg_.tie) {
        for (size_t i = 0; i < v.size; ++i) p[i] = F(rng.normal());
      } else if (v.part != Part::Category) {
        // nn.RNN/LSTM/GRU: 1/√H for all; nn.Linear: 1/√fan_in (the head's input width),
        // also for a tied embedding, which is the head's weight (N(0, 1) would start
        // the logits at a spread of √H).
        const double fan_in = v.part == Part::Recurrent ? cfg_.hidden : double(cfg_.state_size());
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

  // Backward of the last training forward (LanguageModel::forward or
  // SequenceModel::classify, with targets): accumulates
  // scale · d(summed loss)/dθ into grads. scale sets the normalisation, e.g.
  // 1/count for the mean per token, 1/B for "summed over steps, mean over batch".
  virtual void backward(F scale) = 0;

  // Logits of the last forward: [rows, outputs] (a row per position, or per sequence).
  const F* logits() const { return logits_.data(); }

 protected:
  // ---- the shared ends of every forward and backward ----
  // Starts a forward over TB = T·B rows of ids: checks them, draws this
  // batch's masks, and returns the first layer's dense input (the dropped
  // embedding) or nullptr for one-hot ids.
  const F* input_forward(const int32_t* ids, int T, int B, Mode mode, Rng* rng) {
    const size_t TB = size_t(T) * B;
    for (size_t r = 0; r < TB; ++r)
      require(ids[r] >= 0 && ids[r] < cfg_.vocab, "token id " + std::to_string(ids[r]) +
                                                      " is outside the vocabulary of " +
                                                      std::to_string(cfg_.vocab));
    T_ = T, B_ = B, train_ = mode != Mode::Eval;
    start_regularisation(mode, rng);
    inputs_ = ids;
    if (!cfg_.embed) return nullptr;
    F* e = ensure(embed_out_, TB * cfg_.embed);
    embedding_forward(params.data() + layout_.parts().embedding, ids, TB, cfg_.embed, e);
    drop_embedding_rows(e, ids, TB);
    return maybe_drop(0, e, TB, cfg_.embed, rng);
  }
  // dx: dL/d(the embedding's dropped output), [T·B, E]; adds to its gradient.
  void input_backward(F* dx) {
    const size_t TB = size_t(T_) * B_;
    undrop(0, dx, TB * cfg_.embed);
    drop_embedding_rows(dx, inputs_, TB);
    embedding_backward(inputs_, dx, TB, cfg_.embed, grads.data() + layout_.parts().embedding);
  }
  // The head over rows × width inputs x (dropped first): fills logits_.
  void head_forward(const F* x, size_t rows, int width, Rng* rng) {
    head_in_ = maybe_drop(cfg_.layers, x, rows, width, rng);
    linear_forward(head_in_, params.data() + layout_.parts().head_weight,
                   params.data() + layout_.parts().head_bias, rows, width, cfg_.outputs,
                   ensure(logits_, rows * cfg_.outputs));
  }
  // scale · dL/dlogits (dlogits_) into the head's gradients, and into dx
  // ([rows, width], overwritten): the gradient on the head's input.
  void head_backward(size_t rows, int width, F scale, F* dx) {
    linear_backward(head_in_, params.data() + layout_.parts().head_weight, dlogits_.data(), rows,
                    width, cfg_.outputs, scale, grads.data() + layout_.parts().head_weight,
                    grads.data() + layout_.parts().head_bias, dx);
    undrop(cfg_.layers, dx, rows * width);
  }

  RecurrentParams<F> views_of(Buffer<F>& buf, int l, int d = 0) {
    const RecurrentOffsets& o = layout_.parts().layer(l, d);
    return {buf.data() + o.w_ih, buf.data() + o.w_hh, buf.data() + o.b_ih, buf.data() + o.b_hh};
  }

  // ---- regularisation (training only; config.h says what each does) ----
  // A forward in Mode::Train draws this batch's masks in a fixed order:
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
  // Embedding dropout: row r of the lookup scaled by its token's mask (also
  // its own backward).
  void drop_embedding_rows(F* e, const int32_t* ids, size_t rows) {
    if (!embed_drop_on_) return;
    for (size_t r = 0; r < rows; ++r)
      for (int k = 0; k < cfg_.embed; ++k) e[r * cfg_.embed + k] *= embed_mask_[ids[r]];
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
  // What dense input k was after dropout (the layer's input as it ran).
  const F* layer_input(int k) const { return inputs_of_.at(k); }
  bool dropped(int k) const { return masks_[k].on; }
  void undrop(int k, F* d, size_t n) {
    if (masks_[k].on) dropout_backward(n, masks_[k].mask.data(), d, d);
  }

  ModelConfig cfg_;
  ParamLayout layout_;
  // The layers, bottom up; rev_layers_: the bidirectional encoder's second
  // direction (SequenceModel), which reads each sequence reversed.
  std::vector<RecurrentLayer<F>> layers_, rev_layers_;
  Buffer<F> logits_, dlogits_;
  const int32_t* inputs_ = nullptr;   // the last forward's ids, [T*B]
  const int32_t* targets_ = nullptr;  // its targets (nullptr: logits only)
  int T_ = 0, B_ = 0;
  bool train_ = false;  // the last forward kept what backward needs

 private:
  struct DropState {
    Buffer<F> mask, out;  // [rows, width] of the layer input
    bool on = false;      // this batch's forward dropped it
  };
  struct WeightDrop {
    Buffer<F> mask, w, g;  // [G·H, H]: the mask, the masked W_hh, its gradient
  };
  WeightDrop& weight_drop(int l, int d) { return weight_drops_[size_t(l) * cfg_.directions() + d]; }
  bool regularise_ = false, embed_drop_on_ = false, weight_drop_on_ = false;
  std::vector<F> embed_mask_;  // [vocab]
  std::vector<WeightDrop> weight_drops_;
  std::vector<DropState> masks_;
  std::vector<const F*> inputs_of_;  // [L + 1] dense inputs (k = L: head)
  Buffer<F> embed_out_, wt_;         // wt_ lends every layer room for W_hh^T
  const F* head_in_ = nullptr;
};

}  // namespace unroll

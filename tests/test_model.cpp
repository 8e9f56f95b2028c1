// Behaviour of the model beyond gradients: the vanilla cell's concatenation
// identity, parameter sharing across time, float/double agreement, carried
// state, and that an LSTM can memorise a short text.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "grad_check.h"
#include "unroll/model/model.h"
#include "unroll/train/optimizer.h"

using namespace unroll;

namespace {

ModelConfig small(CellKind cell, int layers, int hidden, int vocab) {
  return gradcheck::uniform_config(cell, layers, hidden, vocab, 0.5f);
}

// h_t = tanh(W [h_{t-1}; x_t] + b) with W = [W_hh | W_xh] of shape 2×5 gives the
// same h_t as W_hh h_{t-1} + W_xh x_t (hidden 2, input 3).
TEST(VanillaRnn, ConcatenationIdentity) {
  ModelConfig c = small(CellKind::RnnTanh, 1, 2, 3);
  c.embed = 0;
  LanguageModel<double> m(c);
  Rng rng(3);
  m.init(rng);
  double* Wxh = m.param("rnn.weight_ih_l0");  // [2, 3]
  double* Whh = m.param("rnn.weight_hh_l0");  // [2, 2]
  double* bi = m.param("rnn.bias_ih_l0");
  double* bh = m.param("rnn.bias_hh_l0");
  for (int j = 0; j < 2; ++j) bi[j] = rng.uniform(-1, 1), bh[j] = rng.uniform(-1, 1);
  double W[2][5];  // [W_hh | W_xh]
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) W[i][j] = Whh[i * 2 + j];
    for (int j = 0; j < 3; ++j) W[i][2 + j] = Wxh[i * 3 + j];
  }
  const int32_t xs[4] = {0, 2, 1, 1};
  m.reset_state(1);
  m.state_h[0] = 0.3, m.state_h[1] = -0.6;
  double h[2] = {0.3, -0.6};
  m.forward(xs, nullptr, 4, 1, Mode::Eval);
  Buffer<double> hs, cs;
  m.layer_states(0, hs, cs);
  for (int t = 0; t < 4; ++t) {
    double hx[5] = {h[0], h[1], 0, 0, 0};
    hx[2 + xs[t]] = 1;  // one-hot x_t
    double next[2];
    for (int i = 0; i < 2; ++i) {
      double a = bi[i] + bh[i];
      for (int j = 0; j < 5; ++j) a += W[i][j] * hx[j];
      next[i] = std::tanh(a);
    }
    h[0] = next[0], h[1] = next[1];
    const double* ht = hs.data() + (t + 1) * 2;
    EXPECT_NEAR(ht[0], h[0], 1e-14) << "step " << t;
    EXPECT_NEAR(ht[1], h[1], 1e-14) << "step " << t;
  }
}

// The W_hh gradient of a chunk equals the sum over steps of each step's own
// contribution dL/dgates_t ⊗ h_{t-1}: one shared matrix, T uses.
TEST(ParameterSharing, WhhGradientIsSumOfPerStepContributions) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru}) {
    ModelConfig c = small(cell, 1, 4, 5);
    LanguageModel<double> m(c);
    Rng rng(5);
    m.init(rng);
    const int T = 6, B = 2;
    std::vector<int32_t> in(T * B), tg(T * B);
    for (auto& v : in) v = int32_t(rng.below(5));
    for (auto& v : tg) v = int32_t(rng.below(5));
    m.reset_state(B);
    m.zero_grad();
    m.forward(in.data(), tg.data(), T, B, Mode::Train);
    Buffer<double> hs, cs;
    m.layer_states(0, hs, cs);  // h_0 .. h_T, before backward turns the gates into gradients
    m.backward(1.0);
    const auto& L = m.layer(0);
    const int GH = L.G() * 4, H = 4;
    // After backward the layer's gates hold dL/d(pre-activations); for the GRU
    // the n block reaching W_hh is in ghn instead (dL/d(W_hn h + b_hn)).
    auto dgate = [&](int row, int k) {
      if (cell == CellKind::Gru && k >= 2 * H) return L.ghn[row * H + (k - 2 * H)];
      return L.gates[row * GH + k];
    };
    std::vector<double> sum(GH * H, 0.0);
    for (int t = 0; t < T; ++t) {
      std::vector<double> step(GH * H, 0.0);  // this step's contribution alone
      for (int b = 0; b < B; ++b)
        for (int k = 0; k < GH; ++k)
          for (int j = 0; j < H; ++j)
            step[k * H + j] += dgate(t * B + b, k) * hs[(t * B + b) * H + j];
      for (int i = 0; i < GH * H; ++i) sum[i] += step[i];
    }
    const double* g = m.grad("rnn.weight_hh_l0");
    double norm = 0;
    for (int i = 0; i < GH * H; ++i) {
      EXPECT_NEAR(g[i], sum[i], 1e-12) << cell_name(cell) << " element " << i;
      norm += g[i] * g[i];
    }
    EXPECT_GT(norm, 1e-12) << "the gradient must not be trivially zero";
  }
}

TEST(Precision, FloatAndDoubleForwardAgree) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru}) {
    ModelConfig c = small(cell, 2, 32, 11);
    c.init = InitKind::Uniform;  // init_scale is its scale
    c.init_scale = 0.2f;
    LanguageModel<double> md(c);
    LanguageModel<float> mf(c);
    Rng rng(9);
    md.init(rng);
    for (size_t i = 0; i < md.params.size(); ++i) mf.params[i] = float(md.params[i]);
    const int T = 20, B = 3;
    std::vector<int32_t> in(T * B), tg(T * B);
    for (auto& v : in) v = int32_t(rng.below(11));
    for (auto& v : tg) v = int32_t(rng.below(11));
    md.reset_state(B);
    mf.reset_state(B);
    double ld = md.forward(in.data(), tg.data(), T, B, Mode::Eval).sum;
    double lf = mf.forward(in.data(), tg.data(), T, B, Mode::Eval).sum;
    EXPECT_NEAR(lf / ld, 1.0, 1e-4) << cell_name(cell);
    double worst = 0;
    for (int i = 0; i < T * B * 11; ++i) {
      const double a = md.logits()[i], b = mf.logits()[i];
      worst = std::max(worst, std::abs(a - b) / std::max(1e-3, std::abs(a)));
    }
    EXPECT_LE(worst, 1e-4) << cell_name(cell);
  }
}

// Running a sequence in two chunks with the carried state equals one chunk.
TEST(CarriedState, TwoChunksEqualOne) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru}) {
    ModelConfig c = small(cell, 2, 8, 6);
    LanguageModel<double> m(c);
    Rng rng(11);
    m.init(rng);
    std::vector<int32_t> in(10);
    for (auto& v : in) v = int32_t(rng.below(6));
    m.reset_state(1);
    m.forward(in.data(), nullptr, 10, 1, Mode::Eval);
    std::vector<double> whole(m.logits() + 7 * 6, m.logits() + 10 * 6);
    m.reset_state(1);
    m.forward(in.data(), nullptr, 7, 1, Mode::Eval);
    m.forward(in.data() + 7, nullptr, 3, 1, Mode::Eval);
    for (int i = 0; i < 18; ++i) EXPECT_NEAR(m.logits()[i], whole[i], 1e-13) << cell_name(cell);
  }
}

TEST(Learning, OneLayerLstmMemorisesAShortText) {
  const std::string text =
      "the quick brown fox jumps over the lazy dog; a stitch in time saves nine.";
  std::string chars;
  for (char ch : text)
    if (chars.find(ch) == std::string::npos) chars += ch;
  std::vector<int32_t> ids;
  for (char ch : text) ids.push_back(int32_t(chars.find(ch)));
  ModelConfig c = small(CellKind::Lstm, 1, 64, int(chars.size()));
  c.init = InitKind::Uniform;  // init_scale is its scale
  c.init_scale = 0.08f;
  LanguageModel<float> m(c);
  Rng rng(1);
  m.init(rng);
  OptimConfig oc;
  oc.lr = 1e-2f;
  Optimizer opt(oc, m.params.size());
  const int T = int(ids.size()) - 1;
  double loss = 1e9;
  for (int step = 0; step < 600 && loss >= 0.05; ++step) {
    m.reset_state(1);
    m.zero_grad();
    LossSum l = m.forward(ids.data(), ids.data() + 1, T, 1, Mode::Train);
    loss = l.sum / double(l.count);
    m.backward(1.0f / float(l.count));
    clip_by_norm(m.grads.data(), m.grads.size(), 5.0);
    opt.step(m.params.data(), m.grads.data(), oc.lr);
  }
  m.reset_state(1);
  LossSum l = m.forward(ids.data(), ids.data() + 1, T, 1, Mode::Eval);
  EXPECT_LT(l.sum / double(l.count), 0.05);
}

TEST(Dropout, TrainModeDropsAndEvalModeDoesNot) {
  ModelConfig c = small(CellKind::Lstm, 2, 16, 5);
  c.dropout = 0.5f;
  LanguageModel<float> m(c);
  Rng rng(2);
  m.init(rng);
  std::vector<int32_t> in = {1, 2, 3, 4, 0, 1}, tg = {2, 3, 4, 0, 1, 2};
  m.reset_state(1);
  double e1 = m.forward(in.data(), tg.data(), 6, 1, Mode::Eval).sum;
  m.reset_state(1);
  double e2 = m.forward(in.data(), tg.data(), 6, 1, Mode::Eval).sum;
  EXPECT_EQ(e1, e2);
  Rng d(4);
  m.reset_state(1);
  double t1 = m.forward(in.data(), tg.data(), 6, 1, Mode::Train, &d).sum;
  EXPECT_NE(t1, e1);
}

}  // namespace

namespace {

// The optimised float path (oneDNN GEMMs, vectorised exp/sigmoid/tanh,
// transposed W_hh, contiguous one-hot gather) against the plain reference
// path (double: reference GEMM loops, libm functions) on the same weights:
// loss and every gradient tensor agree to float tolerance. Chunk shapes cover
// both sides of each shortcut's threshold (T·B ≥ 64 transposes W_hh for the
// per-step products; T·B ≥ vocabulary transposes the one-hot weights), and
// both layouts of W_hh that core/gemm picks between by CPU.
TEST(Precision, OptimisedFloatPathMatchesReferenceGradients) {
  struct Shape {
    int T, B;
  };
  struct Restore {
    ~Restore() { force_short_gemm_layout(-1); }
  } restore;
  for (int layout : {0, 1})
    for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru})
      for (int embed : {0, 8})
        for (Shape sh : {Shape{20, 8}, Shape{3, 2}}) {
          force_short_gemm_layout(layout);
          ModelConfig c = small(cell, 2, 24, 13);
          c.embed = embed;
          c.init = InitKind::Uniform;  // init_scale is its scale
          c.init_scale = 0.3f;
          LanguageModel<double> md(c);
          LanguageModel<float> mf(c);
          Rng rng(21);
          md.init(rng);
          for (size_t i = 0; i < md.params.size(); ++i) mf.params[i] = float(md.params[i]);
          const int T = sh.T, B = sh.B;
          std::vector<int32_t> in(T * B), tg(T * B);
          for (auto& v : in) v = int32_t(rng.below(13));
          for (auto& v : tg) v = int32_t(rng.below(13));
          md.reset_state(B);
          mf.reset_state(B);
          md.zero_grad();
          mf.zero_grad();
          LossSum ld = md.forward(in.data(), tg.data(), T, B, Mode::Train);
          LossSum lf = mf.forward(in.data(), tg.data(), T, B, Mode::Train);
          md.backward(1.0 / ld.count);
          mf.backward(1.0f / float(lf.count));
          const std::string what = cell_name(cell) + (embed ? " embed" : " one-hot") +
                                   " T=" + std::to_string(T) + " B=" + std::to_string(B) +
                                   " W_hh layout " + std::to_string(layout);
          EXPECT_NEAR(lf.sum / ld.sum, 1.0, 1e-5) << what;
          for (auto& v : md.layout().views()) {
            double diff = 0, norm = 0;
            for (size_t i = 0; i < v.size; ++i) {
              const double a = md.grads[v.offset + i], b = mf.grads[v.offset + i];
              diff += (a - b) * (a - b);
              norm += a * a;
            }
            EXPECT_LE(std::sqrt(diff), 1e-4 * std::sqrt(norm) + 1e-9) << what << " " << v.name;
          }
        }
}

}  // namespace

// The model keeps only the gates per layer and recomputes h and c from them.
// Recomputed states at every step equal those of running the same text one
// step at a time (where each step's state is the carried state), every layer.
TEST(LayerStates, RecomputedStatesEqualStepByStepForward) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru}) {
    ModelConfig c = small(cell, 3, 6, 7);
    LanguageModel<double> m(c);
    Rng rng(9);
    m.init(rng);
    const int T = 8, B = 2, H = 6;
    std::vector<int32_t> in(T * B);
    for (auto& v : in) v = int32_t(rng.below(7));
    m.reset_state(B);
    m.forward(in.data(), nullptr, T, B, Mode::Eval);
    std::vector<Buffer<double>> hs(3), cs(3);
    for (int l = 0; l < 3; ++l) m.layer_states(l, hs[l], cs[l]);

    m.reset_state(B);
    for (int t = 0; t < T; ++t) {
      m.forward(in.data() + t * B, nullptr, 1, B, Mode::Eval);
      for (int l = 0; l < 3; ++l)
        for (int i = 0; i < B * H; ++i) {
          const size_t at = size_t(l) * B * H + i, row = size_t(t + 1) * B * H + i;
          ASSERT_NEAR(hs[l][row], m.state_h[at], 1e-13)
              << cell_name(cell) << " l" << l << " t" << t;
          if (cell == CellKind::Lstm) {
            ASSERT_NEAR(cs[l][row], m.state_c[at], 1e-13) << "c l" << l << " t" << t;
          }
        }
    }
  }
}

TEST(LayerStates, RefusedAfterBackward) {
  LanguageModel<double> m(small(CellKind::Lstm, 1, 4, 5));
  Rng rng(1);
  m.init(rng);
  std::vector<int32_t> in = {1, 2, 3}, tg = {2, 3, 4};
  m.reset_state(1);
  m.forward(in.data(), tg.data(), 3, 1, Mode::Train);
  m.backward(1.0);
  Buffer<double> h, c;
  EXPECT_THROW(m.layer_states(0, h, c), Error);
}

// The float activations carry NaN through (so a diverged step is seen as
// such) without the undefined float-to-int conversion of NaN that the
// sampler fuzz target found under UBSan; infinities saturate.
TEST(FastMath, NanStaysNanAndInfinitiesSaturate) {
  EXPECT_TRUE(std::isnan(unroll::exp_approx(NAN)));
  EXPECT_TRUE(std::isnan(unroll::sigmoid_f(NAN)));
  EXPECT_TRUE(std::isnan(unroll::tanh_f(NAN)));
  EXPECT_EQ(unroll::sigmoid_f(INFINITY), 1.0f);
  EXPECT_NEAR(unroll::sigmoid_f(-INFINITY), 0.0f, 1e-37);
  EXPECT_EQ(unroll::tanh_f(INFINITY), 1.0f);
  EXPECT_EQ(unroll::tanh_f(-INFINITY), -1.0f);
  EXPECT_NEAR(unroll::exp_approx(1.0f), std::exp(1.0f), 1e-6);
}

// --init pytorch follows torch.nn's defaults per parameter kind (issue 18):
// nn.Embedding N(0, 1); nn.LSTM every weight and bias U(±1/√H); nn.Linear
// weight and bias U(±1/√fan_in). The forget-gate bias is added on top.
TEST(Init, PyTorchConventionsPerParameterKind) {
  unroll::ModelConfig c;
  c.cell = unroll::CellKind::Lstm;
  c.layers = 2;
  c.hidden = 64;
  c.embed = 32;
  c.vocab = c.outputs = 50;
  c.init = unroll::InitKind::PyTorch;
  c.forget_bias = 0;
  unroll::LanguageModel<float> m(c);
  unroll::Rng rng(5);
  m.init(rng);
  auto stats = [&](const std::string& name, double* lo, double* hi, double* mean, double* sd) {
    const auto& v = m.layout().at(name);
    const float* p = m.params.data() + v.offset;
    double s = 0, s2 = 0;
    *lo = 1e30, *hi = -1e30;
    for (size_t i = 0; i < v.size; ++i)
      s += p[i], s2 += double(p[i]) * p[i], *lo = std::min(*lo, double(p[i])),
                                            *hi = std::max(*hi, double(p[i]));
    *mean = s / double(v.size);
    *sd = std::sqrt(s2 / double(v.size) - *mean * *mean);
  };
  double lo, hi, mean, sd;
  stats("embedding.weight", &lo, &hi, &mean, &sd);
  EXPECT_NEAR(mean, 0, 0.05);
  EXPECT_NEAR(sd, 1, 0.05);
  EXPECT_LT(lo, -2.5);  // a normal's tails, not a uniform's edge
  const double b = 1 / std::sqrt(64.0);
  for (const char* name : {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                           "rnn.bias_hh_l1", "head.weight", "head.bias"}) {
    stats(name, &lo, &hi, &mean, &sd);
    EXPECT_GE(lo, -b) << name;
    EXPECT_LE(hi, b) << name;
    EXPECT_GT(hi, 0.8 * b) << name << " does not reach the bound";
    EXPECT_NEAR(sd, b / std::sqrt(3.0), 0.25 * b) << name;
  }
  // The forget gate's bias: drawn like the others, plus forget_bias.
  unroll::ModelConfig c1 = c;
  c1.forget_bias = 1;
  unroll::LanguageModel<float> m1(c1);
  unroll::Rng rng1(5);
  m1.init(rng1);
  const float* b0 = m.params.data() + m.layout().at("rnn.bias_ih_l1").offset;
  const float* b1 = m1.params.data() + m1.layout().at("rnn.bias_ih_l1").offset;
  for (int j = 0; j < 64; ++j) {
    EXPECT_FLOAT_EQ(b1[64 + j], b0[64 + j] + 1) << j;  // the f block
    EXPECT_FLOAT_EQ(b1[j], b0[j]) << j;                // the i block
  }
}

// The default is PyTorch's (chosen by measurement, docs/results.md); uniform
// is char-rnn's, by name.
TEST(Init, PyTorchIsTheDefaultAndUniformIsCharRnns) {
  unroll::ModelConfig c;
  c.vocab = c.outputs = 20;
  EXPECT_EQ(c.init, unroll::InitKind::PyTorch);
  EXPECT_EQ(unroll::default_forget_bias(c.init), 0.0f);
  c.init = unroll::InitKind::Uniform;
  c.forget_bias = unroll::default_forget_bias(c.init);
  unroll::LanguageModel<float> m(c);
  unroll::Rng rng(5);
  m.init(rng);
  for (const auto& v : m.layout().views()) {
    const float* p = m.params.data() + v.offset;
    for (size_t i = 0; i < v.size; ++i) {
      if (v.name.find("bias") == std::string::npos) {
        ASSERT_LE(std::fabs(p[i]), 0.08f) << v.name;
      } else if (v.name.rfind("rnn.bias_ih", 0) == 0 && i >= size_t(c.hidden) &&
                 i < size_t(2 * c.hidden)) {
        ASSERT_EQ(p[i], 1.0f) << v.name;  // the forget gate
      } else {
        ASSERT_EQ(p[i], 0.0f) << v.name;
      }
    }
  }
  EXPECT_EQ(unroll::model_config_from_json(unroll::to_json(c)).init, unroll::InitKind::Uniform);
  c.init = unroll::InitKind::PyTorch;
  EXPECT_EQ(unroll::model_config_from_json(unroll::to_json(c)).init, unroll::InitKind::PyTorch);
}

namespace {

// Locked (variational) dropout: every step of a chunk repeats the masks of
// step 0, one per stream and unit, and drops about p of them.
TEST(Regularisation, LockedDropoutRepeatsOneMaskPerStreamAtEveryStep) {
  const int T = 7, B = 4, W = 50;
  std::vector<float> x(size_t(T) * B * W, 1.0f), mask(x.size()), y(x.size());
  unroll::Rng rng(3);
  unroll::locked_dropout_forward(rng, 0.5f, T * B, B, W, x.data(), mask.data(), y.data());
  int zeros = 0;
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < B * W; ++i) {
      ASSERT_EQ(y[size_t(t) * B * W + i], y[i]) << "step " << t;
      ASSERT_TRUE(y[i] == 0.0f || y[i] == 2.0f);
    }
  for (int i = 0; i < B * W; ++i) zeros += y[i] == 0.0f;
  EXPECT_GT(zeros, B * W / 4);
  EXPECT_LT(zeros, 3 * B * W / 4);
  // The streams have masks of their own.
  EXPECT_FALSE(std::equal(y.begin(), y.begin() + W, y.begin() + W));
}

// Embedding dropout drops whole words: the gradient of an embedding row is
// zero in every column (the word was dropped for the chunk) or in none.
TEST(Regularisation, EmbeddingDropoutDropsWholeRows) {
  unroll::ModelConfig c = small(unroll::CellKind::Lstm, 1, 6, 8);
  c.embed = 5;
  c.embed_dropout = 0.5f;
  unroll::LanguageModel<float> m(c);
  unroll::Rng rng(11);
  m.init(rng);
  const int T = 16, B = 3;
  std::vector<int32_t> in(T * B), tg(T * B);
  for (int i = 0; i < T * B; ++i) in[i] = i % 8, tg[i] = (i + 3) % 8;  // every word, 6 times
  m.zero_grad();
  unroll::Rng d(5);
  m.forward(in.data(), tg.data(), T, B, unroll::Mode::Train, &d);
  m.backward(1.0f);
  const float* g = m.grad("embedding.weight");
  int dropped = 0;
  for (int v = 0; v < 8; ++v) {
    int zero = 0;
    for (int k = 0; k < 5; ++k) zero += g[v * 5 + k] == 0.0f;
    EXPECT_TRUE(zero == 0 || zero == 5) << "word " << v << ": " << zero << " of 5 columns zero";
    dropped += zero == 5;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, 8);
}

// DropConnect: W_hh's gradient is zero exactly where this chunk's mask
// dropped a weight (about p of them); evaluation uses the whole matrix.
TEST(Regularisation, WeightDropMasksWhhInTrainingOnly) {
  unroll::ModelConfig c = small(unroll::CellKind::Gru, 1, 12, 6);
  unroll::LanguageModel<float> plain(c);
  c.weight_drop = 0.5f;
  unroll::LanguageModel<float> m(c);
  unroll::Rng rng(8);
  m.init(rng);
  std::copy(m.params.begin(), m.params.end(), plain.params.begin());
  const int T = 10, B = 4;
  std::vector<int32_t> in(T * B), tg(T * B);
  for (int i = 0; i < T * B; ++i) in[i] = (i * 5) % 6, tg[i] = (i * 7 + 1) % 6;
  m.reset_state(B), plain.reset_state(B);
  EXPECT_EQ(m.forward(in.data(), tg.data(), T, B, unroll::Mode::Eval).sum,
            plain.forward(in.data(), tg.data(), T, B, unroll::Mode::Eval).sum);
  for (auto* model : {&m, &plain}) {
    model->reset_state(B);
    model->zero_grad();
    unroll::Rng d(6);
    model->forward(in.data(), tg.data(), T, B, unroll::Mode::Train, &d);
    model->backward(1.0f);
  }
  auto zeros = [](unroll::LanguageModel<float>& x) {
    const auto& v = x.layout().at("rnn.weight_hh_l0");
    int n = 0;
    for (size_t i = 0; i < v.size; ++i) n += x.grads[v.offset + i] == 0.0f;
    return std::pair<int, int>(n, int(v.size));
  };
  const auto [dropped, total] = zeros(m);
  EXPECT_GT(dropped, total * 2 / 5);
  EXPECT_LT(dropped, total * 3 / 5);
  EXPECT_LT(zeros(plain).first, total / 20);
}

// Tying: no head.weight; the head reads the embedding, so changing the row of
// a word that is not in the input changes that word's logit and no other.
TEST(Regularisation, TiedHeadIsTheEmbedding) {
  unroll::ModelConfig c = small(unroll::CellKind::Lstm, 2, 6, 9);
  c.embed = 6;
  unroll::LanguageModel<float> untied(c);
  c.tie = true;
  unroll::LanguageModel<float> m(c);
  EXPECT_THROW(m.layout().at("head.weight"), unroll::Error);
  EXPECT_EQ(untied.layout().count() - m.layout().count(), 9u * 6u);
  unroll::Rng rng(2);
  m.init(rng);
  std::vector<int32_t> in = {0, 1, 2, 3, 1, 0};
  m.reset_state(1);
  m.forward(in.data(), nullptr, 6, 1, unroll::Mode::Eval);
  std::vector<float> before(m.logits(), m.logits() + 6 * 9);
  m.param("embedding.weight")[7 * 6 + 2] += 0.5f;  // word 7 never appears in the input
  m.reset_state(1);
  m.forward(in.data(), nullptr, 6, 1, unroll::Mode::Eval);
  for (int r = 0; r < 6; ++r)
    for (int v = 0; v < 9; ++v)
      if (v == 7)
        EXPECT_NE(m.logits()[r * 9 + v], before[r * 9 + v]);
      else
        EXPECT_EQ(m.logits()[r * 9 + v], before[r * 9 + v]);
  c.embed = 5;
  EXPECT_THROW(unroll::LanguageModel<float>{c}, unroll::Error);  // the head reads 6-wide states
}

}  // namespace

namespace {

// Each rate drops its own place, and --locked-dropout keeps one mask per
// stream for the whole chunk: with one stream, a unit dropped before the head
// is zero at every step, so its column of head.weight's gradient is all zero;
// dropping the embedding's output zeroes columns of W_ih's gradient instead.
TEST(Regularisation, DropoutInAndOutDropTheirOwnPlacesWithLockedMasks) {
  auto zero_columns = [](unroll::LanguageModel<float>& m, const std::string& name) {
    const auto& v = m.layout().at(name);
    const int64_t rows = v.shape[0], cols = v.shape[1];
    int zero = 0;
    for (int64_t k = 0; k < cols; ++k) {
      bool all = true;
      for (int64_t r = 0; r < rows; ++r) all = all && m.grads[v.offset + r * cols + k] == 0.0f;
      zero += all;
    }
    return zero;
  };
  for (bool out : {true, false}) {
    unroll::ModelConfig c = small(unroll::CellKind::Lstm, 1, 8, 7);
    c.embed = 8;
    c.dropout = 0;
    (out ? c.dropout_out : c.dropout_in) = 0.5f;
    (out ? c.dropout_in : c.dropout_out) = 0.0f;
    c.locked = true;
    unroll::LanguageModel<float> m(c);
    unroll::Rng rng(4);
    m.init(rng);
    std::vector<int32_t> in(12), tg(12);
    for (int t = 0; t < 12; ++t) in[t] = t % 7, tg[t] = (t + 2) % 7;
    m.reset_state(1);
    m.zero_grad();
    unroll::Rng d(9);
    m.forward(in.data(), tg.data(), 12, 1, unroll::Mode::Train, &d);
    m.backward(1.0f);
    const int head = zero_columns(m, "head.weight"), input = zero_columns(m, "rnn.weight_ih_l0");
    if (out) {
      EXPECT_GT(head, 0) << "no unit dropped before the head at every step";
      EXPECT_EQ(input, 0);
    } else {
      EXPECT_GT(input, 0) << "no embedding dimension dropped at every step";
      EXPECT_EQ(head, 0);
    }
  }
}

}  // namespace

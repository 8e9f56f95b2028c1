// Finite-difference gradient checks in double for every cell, depth, input and
// head, over multi-step chunks that start from a non-zero carried state.
#include <gtest/gtest.h>

#include <cmath>

#include "grad_check.h"
#include "unroll/model/model.h"

using namespace unroll;

namespace {

struct Case {
  CellKind cell;
  int layers;
  int embed;  // 0 = one-hot
  HeadKind head;
  float dropout = 0;  // masks are redrawn from the same seed at every evaluation
  // AWD-LSTM's regularisers together: locked dropout at its own rate in each
  // place, embedding dropout (with an embedding), DropConnect on W_hh.
  bool regularised = false;
  bool tie = false;  // the head's weight is the embedding (embed = hidden = 5)
};

std::string case_name(const testing::TestParamInfo<Case>& i) {
  std::string n = cell_name(i.param.cell) + "_L" + std::to_string(i.param.layers) +
                  (i.param.embed ? "_embed" : "_onehot") +
                  (i.param.head == HeadKind::Softmax ? "_softmax" : "_sigmoid") +
                  (i.param.dropout > 0 ? "_dropout" : "") +
                  (i.param.regularised ? "_locked_weightdrop" : "") + (i.param.tie ? "_tied" : "");
  for (auto& ch : n)
    if (ch == '-') ch = '_';
  return n;
}

class GradCheck : public testing::TestWithParam<Case> {};

TEST_P(GradCheck, MatchesFiniteDifferences) {
  const Case c = GetParam();
  ModelConfig cfg = gradcheck::uniform_config(c.cell, c.layers, 5, 7, 0.5f);
  cfg.embed = c.embed;
  cfg.head = c.head;
  cfg.outputs = c.head == HeadKind::Softmax ? 7 : 1;
  cfg.dropout = c.dropout;
  if (c.regularised) gradcheck::regularise(cfg);
  cfg.tie = c.tie;
  LanguageModel<double> m(cfg);
  Rng rng(42);
  m.init(rng);
  gradcheck::randomise_biases(m, rng);
  const int T = 4, B = 3;
  std::vector<int32_t> in(T * B), tg(T * B);
  for (int i = 0; i < T * B; ++i) {
    in[i] = int32_t(rng.below(7));
    tg[i] = c.head == HeadKind::Softmax ? int32_t(rng.below(7)) : int32_t(rng.below(2));
  }
  tg[5] = -1;  // one position without loss
  m.reset_state(B);
  Buffer<double> h0(m.state_h.size()), c0(m.state_c.size());
  for (auto& x : h0) x = rng.uniform(-0.8, 0.8);
  for (auto& x : c0) x = rng.uniform(-0.8, 0.8);

  auto loss = [&]() {
    m.state_h = h0;
    m.state_c = c0;
    Rng drop_rng(77);  // the same dropout masks every time
    return m.forward(in.data(), tg.data(), T, B, Mode::Train, &drop_rng).sum;
  };
  m.zero_grad();
  loss();
  const double scale = 0.7;
  m.backward(scale);

  // Fourth-order central differences: truncation error O(h^4), so both the
  // per-tensor relative error and the per-element absolute error are tiny.
  // ReLU has a kink at 0: a smaller step keeps the stencil on one side of it.
  const double h = c.cell == CellKind::RnnRelu ? 1e-5 : 1e-3;
  const gradcheck::Result g = gradcheck::compare(m, scale, h, loss);
  const double worst = g.worst_rel, worst_abs = g.worst_abs;
  const std::string& worst_name = g.worst_name;
  EXPECT_LE(worst_abs, c.cell == CellKind::RnnRelu ? 1e-8 : 1e-9);
  EXPECT_LE(worst, 1e-6) << "worst relative error (per tensor) in " << worst_name;
  RecordProperty("worst_relative_error", std::to_string(worst));
}

std::vector<Case> all_cases() {
  std::vector<Case> cs;
  for (auto cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru})
    for (int layers : {1, 2})
      for (int embed : {0, 4})
        for (auto head : {HeadKind::Softmax, HeadKind::Sigmoid})
          cs.push_back({cell, layers, embed, head});
  for (auto cell : {CellKind::Lstm, CellKind::Gru})
    cs.push_back({cell, 2, 4, HeadKind::Softmax, 0.3f});
  // Three layers: the shared h/dh buffers swap roles twice on the way down;
  // an embedding wider than the hidden size (8 > 5) sizes them by the input.
  for (auto cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru}) {
    cs.push_back({cell, 3, 0, HeadKind::Softmax});
    cs.push_back({cell, 3, 8, HeadKind::Softmax, 0.3f});
  }
  for (auto cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru}) {
    cs.push_back({cell, 2, 5, HeadKind::Softmax, 0.3f, true, true});
    cs.push_back({cell, 2, 0, HeadKind::Softmax, 0.3f, true, false});
    cs.push_back({cell, 1, 5, HeadKind::Softmax, 0.0f, false, true});  // tying alone
  }
  return cs;
}

INSTANTIATE_TEST_SUITE_P(AllCells, GradCheck, testing::ValuesIn(all_cases()), case_name);

}  // namespace

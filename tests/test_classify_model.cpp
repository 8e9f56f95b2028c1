// Many-to-one models (SequenceModel::classify): finite-difference gradient checks with
// masking (sequences of different lengths in one batch), both summaries, the
// bidirectional encoder, both heads and per-sequence weights; and padding
// invariance in float.
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
  Summary summary;
  bool bidirectional;
  float dropout = 0;
  bool regularised = false;  // locked dropout, embedding dropout, DropConnect on W_hh
};

std::string case_name(const testing::TestParamInfo<Case>& i) {
  const Case& c = i.param;
  std::string n = cell_name(c.cell) + "_L" + std::to_string(c.layers) +
                  (c.embed ? "_embed" : "_onehot") +
                  (c.head == HeadKind::Softmax ? "_softmax" : "_sigmoid") + "_" +
                  summary_name(c.summary) + (c.bidirectional ? "_bidir" : "") +
                  (c.dropout > 0 ? "_dropout" : "") + (c.regularised ? "_locked_weightdrop" : "");
  for (auto& ch : n)
    if (ch == '-') ch = '_';
  return n;
}

ModelConfig config_of(const Case& c) {
  ModelConfig cfg = gradcheck::uniform_config(c.cell, c.layers, 4, 6, 0.5f);
  cfg.embed = c.embed;
  cfg.head = c.head;
  cfg.outputs = c.head == HeadKind::Softmax ? 3 : 1;
  cfg.dropout = c.dropout;
  cfg.summary = c.summary;
  cfg.bidirectional = c.bidirectional;
  if (c.regularised) gradcheck::regularise(cfg);
  return cfg;
}

class ClassifyGradCheck : public testing::TestWithParam<Case> {};

TEST_P(ClassifyGradCheck, MatchesFiniteDifferences) {
  const Case c = GetParam();
  SequenceModel<double> m(config_of(c));
  Rng rng(42);
  m.init(rng);
  gradcheck::randomise_biases(m, rng);
  const int T = 5, B = 3;
  const int32_t lengths[B] = {5, 2, 3};  // masking: two sequences end early
  std::vector<int32_t> in(T * B);
  for (auto& v : in) v = int32_t(rng.below(6));
  const int32_t labels[B] = {2 % m.config().outputs, 0, 1};
  const double weights[B] = {1.0, 0.4, 2.5};
  auto loss = [&]() {
    Rng drop_rng(77);
    return m.classify(in.data(), lengths, labels, weights, T, B, Mode::Train, &drop_rng).sum;
  };
  m.zero_grad();
  loss();
  const double scale = 0.7;
  m.backward(scale);
  const gradcheck::Result g = gradcheck::compare(m, scale, 1e-3, loss);
  const double worst = g.worst_rel, worst_abs = g.worst_abs;
  const std::string& worst_name = g.worst_name;
  EXPECT_LE(worst_abs, 1e-9);
  EXPECT_LE(worst, 1e-6) << "worst relative error (per tensor) in " << worst_name;
}

std::vector<Case> all_cases() {
  std::vector<Case> cs;
  for (auto cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru})
    for (auto summary : {Summary::Last, Summary::Mean, Summary::Max})
      for (bool bidir : {false, true})
        for (auto head : {HeadKind::Softmax, HeadKind::Sigmoid})
          cs.push_back({cell, bidir ? 2 : 1, bidir ? 0 : 3, head, summary, bidir});
  for (auto cell : {CellKind::Lstm, CellKind::Gru}) {
    cs.push_back({cell, 2, 3, HeadKind::Softmax, Summary::Last, true, 0.3f});
    cs.push_back({cell, 3, 0, HeadKind::Sigmoid, Summary::Mean, true});
    cs.push_back({cell, 2, 3, HeadKind::Softmax, Summary::Max, true, 0.3f, true});
  }
  return cs;
}

INSTANTIATE_TEST_SUITE_P(AllSetups, ClassifyGradCheck, testing::ValuesIn(all_cases()), case_name);

// A sequence gets the same probabilities alone as in a batch with longer
// sequences, whatever the padding holds.
TEST(ClassifyPadding, AloneAndInABatchAgree) {
  for (auto summary : {Summary::Last, Summary::Mean, Summary::Max})
    for (bool bidir : {false, true})
      for (int embed : {0, 8}) {
        Case c{CellKind::Lstm, 2, embed, HeadKind::Softmax, summary, bidir};
        ModelConfig cfg = config_of(c);
        cfg.hidden = 16;
        cfg.vocab = 11;
        SequenceModel<float> m(cfg);
        Rng rng(5);
        m.init(rng);
        const int len = 4, T = 9, B = 5;
        std::vector<int32_t> seq(len);
        for (auto& v : seq) v = int32_t(rng.below(11));
        m.classify(seq.data(), &len, nullptr, nullptr, len, 1, Mode::Eval);
        std::vector<float> alone(m.logits(), m.logits() + cfg.outputs);
        std::vector<int32_t> in(T * B), lengths = {9, 7, len, 9, 1};
        for (auto& v : in) v = int32_t(rng.below(11));
        for (int t = 0; t < len; ++t) in[t * B + 2] = seq[t];
        m.classify(in.data(), lengths.data(), nullptr, nullptr, T, B, Mode::Eval);
        for (int k = 0; k < cfg.outputs; ++k)
          EXPECT_NEAR(m.logits()[2 * cfg.outputs + k], alone[k], 1e-5)
              << summary_name(summary) << (bidir ? " bidirectional" : "") << " embed " << embed;
        // and the logits do depend on the sequence: a changed token moves them
        in[1 * B + 2] = (in[1 * B + 2] + 1) % 11;
        m.classify(in.data(), lengths.data(), nullptr, nullptr, T, B, Mode::Eval);
        double moved = 0;
        for (int k = 0; k < cfg.outputs; ++k)
          moved += std::abs(m.logits()[2 * cfg.outputs + k] - alone[k]);
        EXPECT_GT(moved, 1e-6);
      }
}

// A configuration makes one kind of model: a head at every step (summary Steps)
// or one result per sequence. The other kind is refused by name, whether built
// directly or reached through make_model.
TEST(ClassifyModel, RefusesTheWrongKindAndBadLengths) {
  ModelConfig cfg = config_of({CellKind::Gru, 1, 0, HeadKind::Softmax, Summary::Last, false});
  EXPECT_THROW(LanguageModel<float>{cfg}, Error);
  std::unique_ptr<Stack<float>> any = make_model<float>(cfg);
  EXPECT_THROW(language_model(*any), Error);
  SequenceModel<float>& m = sequence_model(*any);
  std::vector<int32_t> in(6, 0);
  const int32_t bad[2] = {3, 4};
  EXPECT_THROW(m.classify(in.data(), bad, nullptr, nullptr, 3, 2, Mode::Eval), Error);
  const int32_t zero[2] = {0, 3};
  EXPECT_THROW(m.classify(in.data(), zero, nullptr, nullptr, 3, 2, Mode::Eval), Error);
  const int32_t ok[2] = {3, 3};
  EXPECT_NO_THROW(m.classify(in.data(), ok, nullptr, nullptr, 3, 2, Mode::Eval));
  ModelConfig lm = cfg;
  lm.summary = Summary::Steps;
  EXPECT_THROW(SequenceModel<float>{lm}, Error);
  std::unique_ptr<Stack<float>> steps = make_model<float>(lm);
  EXPECT_THROW(sequence_model(*steps), Error);
  EXPECT_NO_THROW(language_model(*steps).forward(in.data(), nullptr, 3, 2, Mode::Eval));
  lm.bidirectional = true;
  EXPECT_THROW(lm.validate(), Error);
}

// One-to-many: a language model whose streams start from their categories'
// vectors. The gradient reaches category.weight through h_0 of every layer,
// and only the chunk that started there.
TEST(ConditionalModel, GradientsMatchFiniteDifferences) {
  for (auto cell : {CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru}) {
    ModelConfig cfg;
    cfg.cell = cell;
    cfg.layers = 2;
    cfg.hidden = 4;
    cfg.vocab = 5;
    cfg.outputs = 5;
    cfg.categories = 3;
    cfg.init = InitKind::Uniform;  // init_scale is its scale
    cfg.init_scale = 0.5f;
    LanguageModel<double> m(cfg);
    Rng rng(3);
    m.init(rng);
    const int T = 4, B = 3;
    std::vector<int32_t> in(T * B), tg(T * B);
    for (auto& v : in) v = int32_t(rng.below(5));
    for (auto& v : tg) v = int32_t(rng.below(5));
    tg[10] = -1;  // padding
    const int32_t cats[B] = {2, 0, 2};
    auto loss = [&]() {
      m.start_state(cats, B);
      return m.forward(in.data(), tg.data(), T, B, Mode::Grad).sum;
    };
    m.zero_grad();
    loss();
    m.backward(1.0);
    const double worst = gradcheck::compare(m, 1.0, 1e-4, loss).worst_abs;
    EXPECT_LE(worst, 1e-7) << cell_name(cell);
    // Category 1 is not in the batch: its row gets no gradient; the others do.
    const auto& view = m.layout().at("category.weight");
    double row1 = 0, row2 = 0;
    for (int k = 0; k < 8; ++k)
      row1 += std::abs(m.grads[view.offset + 8 + k]),
          row2 += std::abs(m.grads[view.offset + 16 + k]);
    EXPECT_EQ(row1, 0.0);
    EXPECT_GT(row2, 0.0);
    // A second chunk continues from the carried state, not from the categories.
    m.zero_grad();
    m.start_state(cats, B);
    m.forward(in.data(), tg.data(), T, B, Mode::Grad);
    m.forward(in.data(), tg.data(), T, B, Mode::Grad);
    m.backward(1.0);
    double all = 0;
    for (size_t k = 0; k < view.size; ++k) all += std::abs(m.grads[view.offset + k]);
    EXPECT_EQ(all, 0.0);
  }
}

}  // namespace

// A one-layer LSTM with a cell planted to track double quotes, for the tests
// of `cells` (ranking, saturation, the page in a browser).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "unroll/core/rng.h"
#include "unroll/model/model.h"

namespace unroll {

inline ModelConfig lstm_config(int layers, int hidden, int vocab) {
  ModelConfig c;
  c.cell = CellKind::Lstm;
  c.layers = layers;
  c.hidden = hidden;
  c.vocab = c.outputs = vocab;
  c.init_scale = 0.3f;
  return c;
}

// A one-layer LSTM over the characters a b " whose cell 1 is wired to flip
// between −1 and +1 at every double quote: the input gate opens and the
// forget gate closes only on '"', and the candidate is −sign(h_{t-1}) (plus a
// bias so that it starts at +1). So c_1 is +1 inside quotes and −1 outside.
inline void plant_quote_cell(LanguageModel<float>& m, int quote_id) {
  const int H = m.config().hidden, u = 1;
  float* Wih = m.param("rnn.weight_ih_l0");  // [4H, V]
  float* Whh = m.param("rnn.weight_hh_l0");  // [4H, H]
  float* b = m.param("rnn.bias_ih_l0");
  float* b2 = m.param("rnn.bias_hh_l0");
  const int V = m.config().vocab;
  for (int k = 0; k < 4; ++k) {  // unit u takes no input from other units
    for (int v = 0; v < V; ++v) Wih[(k * H + u) * V + v] = 0;
    for (int j = 0; j < H; ++j) Whh[(k * H + u) * H + j] = 0;
    b2[k * H + u] = 0;
  }
  Wih[(0 * H + u) * V + quote_id] = 40, b[0 * H + u] = -20;  // i: open on '"'
  Wih[(1 * H + u) * V + quote_id] = -40, b[1 * H + u] = 20;  // f: forget on '"'
  Whh[(2 * H + u) * H + u] = -20, b[2 * H + u] = 5;          // g = −sign(h)
  b[3 * H + u] = 20;                                         // o = 1
}

// A run's checkpoints in miniature: the same initial weights at steps 0, 10,
// 20, ... (`count` of them), with the quote cell planted from step `from` on.
// The vocabulary's quote is `quote_id`.
inline std::vector<std::unique_ptr<LanguageModel<float>>> planted_run(const ModelConfig& cfg,
                                                                      uint64_t seed, int count,
                                                                      int from, int quote_id) {
  std::vector<std::unique_ptr<LanguageModel<float>>> run;
  for (int i = 0; i < count; ++i) {
    auto m = std::make_unique<LanguageModel<float>>(cfg);
    Rng rng(seed);
    m->init(rng);
    if (10 * i >= from) plant_quote_cell(*m, quote_id);
    run.push_back(std::move(m));
  }
  return run;
}

inline std::u32string quoted_text(Rng& rng, size_t n) {
  std::u32string t;
  while (t.size() < n) t += rng.below(6) == 0 ? U'"' : (rng.below(2) ? U'a' : U'b');
  return t;
}

}  // namespace unroll

// Finite-difference gradient checks shared by the model tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>

#include "unroll/core/rng.h"
#include "unroll/model/model.h"

namespace gradcheck {

// A small language-model-shaped configuration with uniform starting weights
// at a known scale (init_scale), as the model tests use.
inline unroll::ModelConfig uniform_config(unroll::CellKind cell, int layers, int hidden, int vocab,
                                          float scale) {
  unroll::ModelConfig c;
  c.cell = cell;
  c.layers = layers;
  c.hidden = hidden;
  c.vocab = c.outputs = vocab;
  c.init = unroll::InitKind::Uniform;  // init_scale is its scale
  c.init_scale = scale;
  return c;
}

// AWD-LSTM's regularisers together, at rates a gradient check exercises:
// locked dropout (in and out), embedding dropout (with an embedding),
// DropConnect on W_hh.
inline void regularise(unroll::ModelConfig& c) {
  c.locked = true;
  c.dropout_in = 0.2f;
  c.dropout_out = 0.4f;
  c.embed_dropout = c.embed ? 0.3f : 0.0f;
  c.weight_drop = 0.4f;
}

struct Result {
  double worst_rel = 0;    // largest per-tensor relative error
  double worst_abs = 0;    // largest per-element absolute error
  std::string worst_name;  // the tensor with worst_rel
};

// Compares m.grads (left by a backward(scale) of the same loss) with
// fourth-order central differences of scale · loss() at step h, for every
// parameter: truncation error O(h^4).
template <class LossFn>
Result compare(unroll::Stack<double>& m, double scale, double h, LossFn loss) {
  Result r;
  for (auto& v : m.layout().views()) {
    double diff2 = 0, norm2 = 0;
    for (size_t i = 0; i < v.size; ++i) {
      double& p = m.params[v.offset + i];
      const double saved = p;
      auto at = [&](double d) {
        p = saved + d;
        return loss();
      };
      const double num = scale * (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h);
      p = saved;
      const double ana = m.grads[v.offset + i];
      diff2 += (num - ana) * (num - ana);
      norm2 += std::max(num * num, ana * ana);
      r.worst_abs = std::max(r.worst_abs, std::abs(num - ana));
    }
    const double rel = std::sqrt(diff2) / std::max(1e-30, std::sqrt(norm2));
    if (rel > r.worst_rel) r.worst_rel = rel, r.worst_name = v.name;
  }
  return r;
}

// Non-zero biases, so that every gradient path is exercised.
inline void randomise_biases(unroll::Stack<double>& m, unroll::Rng& rng) {
  for (auto& v : m.layout().views())
    if (v.name.find("bias") != std::string::npos)
      for (size_t i = 0; i < v.size; ++i) m.params[v.offset + i] = rng.uniform(-0.5, 0.5);
}

}  // namespace gradcheck

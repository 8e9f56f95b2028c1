// unroll/infer/evaluate.h — loss of a model over a whole token sequence:
// B contiguous streams, chunks of T steps, carried state, no dropout.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "unroll/model/model.h"

namespace unroll {

struct EvalResult {
  double loss = 0;     // mean nats per predicted token
  int64_t tokens = 0;  // predicted tokens
  double bits() const { return loss / std::log(2.0); }
  double perplexity() const { return std::exp(loss); }
};

// Uses up to B streams (fewer when the sequence is short) of (n - 1) / B
// steps each, each predicting up to the first token of the next; the
// (n - 1) mod B tokens left over are scored by the last stream going on
// alone. Every token but the first is predicted once: tokens = n - 1. Each
// stream starts from a zero state. Leaves the model's carried state as it
// found it.
EvalResult evaluate(LanguageModel<float>& model, const std::vector<int32_t>& ids, int B, int T);

// Saves the carried state on construction and puts it back on destruction,
// so evaluation or sampling in the middle of training changes nothing.
template <class F>
class StateGuard {
 public:
  explicit StateGuard(LanguageModel<F>& m)
      : m_(m), B_(m.state_batch()), h_(m.state_h), c_(m.state_c) {}
  ~StateGuard() {
    if (B_ < 1) {  // the model had no state yet
      m_.clear_state();
      return;
    }
    m_.reset_state(B_);
    m_.state_h = h_;
    m_.state_c = c_;
  }

 private:
  LanguageModel<F>& m_;
  int B_;
  Buffer<F> h_, c_;
};

}  // namespace unroll

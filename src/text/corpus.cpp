#include "unroll/text/corpus.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "unroll/core/error.h"

namespace unroll {

namespace {

std::string fmt(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

}  // namespace

Split split_contiguous(const std::vector<int32_t>& ids, double train_frac, double val_frac) {
  auto in_unit = [](double f) { return f >= 0.0 && f <= 1.0; };  // false for NaN
  require(in_unit(train_frac),
          "train fraction " + fmt(train_frac) + " is outside [0, 1]; give e.g. 0.9");
  require(in_unit(val_frac),
          "validation fraction " + fmt(val_frac) + " is outside [0, 1]; give e.g. 0.05");
  require(train_frac > 0.0, "train fraction is 0; the training split needs some of the data");
  require(train_frac + val_frac <= 1.0 + 1e-9,
          "train fraction " + fmt(train_frac) + " plus validation fraction " + fmt(val_frac) +
              " is more than 1; make them sum to at most 1 (the rest is the test split)");
  const size_t n = ids.size();
  size_t n_train = std::min(n, static_cast<size_t>(std::floor(n * train_frac)));
  size_t n_val = std::min(n - n_train, static_cast<size_t>(std::floor(n * val_frac)));
  Split s;
  s.train.assign(ids.begin(), ids.begin() + n_train);
  s.val.assign(ids.begin() + n_train, ids.begin() + n_train + n_val);
  s.test.assign(ids.begin() + n_train + n_val, ids.end());
  return s;
}

BatchStream::BatchStream(const std::vector<int32_t>& ids, int B, int T, const std::string& what)
    : B_(B), T_(T) {
  require(B >= 1, "batch size must be at least 1 (got " + std::to_string(B) + ")");
  require(T >= 1, "sequence length must be at least 1 (got " + std::to_string(T) + ")");
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t need = static_cast<int64_t>(B) * T + 1;
  if (n < need) {
    std::string msg = what + " is too short for one batch: it has " + std::to_string(n) +
                      " tokens, but batch " + std::to_string(B) + " x sequence " +
                      std::to_string(T) + " needs " + std::to_string(need) + " (B*T + 1)";
    const int64_t best_b = n >= 1 ? (n - 1) / T : 0;  // largest batch that fits with T
    const int64_t best_t = n >= 1 ? (n - 1) / B : 0;  // largest sequence that fits with B
    if (best_b >= 1 && best_t >= 1)
      msg += "; try --batch " + std::to_string(best_b) + " or --seq " + std::to_string(best_t);
    else if (best_b >= 1)
      msg += "; try --batch " + std::to_string(best_b);
    else if (best_t >= 1)
      msg += "; try --seq " + std::to_string(best_t);
    else if (n >= 2)
      msg += "; try --batch 1 --seq " + std::to_string(n - 1);
    else
      msg += "; it needs at least 2 tokens, give more text";
    throw Error(msg);
  }
  len_ = (n - 1) / B;
  const int64_t c = len_ / T;
  require(c <= std::numeric_limits<int>::max(),
          what + " has too many chunks (" + std::to_string(c) + "); use a larger --seq");
  chunks_ = static_cast<int>(c);
  ids_.assign(ids.begin(), ids.begin() + B * len_ + 1);
}

void BatchStream::get(int k, int32_t* inputs, int32_t* targets) const {
  require(k >= 0 && k < chunks_,
          "chunk " + std::to_string(k) + " is outside [0, " + std::to_string(chunks_) + ")");
  const int64_t col0 = static_cast<int64_t>(k) * T_;
  for (int t = 0; t < T_; ++t) {
    for (int b = 0; b < B_; ++b) {
      const int64_t pos = b * len_ + col0 + t;
      inputs[t * B_ + b] = ids_[pos];
      targets[t * B_ + b] = ids_[pos + 1];
    }
  }
}

}  // namespace unroll

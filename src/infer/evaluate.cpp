#include "unroll/infer/evaluate.h"

#include <algorithm>

#include "unroll/core/error.h"

namespace unroll {

EvalResult evaluate(LanguageModel<float>& model, const std::vector<int32_t>& ids, int B, int T) {
  require(ids.size() >= 2, "evaluation needs at least two tokens");
  require(B >= 1 && T >= 1, "evaluation batch and sequence must be positive");
  StateGuard<float> guard(model);
  const int64_t n = int64_t(ids.size());
  B = int(std::max<int64_t>(1, std::min<int64_t>(B, (n - 1) / T)));
  const int64_t len = (n - 1) / B;  // predicted positions per stream
  model.reset_state(B);
  std::vector<int32_t> in, tg;
  double sum = 0;
  int64_t count = 0;
  for (int64_t c0 = 0; c0 < len; c0 += T) {
    const int steps = int(std::min<int64_t>(T, len - c0));
    in.resize(size_t(steps) * B);
    tg.resize(size_t(steps) * B);
    for (int t = 0; t < steps; ++t)
      for (int b = 0; b < B; ++b) {
        const int64_t pos = int64_t(b) * len + c0 + t;
        in[size_t(t) * B + b] = ids[pos];
        tg[size_t(t) * B + b] = ids[pos + 1];
      }
    LossSum l = model.forward(in.data(), tg.data(), steps, B, Mode::Eval);
    sum += l.sum;
    count += l.count;
  }
  // The last (n - 1) mod B tokens fit no whole stream: the last stream goes on
  // alone over them (batch 1, its state carried), so every token but the first
  // is scored.
  const int64_t rest = n - 1 - int64_t(B) * len;
  if (rest > 0) {
    const int L = model.config().layers, H = model.config().hidden;
    const Buffer<float> h = model.state_h, c = model.state_c;  // [L][B][H]
    model.reset_state(1);
    for (int l = 0; l < L; ++l) {
      std::copy_n(h.data() + (size_t(l) * B + B - 1) * H, H, model.state_h.data() + size_t(l) * H);
      std::copy_n(c.data() + (size_t(l) * B + B - 1) * H, H, model.state_c.data() + size_t(l) * H);
    }
    for (int64_t p0 = int64_t(B) * len; p0 < n - 1; p0 += T) {
      const int steps = int(std::min<int64_t>(T, n - 1 - p0));
      in.assign(ids.begin() + p0, ids.begin() + p0 + steps);
      tg.assign(ids.begin() + p0 + 1, ids.begin() + p0 + steps + 1);
      LossSum l = model.forward(in.data(), tg.data(), steps, 1, Mode::Eval);
      sum += l.sum;
      count += l.count;
    }
  }
  return {sum / double(count), count};
}

}  // namespace unroll

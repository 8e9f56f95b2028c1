#include "unroll/infer/evaluate.h"

#include <algorithm>

#include "unroll/core/error.h"

namespace unroll {

EvalResult evaluate(Model<float>& model, const std::vector<int32_t>& ids, int B, int T) {
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
  return {sum / double(count), count};
}

}  // namespace unroll

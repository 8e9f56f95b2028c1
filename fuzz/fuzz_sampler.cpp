// libFuzzer target: the samplers' numbers. From the input: logits (any float,
// NaN and infinities included), a temperature (any float bits), top-k, top-p
// and greedy; then a tiny model whose weights are scaled by a fuzzed factor,
// generating and beam-searching from a fuzzed prime. Options outside their
// ranges and non-finite outputs must be an unroll::Error; otherwise the token
// chosen is in the vocabulary, among the top k, the most likely one when
// greedy, and never one whose softmax weight at that temperature is 0.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "unroll/core/error.h"
#include "unroll/infer/sampler.h"

namespace {

struct Bytes {
  const uint8_t* p;
  size_t n;
  template <class T>
  T take() {
    T v{};
    const size_t k = std::min(n, sizeof(T));
    std::memcpy(&v, p, k);
    p += k, n -= k;
    return v;
  }
};

unroll::LanguageModel<float>& tiny_model() {
  static unroll::LanguageModel<float>* m = [] {
    unroll::ModelConfig c;
    c.cell = unroll::CellKind::Lstm;
    c.layers = 1;
    c.hidden = 4;
    c.vocab = c.outputs = 5;
    auto* model = new unroll::LanguageModel<float>(c);
    unroll::Rng rng(1);
    model->init(rng);
    return model;
  }();
  return *m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in{data, size};
  const int V = 1 + in.take<uint8_t>() % 16;
  std::vector<float> z(static_cast<size_t>(V), 0.0f);
  for (float& v : z) v = in.take<float>();
  unroll::SampleOptions o;
  o.temperature = in.take<float>();
  o.top_k = in.take<uint8_t>() % 20;
  o.top_p = in.take<float>();
  o.greedy = in.take<uint8_t>() & 1;
  try {
    o.validate();
  } catch (const unroll::Error&) {
    if (o.temperature > 0 && std::isfinite(o.temperature) && o.top_p > 0 && o.top_p <= 1)
      __builtin_trap();
    o = unroll::SampleOptions{};  // go on with the defaults
  }
  bool finite = true;
  float best = -INFINITY;
  for (float v : z) finite = finite && std::isfinite(v), best = std::max(best, v);
  unroll::Rng rng(in.take<uint64_t>());
  std::vector<std::pair<double, int32_t>> scratch;
  try {
    const int32_t k = unroll::pick_token(z.data(), V, o, rng, scratch);
    if (!finite || k < 0 || k >= V) __builtin_trap();
    if (o.greedy && z[size_t(k)] != best) __builtin_trap();
    // At any temperature a token whose weight e^((z - max) / T) underflows to
    // 0 in double (exponent below about -745) is never chosen: with a tiny T
    // that is every token but the most likely (and any within ~745·T of it).
    if (!o.greedy && (double(best) - double(z[size_t(k)])) / double(o.temperature) > 746)
      __builtin_trap();
    if (o.top_k > 0 && o.top_k < V) {
      int above = 0;
      for (float v : z) above += v > z[size_t(k)];
      if (above >= o.top_k) __builtin_trap();
    }
  } catch (const unroll::Error&) {
    if (finite) __builtin_trap();
  }

  // A model: weights × a fuzzed factor (large ones overflow the outputs).
  unroll::LanguageModel<float>& m = tiny_model();
  std::vector<float> saved(m.params.data(), m.params.data() + m.params.size());
  const float factor = in.take<float>();
  for (size_t i = 0; i < saved.size(); ++i) m.params.data()[i] = saved[i] * factor;
  std::vector<int32_t> prime;
  for (int i = in.take<uint8_t>() % 8; i > 0; --i) prime.push_back(in.take<uint8_t>() % 5);
  const int n = in.take<uint8_t>() % 12, width = 1 + in.take<uint8_t>() % 4;
  try {
    unroll::generate(m, prime, 0, n, o, rng, [&](int32_t id) {
      if (id < 0 || id >= 5) __builtin_trap();
    });
  } catch (const unroll::Error&) {
  }
  try {
    for (int32_t id : unroll::beam_search(m, prime, 0, n, width))
      if (id < 0 || id >= 5) __builtin_trap();
  } catch (const unroll::Error&) {
  }
  std::copy(saved.begin(), saved.end(), m.params.data());
  return 0;
}

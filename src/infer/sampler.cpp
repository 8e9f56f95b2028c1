#include "unroll/infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "unroll/core/error.h"

namespace unroll {

void check_temperature(float t, const std::string& option) {
  // A float holds positive values from about 1.4e-45 to 3.4e38; a smaller
  // value typed on the command line arrives here as 0.
  require(t > 0 && std::isfinite(t),
          option +
              " must be a positive number from about 1.4e-45 to 3.4e38 (it is a "
              "float; smaller values round to 0), e.g. 0.8");
}

void SampleOptions::validate() const {
  check_temperature(temperature, "--temperature");
  require(top_k >= 0, "--top-k must be 0 (all tokens) or positive");
  require(top_p > 0 && top_p <= 1, "--top-p must be in (0, 1]");
}

namespace {
void require_finite(const float* logits, int V) {
  for (int k = 0; k < V; ++k)
    require(std::isfinite(logits[k]),
            "the model's outputs are not finite (NaN or infinity): the model's weights have "
            "diverged or are damaged");
}
}  // namespace

int32_t pick_token(const float* logits, int V, const SampleOptions& o, Rng& rng,
                   std::vector<std::pair<double, int32_t>>& s) {
  require_finite(logits, V);
  if (o.greedy) return int32_t(std::max_element(logits, logits + V) - logits);
  // Sorting by logit is sorting by probability at any temperature.
  s.resize(V);
  for (int k = 0; k < V; ++k) s[k] = {double(logits[k]), int32_t(k)};
  int keep = V;
  if (o.top_k > 0 && o.top_k < V) {
    std::partial_sort(s.begin(), s.begin() + o.top_k, s.end(), std::greater<>());
    keep = o.top_k;
  } else if (o.top_p < 1) {
    std::sort(s.begin(), s.end(), std::greater<>());
  }
  // Weights e^((z - max) / T) in double: z - max ≤ 0, so a tiny T sends
  // every weight but the largest to e^-inf = 0 (greedy, ties shared) instead
  // of overflowing z / T to infinity and the softmax to NaN.
  const double m = std::max_element(s.begin(), s.begin() + keep)->first;
  const double T = o.temperature;
  double total = 0;
  for (int k = 0; k < keep; ++k) total += (s[k].first = std::exp((s[k].first - m) / T));
  if (o.top_p < 1) {  // s is sorted by probability here
    double cum = 0;
    int k = 0;
    while (k < keep && cum < o.top_p * total) cum += s[k++].first;
    keep = std::max(1, k);
    total = cum;
  }
  double u = rng.uniform() * total;
  for (int k = 0; k < keep; ++k) {
    u -= s[k].first;
    if (u < 0) return s[k].second;
  }
  // Rounding can leave u ≥ 0 after the last weight: the last one with any.
  for (int k = keep - 1; k > 0; --k)
    if (s[k].first > 0) return s[k].second;
  return s[0].second;
}

namespace {
// Feeds the prime (or the start token) to a fresh state of B streams; leaves
// the logits of the last position in model.logits().
void feed_prime(LanguageModel<float>& model, const std::vector<int32_t>& prime, int32_t start,
                int B, int32_t category) {
  std::vector<int32_t> p = prime.empty() ? std::vector<int32_t>{start} : prime;
  if (category >= 0) {
    const std::vector<int32_t> cats(B, category);
    model.start_state(cats.data(), B);
  } else {
    require(model.config().categories == 0,
            "this model is conditioned on categories: give the category to generate for");
    model.reset_state(B);
  }
  // Chunks of up to 256 steps: few GEMMs, and memory bounded for any prime length.
  constexpr size_t kChunk = 256;
  std::vector<int32_t> in(std::min(p.size(), kChunk) * B);
  for (size_t t0 = 0; t0 < p.size(); t0 += kChunk) {
    const size_t n = std::min(kChunk, p.size() - t0);
    for (size_t t = 0; t < n; ++t)
      for (int b = 0; b < B; ++b) in[t * B + b] = p[t0 + t];
    model.forward(in.data(), nullptr, int(n), B, Mode::Eval);
  }
}
}  // namespace

void generate(LanguageModel<float>& model, const std::vector<int32_t>& prime, int32_t start, int n,
              const SampleOptions& o, Rng& rng, const std::function<void(int32_t)>& emit,
              int32_t category, int32_t stop) {
  o.validate();
  feed_prime(model, prime, start, 1, category);
  const int V = model.config().outputs;
  const float* last = model.logits() + size_t(model.chunk_steps() - 1) * V;
  std::vector<std::pair<double, int32_t>> scratch;
  for (int i = 0; i < n; ++i) {
    int32_t tok = pick_token(last, V, o, rng, scratch);
    if (tok == stop) break;
    emit(tok);
    if (i + 1 == n) break;
    model.forward(&tok, nullptr, 1, 1, Mode::Eval);
    last = model.logits();
  }
}

std::vector<int32_t> beam_search(LanguageModel<float>& model, const std::vector<int32_t>& prime,
                                 int32_t start, int n, int W, int32_t category) {
  require(W >= 1, "--beam width must be at least 1");
  const int V = model.config().outputs, H = model.config().hidden, L = model.config().layers;
  feed_prime(model, prime, start, W, category);
  const float* z = model.logits() + size_t(model.chunk_steps() - 1) * W * V;
  const double kNeg = -std::numeric_limits<double>::infinity();
  std::vector<double> score(W, kNeg);
  score[0] = 0;  // all beams start identical: only one is live
  std::vector<std::vector<int32_t>> seq(W);
  std::vector<std::tuple<double, int, int32_t>> cand;
  std::vector<int32_t> next(W);
  Buffer<float> h2, c2;
  for (int i = 0; i < n; ++i) {
    cand.clear();
    for (int w = 0; w < W; ++w) {
      if (score[w] == kNeg) continue;
      const float* zw = z + size_t(w) * V;
      require_finite(zw, V);  // a NaN would break the ordering the sort needs
      const float m = *std::max_element(zw, zw + V);
      double s = 0;
      for (int k = 0; k < V; ++k) s += std::exp(double(zw[k] - m));
      const double lse = m + std::log(s);
      for (int k = 0; k < V; ++k) cand.emplace_back(score[w] + zw[k] - lse, w, int32_t(k));
    }
    const int keep = std::min<int>(W, int(cand.size()));
    std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(),
                      [](auto& a, auto& b) { return std::get<0>(a) > std::get<0>(b); });
    // Reorder the beams' states, sequences and scores by their parents.
    h2 = model.state_h;
    c2 = model.state_c;
    std::vector<std::vector<int32_t>> seq2(W);
    std::vector<double> score2(W, kNeg);
    for (int w = 0; w < W; ++w) {
      const int src = w < keep ? std::get<1>(cand[w]) : 0;
      for (int l = 0; l < L; ++l) {
        std::copy_n(model.state_h.data() + (size_t(l) * W + src) * H, H,
                    h2.data() + (size_t(l) * W + w) * H);
        std::copy_n(model.state_c.data() + (size_t(l) * W + src) * H, H,
                    c2.data() + (size_t(l) * W + w) * H);
      }
      if (w < keep) {
        seq2[w] = seq[src];
        seq2[w].push_back(std::get<2>(cand[w]));
        score2[w] = std::get<0>(cand[w]);
        next[w] = std::get<2>(cand[w]);
      } else {
        next[w] = 0;
      }
    }
    model.state_h.swap(h2);
    model.state_c.swap(c2);
    seq.swap(seq2);
    score.swap(score2);
    if (i + 1 == n) break;
    model.forward(next.data(), nullptr, 1, W, Mode::Eval);
    z = model.logits();
  }
  return seq[0];
}

}  // namespace unroll

// The infer/ layer: choosing tokens (temperature, top-k, top-p, greedy) and
// scoring a whole text.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <map>

#include "unroll/core/error.h"
#include "unroll/infer/evaluate.h"
#include "unroll/infer/sampler.h"

using namespace unroll;

namespace {

std::map<int, int> draws(const std::vector<float>& z, const SampleOptions& o, int n,
                         uint64_t seed = 1) {
  Rng rng(seed);
  std::vector<std::pair<double, int32_t>> scratch;
  std::map<int, int> seen;
  for (int i = 0; i < n; ++i) ++seen[pick_token(z.data(), int(z.size()), o, rng, scratch)];
  return seen;
}

// logits / T overflowed to infinity for T below about 1e-38, the softmax
// became NaN and every pick fell through to the last token.
TEST(Sampler, TinyTemperaturesPickTheMostLikelyToken) {
  const std::vector<float> z = {1.5f, 3.0f, -2.0f, 2.9f, 0.0f};
  for (float t : {1e-3f, 1e-20f, 1e-38f, 1e-40f, 1e-44f, FLT_TRUE_MIN}) {
    SampleOptions o;
    o.temperature = t;
    EXPECT_EQ(draws(z, o, 200), (std::map<int, int>{{1, 200}})) << "T = " << t;
    o.top_k = 3;
    EXPECT_EQ(draws(z, o, 50), (std::map<int, int>{{1, 50}})) << "top-k, T = " << t;
    o.top_k = 0;
    o.top_p = 0.5f;
    EXPECT_EQ(draws(z, o, 50), (std::map<int, int>{{1, 50}})) << "top-p, T = " << t;
  }
}

TEST(Sampler, TinyTemperatureSharesTiesAtTheTop) {
  const std::vector<float> z = {3.0f, -1.0f, 3.0f, 2.0f};
  SampleOptions o;
  o.temperature = 1e-40f;
  const auto seen = draws(z, o, 2000);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_GT(seen.at(0), 850);
  EXPECT_GT(seen.at(2), 850);
}

TEST(Sampler, FrequenciesFollowTheSoftmaxAtAnyTemperature) {
  const std::vector<float> z = {0.0f, 1.0f, 2.0f};
  for (float t : {0.5f, 1.0f, 2.0f, 3e38f}) {
    SampleOptions o;
    o.temperature = t;
    const int n = 40000;
    const auto seen = draws(z, o, n, 7);
    double total = 0;
    for (float v : z) total += std::exp(double(v) / t);
    for (int k = 0; k < 3; ++k) {
      const double p = std::exp(double(z[k]) / t) / total;
      const double got = seen.count(k) ? seen.at(k) / double(n) : 0.0;
      EXPECT_NEAR(got, p, 4 * std::sqrt(p * (1 - p) / n) + 1e-3) << "T = " << t << ", token " << k;
    }
  }
}

TEST(Sampler, NonFiniteLogitsAreAnErrorNotALastTokenPick) {
  SampleOptions o;
  Rng rng(1);
  std::vector<std::pair<double, int32_t>> scratch;
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    const std::vector<float> z = {0.0f, bad, 1.0f};
    EXPECT_THROW(pick_token(z.data(), 3, o, rng, scratch), Error);
  }
}

TEST(Sampler, TemperatureRangeMessageNamesBothEnds) {
  for (float t : {0.0f, -1.0f, INFINITY, NAN}) {
    try {
      check_temperature(t, "--temperature");
      FAIL() << "accepted " << t;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--temperature"), std::string::npos) << m;
      EXPECT_NE(m.find("1.4e-45"), std::string::npos) << m;
      EXPECT_NE(m.find("3.4e38"), std::string::npos) << m;
    }
  }
  EXPECT_NO_THROW(check_temperature(FLT_TRUE_MIN, "--temperature"));
  EXPECT_NO_THROW(check_temperature(FLT_MAX, "--temperature"));
}

ModelConfig small_lstm(int V) {
  ModelConfig c;
  c.cell = CellKind::Lstm;
  c.layers = 2;
  c.hidden = 8;
  c.vocab = c.outputs = V;
  c.init = InitKind::Uniform;  // init_scale is its scale
  c.init_scale = 0.5f;
  return c;
}

std::vector<int32_t> some_ids(size_t n, int V) {
  std::vector<int32_t> ids(n);
  uint64_t x = 12345;
  for (auto& id : ids) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    id = int32_t((x >> 33) % uint64_t(V));
  }
  return ids;
}

// B streams of (n-1)/B steps; the (n-1) mod B tokens left over used to go
// unscored. Now the last stream goes on over them: the sum equals scoring
// each stream's own span with one stream (the last span longer by the rest).
TEST(Evaluate, ScoresEveryTokenButTheFirst) {
  const int V = 7;
  LanguageModel<float> m(small_lstm(V));
  Rng rng(3);
  m.init(rng);
  for (size_t n : {103u, 100u, 129u}) {
    const std::vector<int32_t> ids = some_ids(n, V);
    const int B = 4, T = 5;
    const EvalResult all = evaluate(m, ids, B, T);
    EXPECT_EQ(all.tokens, int64_t(n) - 1) << "n = " << n;
    const size_t len = (n - 1) / B;
    double sum = 0;
    int64_t count = 0;
    for (int b = 0; b < B; ++b) {
      const size_t from = b * len, to = b + 1 < B ? (b + 1) * len + 1 : n;
      const std::vector<int32_t> span(ids.begin() + from, ids.begin() + to);
      const EvalResult r = evaluate(m, span, 1, 3);
      sum += r.loss * double(r.tokens);
      count += r.tokens;
    }
    EXPECT_EQ(count, all.tokens);
    EXPECT_NEAR(sum / double(count), all.loss, 1e-5) << "n = " << n;
  }
}

}  // namespace

// unroll/infer/sampler.h — generating text from a language model: prime it,
// then feed each chosen token back in. Temperature, top-k, top-p (nucleus),
// greedy, and beam search.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "unroll/core/rng.h"
#include "unroll/model/model.h"

namespace unroll {

struct SampleOptions {
  float temperature = 1.0f;  // > 0; below 1 sharpens, above 1 flattens
  int top_k = 0;             // 0 = all tokens
  float top_p = 1.0f;        // keep the smallest set of tokens with this much probability
  bool greedy = false;       // always the most likely token
  void validate() const;     // throws Error with the accepted ranges
};

// Throws Error unless t is a usable temperature (> 0 and finite), naming
// `option` and both ends of the range.
void check_temperature(float t, const std::string& option);

// Chooses a token from logits[V]: softmax(logits / T), computed so that any
// positive float T works (a tiny one picks the most likely token, like
// greedy). Throws Error if a logit is not finite. scratch is reused between
// calls.
int32_t pick_token(const float* logits, int V, const SampleOptions& o, Rng& rng,
                   std::vector<std::pair<double, int32_t>>& scratch);

// Runs the prime through the model (batch 1, fresh state), then generates n
// tokens, calling emit(id) for each as soon as it is chosen. An empty prime
// starts from start_token. A conditional model (categories > 0) starts from
// its category's state (category ≥ 0 required). Generation ends early when
// the stop token is chosen (not emitted); -1: never.
void generate(LanguageModel<float>& model, const std::vector<int32_t>& prime, int32_t start_token,
              int n, const SampleOptions& o, Rng& rng, const std::function<void(int32_t)>& emit,
              int32_t category = -1, int32_t stop = -1);

// Beam search of the given width: the n-token continuation of the prime with
// the highest total log-probability found. Returns the continuation only.
// Throws Error if the model's outputs are not finite.
std::vector<int32_t> beam_search(LanguageModel<float>& model, const std::vector<int32_t>& prime,
                                 int32_t start_token, int n, int width, int32_t category = -1);

}  // namespace unroll

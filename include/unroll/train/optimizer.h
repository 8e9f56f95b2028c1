// unroll/train/optimizer.h — optimizers, gradient clipping and the learning-rate
// schedule. Each works on the whole flat parameter/gradient buffer in one loop.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "unroll/core/buffer.h"

namespace unroll {

enum class OptimKind { Adam, RmsProp, Adagrad, Sgd };
std::string optim_name(OptimKind k);
OptimKind parse_optim(const std::string& s);  // Error lists accepted names

struct OptimConfig {
  OptimKind kind = OptimKind::Adam;
  float lr = 2e-3f;
  float beta1 = 0.9f;    // Adam
  float beta2 = 0.999f;  // Adam
  float eps = 1e-8f;     // Adam, RMSprop, Adagrad
  float alpha = 0.95f;   // RMSprop: decay of the squared-gradient average
  float momentum = 0.0f; // SGD
  float weight_decay = 0.0f;  // decoupled (AdamW-style): θ ← θ − lr·wd·θ before each update
};
nlohmann::json to_json(const OptimConfig& c);
OptimConfig optim_config_from_json(const nlohmann::json& j);

// State buffers m and v are the same size as the parameters (unused ones stay
// empty). Adam: m, v first and second moments. RMSprop: v. Adagrad: v (sum of
// squares). SGD: m (velocity).
class Optimizer {
 public:
  Optimizer(const OptimConfig& cfg, size_t n);
  // θ ← update(θ, g) with learning rate lr (the schedule's current value).
  void step(float* params, const float* grads, float lr);
  const OptimConfig& config() const { return cfg_; }
  Buffer<float> m, v;
  int64_t t = 0;  // steps taken (Adam's bias correction)

 private:
  OptimConfig cfg_;
  size_t n_;
};

// Global L2 norm of g[0..n).
double global_norm(const float* g, size_t n);
// Scales g so its global norm is at most max_norm; returns the norm before.
double clip_by_norm(float* g, size_t n, double max_norm);
// Clamps each element to [−v, v]; returns the global norm before.
double clip_by_value(float* g, size_t n, double v);

// Learning rate in epoch e (1-based): lr · decay^max(0, e − after).
// (Zaremba et al.: lr 1, decay 0.5, after 4; char-rnn: decay 0.97, after 10.)
inline float scheduled_lr(float lr, float decay, int after, int epoch) {
  float f = 1;
  for (int e = after; e < epoch; ++e) f *= decay;
  return lr * f;
}

}  // namespace unroll

// unroll/train/optimizer.h — optimizers, gradient clipping and the learning-rate
// schedule. Each works on the whole flat parameter/gradient buffer in one loop.
#pragma once
#include <algorithm>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "unroll/core/buffer.h"

namespace unroll {

enum class OptimKind { Adam, RmsProp, Adagrad, Sgd };
std::string optim_name(OptimKind k);
OptimKind parse_optim(const std::string& s);  // Error lists accepted names

struct OptimConfig {
  OptimKind kind = OptimKind::Adam;
  float lr = 2e-3f;
  float beta1 = 0.9f;         // Adam
  float beta2 = 0.999f;       // Adam
  float eps = 1e-8f;          // Adam, RMSprop, Adagrad
  float alpha = 0.95f;        // RMSprop: decay of the squared-gradient average
  float momentum = 0.0f;      // SGD
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

  // Weight averaging (Polyak & Juditsky 1992; NT-ASGD, Merity et al. 2017):
  // once started, avg is the mean of the parameters after each step since.
  void start_average(const float* p) { avg.assign(p, p + n_), avg_steps = 1; }  // p counts
  bool averaging() const { return !avg.empty(); }
  void add_to_average(const float* p);  // after a step: avg += (p − avg) / (k + 1)
  Buffer<float> avg;                    // empty until start_average
  int64_t avg_steps = 0;                // steps in the average

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

// --clip and --clip-mode, the same for every task: mode "norm" scales g to a global norm of
// at most `clip`, "value" clamps each element to [−clip, clip]; clip 0 = off. Returns the
// global norm before, and whether clipping changed g.
struct Clipped {
  double norm = 0;
  bool clipped = false;
};
Clipped clip_gradient(float* g, size_t n, double clip, const std::string& mode);

// NT-ASGD's trigger (Merity et al. 2017, non-monotonically triggered ASGD):
// the validation loss v is worse than the best of those logged more than n
// validations ago. history: the earlier validation losses, oldest first.
inline bool non_monotone_trigger(const std::vector<double>& history, double v, int n) {
  if (n <= 0 || history.size() <= size_t(n)) return false;
  double best = history[0];
  for (size_t i = 1; i < history.size() - size_t(n); ++i) best = std::min(best, history[i]);
  return v > best;
}

// Learning rate in epoch e (1-based): lr · decay^max(0, e − after).
// (Zaremba et al.: lr 1, decay 0.5, after 4; char-rnn: decay 0.97, after 10.)
inline float scheduled_lr(float lr, float decay, int after, int epoch) {
  float f = 1;
  for (int e = after; e < epoch; ++e) f *= decay;
  return lr * f;
}

// The learning rate of every step: a linear warm-up over the first `warmup`
// steps (lr·s/warmup at step s, Goyal et al. 2017), then one of
//   step:    lr · decay^max(0, epoch − after)                     (per epoch)
//   cosine:  lr_min + (lr − lr_min) · ½(1 + cos(π·u)), u the fraction of the
//            steps after the warm-up that are done, reaching lr_min at step
//            `total` (Loshchilov & Hutter 2017, SGDR without restarts)
//   plateau: lr · decay^cuts, one cut each time validation has failed to
//            improve on its best for `patience` evaluations in a row (the
//            caller counts them with Plateau)
enum class ScheduleKind { Step, Cosine, Plateau };
std::string schedule_name(ScheduleKind k);
ScheduleKind parse_schedule(const std::string& s);  // Error lists accepted names

struct Schedule {
  ScheduleKind kind = ScheduleKind::Step;
  float lr = 2e-3f;
  float decay = 1;     // step: per epoch; plateau: per cut
  int after = 0;       // step: epochs at the full rate
  int64_t warmup = 0;  // steps
  int64_t total = 0;   // cosine: the last step; 0 = not known yet (the full rate until then)
  float lr_min = 0;    // cosine: the rate at step `total`
};
// step: 1-based, the step about to be taken; epoch: 1-based; cuts: Plateau::cuts.
float schedule_lr(const Schedule& s, int64_t step, int epoch, int cuts);

// Reduce-on-plateau bookkeeping, one call per validation.
struct Plateau {
  int bad = 0;   // evaluations in a row without a new best
  int cuts = 0;  // reductions so far
  void observe(bool improved, int patience) {
    if (improved) {
      bad = 0;
    } else if (++bad >= patience) {
      ++cuts;
      bad = 0;
    }
  }
};

}  // namespace unroll

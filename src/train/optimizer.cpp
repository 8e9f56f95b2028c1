#include "unroll/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "unroll/core/error.h"
#include "unroll/core/json.h"

namespace unroll {

std::string optim_name(OptimKind k) {
  switch (k) {
    case OptimKind::Adam:
      return "adam";
    case OptimKind::RmsProp:
      return "rmsprop";
    case OptimKind::Adagrad:
      return "adagrad";
    case OptimKind::Sgd:
      return "sgd";
  }
  return "?";
}

OptimKind parse_optim(const std::string& s) {
  if (s == "adam") return OptimKind::Adam;
  if (s == "rmsprop") return OptimKind::RmsProp;
  if (s == "adagrad") return OptimKind::Adagrad;
  if (s == "sgd") return OptimKind::Sgd;
  throw Error("unknown optimizer '" + s + "': use one of adam, rmsprop, adagrad, sgd");
}

nlohmann::json to_json(const OptimConfig& c) {
  return {{"kind", optim_name(c.kind)},
          {"lr", c.lr},
          {"beta1", c.beta1},
          {"beta2", c.beta2},
          {"eps", c.eps},
          {"alpha", c.alpha},
          {"momentum", c.momentum},
          {"weight_decay", c.weight_decay}};
}

OptimConfig optim_config_from_json(const nlohmann::json& j) {
  OptimConfig c;
  try {
    c.kind = parse_optim(j.at("kind").get<std::string>());
    c.lr = json_field<float>(j, "lr");
    c.beta1 = json_field(j, "beta1", c.beta1);
    c.beta2 = json_field(j, "beta2", c.beta2);
    c.eps = json_field(j, "eps", c.eps);
    c.alpha = json_field(j, "alpha", c.alpha);
    c.momentum = json_field(j, "momentum", c.momentum);
    c.weight_decay = json_field(j, "weight_decay", 0.0f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("optimizer config is malformed: ") + e.what());
  }
  return c;
}

Optimizer::Optimizer(const OptimConfig& cfg, size_t n) : cfg_(cfg), n_(n) {
  require(cfg.lr > 0 && std::isfinite(cfg.lr), "learning rate must be a positive number");
  if (cfg.kind == OptimKind::Adam || cfg.kind == OptimKind::Sgd) m.assign(n, 0.0f);
  if (cfg.kind != OptimKind::Sgd) v.assign(n, 0.0f);
}

void Optimizer::step(float* p, const float* g, float lr) {
  ++t;
  const int64_t n = int64_t(n_);
  float* M = m.data();
  float* V = v.data();
  if (cfg_.weight_decay > 0) {  // decoupled from the gradient (Loshchilov & Hutter's AdamW)
    const float keep = 1.0f - lr * cfg_.weight_decay;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] *= keep;
  }
  switch (cfg_.kind) {
    case OptimKind::Adam: {
      const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
      const float c1 = 1.0f / (1.0f - std::pow(b1, float(t)));
      const float c2 = 1.0f / (1.0f - std::pow(b2, float(t)));
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        M[i] = b1 * M[i] + (1 - b1) * g[i];
        V[i] = b2 * V[i] + (1 - b2) * g[i] * g[i];
        p[i] -= lr * (M[i] * c1) / (std::sqrt(V[i] * c2) + eps);
      }
      break;
    }
    case OptimKind::RmsProp: {
      const float a = cfg_.alpha, eps = cfg_.eps;
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        V[i] = a * V[i] + (1 - a) * g[i] * g[i];
        p[i] -= lr * g[i] / (std::sqrt(V[i]) + eps);
      }
      break;
    }
    case OptimKind::Adagrad: {
      const float eps = cfg_.eps;
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        V[i] += g[i] * g[i];
        p[i] -= lr * g[i] / (std::sqrt(V[i]) + eps);
      }
      break;
    }
    case OptimKind::Sgd: {
      const float mu = cfg_.momentum;
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        M[i] = mu * M[i] + g[i];
        p[i] -= lr * M[i];
      }
      break;
    }
  }
}

std::string schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Step:
      return "step";
    case ScheduleKind::Cosine:
      return "cosine";
    case ScheduleKind::Plateau:
      return "plateau";
  }
  return "?";
}

ScheduleKind parse_schedule(const std::string& s) {
  if (s == "step") return ScheduleKind::Step;
  if (s == "cosine") return ScheduleKind::Cosine;
  if (s == "plateau") return ScheduleKind::Plateau;
  throw Error("unknown learning-rate schedule '" + s + "': use one of step, cosine, plateau");
}

float schedule_lr(const Schedule& s, int64_t step, int epoch, int cuts) {
  if (s.warmup > 0 && step <= s.warmup) return s.lr * float(double(step) / double(s.warmup));
  switch (s.kind) {
    case ScheduleKind::Step:
      return scheduled_lr(s.lr, s.decay, s.after, epoch);
    case ScheduleKind::Cosine: {
      if (s.total <= 0) return s.lr;  // the end is not fixed yet (--time: after 10% of it)
      const double span = double(s.total - s.warmup);
      const double u = span > 0 ? std::clamp(double(step - s.warmup) / span, 0.0, 1.0) : 1.0;
      return float(s.lr_min + (double(s.lr) - s.lr_min) * 0.5 * (1 + std::cos(M_PI * u)));
    }
    case ScheduleKind::Plateau:
      return s.lr * std::pow(s.decay, float(cuts));
  }
  return s.lr;
}

void Optimizer::add_to_average(const float* p) {
  // The running mean in one pass: after k + 1 steps avg is their plain mean
  // (to rounding), with no sum that grows with k.
  const float w = 1.0f / float(++avg_steps);
  float* A = avg.data();
  const int64_t n = int64_t(n_);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) A[i] += w * (p[i] - A[i]);
}

double global_norm(const float* g, size_t n) {
  // Partial sums over fixed blocks, added in order: the result does not
  // depend on the thread count or scheduling (resume is bit-for-bit).
  constexpr size_t kBlock = 8192;
  const int64_t nb = int64_t((n + kBlock - 1) / kBlock);
  std::vector<double> part(nb);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    for (size_t i = size_t(b) * kBlock; i < std::min(n, size_t(b + 1) * kBlock); ++i)
      s += double(g[i]) * g[i];
    part[b] = s;
  }
  double s = 0;
  for (double x : part) s += x;
  return std::sqrt(s);
}

double clip_by_norm(float* g, size_t n, double max_norm) {
  const double norm = global_norm(g, n);
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / norm);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < int64_t(n); ++i) g[i] *= s;
  }
  return norm;
}

double clip_by_value(float* g, size_t n, double v) {
  const double norm = global_norm(g, n);
  const float fv = float(v);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < int64_t(n); ++i) g[i] = std::min(fv, std::max(-fv, g[i]));
  return norm;
}

Clipped clip_gradient(float* g, size_t n, double clip, const std::string& mode) {
  Clipped r;
  if (mode == "value") {
    float max_abs = 0;  // an element beyond the bound is what value clipping changes
#pragma omp parallel for simd reduction(max : max_abs) schedule(static)
    for (int64_t i = 0; i < int64_t(n); ++i) max_abs = std::max(max_abs, std::fabs(g[i]));
    r.norm = clip > 0 ? clip_by_value(g, n, clip) : global_norm(g, n);
    r.clipped = clip > 0 && max_abs > clip;
  } else {
    r.norm = clip > 0 ? clip_by_norm(g, n, clip) : global_norm(g, n);
    r.clipped = clip > 0 && r.norm > clip;
  }
  return r;
}

}  // namespace unroll

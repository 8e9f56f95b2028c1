#include "unroll/core/gemm.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstring>

#include "unroll/core/error.h"

namespace unroll {

namespace {
// A row or two against a small matrix — batch-1 sampling, where a step of an
// LSTM 2×128 is a few 128×512 products — runs here on one thread. For such a
// product oneDNN's per-call set-up and OpenMP fork/join cost more than the
// arithmetic. Larger matrices go to oneDNN and both cores. Measured with
// bench/micro.cpp (BM_Gemm/M:1, BM_SampleStep), see docs/performance.md.
constexpr int64_t kSmallRows = 2;
constexpr int64_t kSmallElems = int64_t(1) << 17;
constexpr int64_t kSplitElems = int64_t(1) << 15;

using f8 = float __attribute__((vector_size(32)));  // 8 lanes: AVX2 and AVX-512 alike

f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void store8(float* p, f8 v) { std::memcpy(p, &v, sizeof v); }

f8 scale_add(f8 acc, float alpha, float beta, const float* c) {  // alpha·acc + beta·c
  return beta == 0 ? alpha * acc : alpha * acc + beta * load8(c);
}

// Sums of the lanes of eight vectors, as one vector: out[r] = Σ_l v[r][l].
f8 lane_sums(const f8* v) {
  auto pairs = [](f8 a, f8 b) {  // [a0+a1, b0+b1, a2+a3, b2+b3, ...]
    return __builtin_shufflevector(a, b, 0, 8, 2, 10, 4, 12, 6, 14) +
           __builtin_shufflevector(a, b, 1, 9, 3, 11, 5, 13, 7, 15);
  };
  auto quads = [](f8 a, f8 b) {  // from two pair vectors: four sums of four
    return __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13) +
           __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15);
  };
  const f8 lo = quads(pairs(v[0], v[1]), pairs(v[2], v[3]));
  const f8 hi = quads(pairs(v[4], v[5]), pairs(v[6], v[7]));
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 8, 9, 10, 11) +
         __builtin_shufflevector(lo, hi, 4, 5, 6, 7, 12, 13, 14, 15);
}

// c[j] = alpha · (a · B[j, :]) + beta · c[j], j < N: eight dot products at a
// time, each in its own vector sum, reduced together at the end.
void row_times_bt(int64_t N, int64_t K, float alpha, const float* a, const float* B, int64_t ldb,
                  float beta, float* c) {
  const int64_t K8 = K / 8 * 8;
  int64_t j = 0;
  for (; j + 8 <= N; j += 8) {
    f8 acc[8] = {};
    for (int64_t k = 0; k < K8; k += 8) {
      const f8 x = load8(a + k);
      for (int r = 0; r < 8; ++r) acc[r] += x * load8(B + (j + r) * ldb + k);
    }
    f8 sum = lane_sums(acc);
    for (int r = 0; r < 8; ++r)
      for (int64_t k = K8; k < K; ++k) sum[r] += a[k] * B[(j + r) * ldb + k];
    store8(c + j, scale_add(sum, alpha, beta, c + j));
  }
  for (; j < N; ++j) {
    float sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += a[k] * B[j * ldb + k];
    c[j] = alpha * sum + (beta == 0 ? 0.f : beta * c[j]);
  }
}

// c = alpha · a B + beta · c: 64 columns at a time held in registers while
// the rows of B stream past.
void row_times_b(int64_t N, int64_t K, float alpha, const float* a, const float* B, int64_t ldb,
                 float beta, float* c) {
  int64_t j = 0;
  for (; j + 64 <= N; j += 64) {
    f8 acc[8] = {};
    for (int64_t k = 0; k < K; ++k) {
      const float s = a[k];
      for (int q = 0; q < 8; ++q) acc[q] += s * load8(B + k * ldb + j + 8 * q);
    }
    for (int q = 0; q < 8; ++q)
      store8(c + j + 8 * q, scale_add(acc[q], alpha, beta, c + j + 8 * q));
  }
  for (; j < N; ++j) {
    float sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += a[k] * B[k * ldb + j];
    c[j] = alpha * sum + (beta == 0 ? 0.f : beta * c[j]);
  }
}
}  // namespace

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (!transA && M <= kSmallRows && N * K <= kSmallElems) {
    // Two halves of the columns (multiples of 64) on two threads when B is
    // large enough: each core then keeps its half of B in its own cache.
    const int parts = N * K >= kSplitElems && N >= 128 && omp_get_max_threads() >= 2 ? 2 : 1;
    const int64_t half = (N / 2 + 63) / 64 * 64;
#pragma omp parallel for schedule(static) num_threads(parts) if (parts > 1)
    for (int p = 0; p < parts; ++p) {
      const int64_t j0 = p == 0 ? 0 : half, n = parts == 1 ? N : p == 0 ? half : N - half;
      for (int64_t i = 0; i < M; ++i)
        (transB ? row_times_bt : row_times_b)(
            n, K, alpha, A + i * lda, B + (transB ? j0 * ldb : j0), ldb, beta, C + i * ldc + j0);
    }
    return;
  }
  dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B,
                                ldb, beta, C, ldc);
  if (st != dnnl_success)
    throw Error("internal: dnnl_sgemm failed with status " + std::to_string(int(st)));
}

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm_reference(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {
int forced_layout = -1;
}

bool short_gemm_wants_bt() {
  if (forced_layout >= 0) return forced_layout == 1;
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return !avx512;
}

void force_short_gemm_layout(int bt) { forced_layout = bt < 0 ? -1 : bt != 0; }

void set_threads(int n) {
  require(n >= 1, "--threads must be at least 1 (got " + std::to_string(n) + ")");
  omp_set_num_threads(n);
}

int get_threads() { return omp_get_max_threads(); }

}  // namespace unroll

// unroll/core/gemm.h — the matrix product every layer uses.
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C      (row-major)
// op(X) = X or X^T by transA/transB. Float goes to oneDNN's dnnl_sgemm; double
// (used by the gradient checks) goes to a plain reference loop.
#pragma once
#include <cstdint>

namespace unroll {

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// Reference product for any scalar (used for double, and by tests to check gemm).
template <class T>
void gemm_reference(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                    int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        T a = transA ? A[k * lda + i] : A[i * lda + k];
        T b = transB ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
}

// Which layout of B suits oneDNN's product of a short A (a few dozen rows,
// the per-step recurrent product of training) with a wide B on this CPU:
// true: B transposed, [N, K] row-major; false: B as it is, [K, N]. Measured
// with bench/micro.cpp BM_Gemm M:50 — with AVX-512, [K, N] was about twice
// as fast; with AVX2 only, [N, K] is 1.8× (forward) and 1.2–1.6× (backward)
// as fast. force_short_gemm_layout(0/1) pins the answer (tests run both
// layouts); -1 returns to the CPU's.
bool short_gemm_wants_bt();
void force_short_gemm_layout(int bt);

// Sets the number of threads for GEMMs and element-wise loops (one OpenMP pool).
void set_threads(int n);
int get_threads();

}  // namespace unroll

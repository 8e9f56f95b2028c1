#include "unroll/core/gemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "unroll/core/error.h"

namespace unroll {

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B,
                                ldb, beta, C, ldc);
  if (st != dnnl_success) throw Error("internal: dnnl_sgemm failed with status " + std::to_string(int(st)));
}

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc) {
  gemm_reference(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void set_threads(int n) {
  require(n >= 1, "--threads must be at least 1 (got " + std::to_string(n) + ")");
  omp_set_num_threads(n);
}

int get_threads() { return omp_get_max_threads(); }

}  // namespace unroll

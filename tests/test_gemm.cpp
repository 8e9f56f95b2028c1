// The float matrix product (oneDNN, and the one-thread path for a row or two
// against a small matrix) against the double reference loop.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "unroll/core/gemm.h"
#include "unroll/core/rng.h"

namespace unroll {
namespace {

struct Shape {
  int64_t M, N, K;
};

// Checks C = alpha op(A) op(B) + beta C for one shape and all four transposes,
// with leading dimensions wider than the matrices (strided rows).
void check(const Shape& s, float alpha, float beta) {
  Rng rng(uint64_t(s.M * 1000003 + s.N * 1009 + s.K));
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t ar = ta ? s.K : s.M, ac = ta ? s.M : s.K;
      const int64_t br = tb ? s.N : s.K, bc = tb ? s.K : s.N;
      const int64_t lda = ac + 3, ldb = bc + 5, ldc = s.N + 2;
      std::vector<float> A(ar * lda), B(br * ldb), C(s.M * ldc);
      for (auto& v : A) v = float(rng.uniform() * 2 - 1);
      for (auto& v : B) v = float(rng.uniform() * 2 - 1);
      for (auto& v : C) v = float(rng.uniform() * 2 - 1);
      std::vector<double> Ad(A.begin(), A.end()), Bd(B.begin(), B.end()), Cd(C.begin(), C.end());
      gemm(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
      gemm_reference<double>(ta, tb, s.M, s.N, s.K, alpha, Ad.data(), lda, Bd.data(), ldb, beta,
                             Cd.data(), ldc);
      double worst = 0;
      for (int64_t i = 0; i < s.M; ++i)
        for (int64_t j = 0; j < s.N; ++j)
          worst = std::max(worst, std::abs(C[i * ldc + j] - Cd[i * ldc + j]));
      EXPECT_LT(worst, 1e-4 * std::sqrt(double(s.K)) + 1e-5)
          << "M=" << s.M << " N=" << s.N << " K=" << s.K << " transA=" << ta << " transB=" << tb
          << " alpha=" << alpha << " beta=" << beta;
      // The padding between rows of C is never written.
      for (int64_t i = 0; i < s.M; ++i)
        for (int64_t j = s.N; j < ldc; ++j) EXPECT_EQ(C[i * ldc + j], float(Cd[i * ldc + j]));
    }
}

TEST(Gemm, MatchesReferenceForSamplingShapes) {  // one or two rows: the one-thread path
  for (Shape s : {Shape{1, 512, 128}, Shape{1, 65, 128}, Shape{2, 512, 128}, Shape{1, 7, 3},
                  Shape{1, 1, 1}, Shape{2, 300, 200}})
    for (float beta : {0.f, 1.f, 0.5f}) check(s, 1.f, beta);
  check({1, 512, 128}, -0.75f, 1.f);
}

TEST(Gemm, MatchesReferenceForChunkShapes) {  // oneDNN
  for (Shape s : {Shape{3, 512, 128}, Shape{50, 256, 64}, Shape{1, 2048, 512}, Shape{64, 33, 17}})
    for (float beta : {0.f, 1.f}) check(s, 1.f, beta);
  check({50, 256, 64}, 0.5f, 0.25f);
}

TEST(Gemm, ZeroInnerDimensionScalesC) {
  std::vector<float> C = {1, 2, 3}, A(1), B(1);
  gemm(false, false, 1, 3, 0, 1.f, A.data(), 1, B.data(), 3, 0.5f, C.data(), 3);
  EXPECT_EQ(C, (std::vector<float>{0.5f, 1.f, 1.5f}));
}

}  // namespace
}  // namespace unroll

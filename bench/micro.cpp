// Google Benchmark micro-benchmarks: one forward+backward chunk of each cell,
// one sampling step, and the matrix products a chunk is made of.
//   ./build/bench/unroll_micro --benchmark_filter=Chunk
// Threads: UNROLL_THREADS (default: all cores).
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "unroll/core/gemm.h"
#include "unroll/model/model.h"

using namespace unroll;

namespace {

struct Setup {
  LanguageModel<float> m;
  std::vector<int32_t> in, tg;
  Setup(CellKind cell, int layers, int hidden, int B, int T, int V = 65)
      : m([&] {
          ModelConfig c;
          c.cell = cell;
          c.layers = layers;
          c.hidden = hidden;
          c.vocab = c.outputs = V;
          return c;
        }()) {
    Rng rng(1);
    m.init(rng);
    in.resize(size_t(B) * T);
    tg.resize(size_t(B) * T);
    for (auto& x : in) x = int32_t(rng.below(V));
    for (auto& x : tg) x = int32_t(rng.below(V));
    m.reset_state(B);
  }
};

void threads() {
  const char* t = std::getenv("UNROLL_THREADS");
  if (t) set_threads(std::atoi(t));
}

// args: cell, layers, hidden
void BM_Chunk(benchmark::State& st) {
  threads();
  const int B = 50, T = 50;
  Setup s(CellKind(st.range(0)), int(st.range(1)), int(st.range(2)), B, T);
  for (auto _ : st) {
    s.m.zero_grad();
    LossSum l = s.m.forward(s.in.data(), s.tg.data(), T, B, Mode::Train);
    s.m.backward(1.0f / float(l.count));
    benchmark::DoNotOptimize(s.m.grads.data());
  }
  st.counters["tok/s"] =
      benchmark::Counter(double(B) * T, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Forward(benchmark::State& st) {
  threads();
  const int B = 50, T = 50;
  Setup s(CellKind(st.range(0)), int(st.range(1)), int(st.range(2)), B, T);
  for (auto _ : st) {
    LossSum l = s.m.forward(s.in.data(), s.tg.data(), T, B, Mode::Train);
    benchmark::DoNotOptimize(l.sum);
  }
  st.counters["tok/s"] =
      benchmark::Counter(double(B) * T, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SampleStep(benchmark::State& st) {
  threads();
  Setup s(CellKind(st.range(0)), int(st.range(1)), int(st.range(2)), 1, 1);
  int32_t tok = 3;
  for (auto _ : st) {
    s.m.forward(&tok, nullptr, 1, 1, Mode::Eval);
    benchmark::DoNotOptimize(s.m.logits());
  }
  st.counters["tok/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}

// args: M, N, K, transB — C[M,N] = A[M,K] · op(B)
void BM_Gemm(benchmark::State& st) {
  threads();
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  const bool tb = st.range(3) != 0;
  Buffer<float> a(M * K, 0.5f), b(N * K, 0.25f), c(M * N, 0.0f);
  for (auto _ : st) {
    gemm(false, tb, M, N, K, 1.0f, a.data(), K, b.data(), tb ? K : N, 1.0f, c.data(), N);
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void cells(benchmark::internal::Benchmark* b) {
  for (int cell : {int(CellKind::RnnTanh), int(CellKind::Lstm), int(CellKind::Gru)})
    for (int h : {128, 512}) b->Args({cell, 2, h});
  b->ArgNames({"cell", "layers", "hidden"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_Chunk)->Apply(cells);
BENCHMARK(BM_Forward)->Apply(cells);
BENCHMARK(BM_SampleStep)->Apply([](benchmark::internal::Benchmark* b) {
  cells(b);
  b->Unit(benchmark::kMicrosecond);
});
// The per-step recurrent products at H = 512 (LSTM: G·H = 2048), forward and backward.
// And the batch-1 sampling products at H = 128 (core/gemm.cpp's one-row path).
BENCHMARK(BM_Gemm)
    ->Args({1, 512, 128, 1})
    ->Args({1, 512, 128, 0})
    ->Args({1, 65, 128, 1})
    ->Args({50, 2048, 512, 1})
    ->Args({50, 2048, 512, 0})
    ->Args({50, 512, 2048, 0})
    ->Args({50, 512, 2048, 1})
    ->Args({50, 512, 512, 0})
    ->Args({50, 512, 512, 1})
    ->Args({2500, 2048, 512, 1})
    ->Args({2048, 2048, 2048, 0})
    ->ArgNames({"M", "N", "K", "transB"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();

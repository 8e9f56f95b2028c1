// unroll bench — training and sampling speed of the char-rnn workload, the
// same one ../shared/bench/torch_charrnn.py runs for PyTorch: one-hot input of
// V tokens, stacked cells, linear head, softmax cross-entropy at every step,
// Adam, global-norm clipping 5, carried state; random tokens.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "unroll/core/gemm.h"
#include "unroll/infer/sampler.h"
#include "unroll/text/corpus.h"
#include "unroll/train/trainer.h"

namespace unroll::cli {

namespace {
double seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Matrix-multiply FLOPs of one forward token (the peer's model): 2·G·H·(In + H)
// per layer plus 2·H·V for the head. Training counts 3× (forward, dX, dW).
double forward_flops(const ModelConfig& c) {
  double f = 0;
  for (int l = 0; l < c.layers; ++l)
    f += 2.0 * gate_count(c.cell) * c.hidden * (c.input_size(l) + c.hidden);
  return f + 2.0 * c.hidden * c.outputs;
}

double gemm_peak_gflops() {
  const int n = 2048;
  Buffer<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n, 0.0f);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = seconds();
    gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, seconds() - t0);
  }
  return 2.0 * n * n * double(n) / best / 1e9;
}
}  // namespace

void add_bench(CLI::App& app) {
  struct Args {
    std::string cell = "lstm";
    int layers = 2, hidden = 128, batch = 50, seq = 50, vocab = 65, steps = 100, warmup = 3;
    int sample_len = 2000, threads = 1;
    bool peak = false, json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s = app.add_subcommand(
      "bench", "Measure training and sampling speed on the char-rnn workload (random tokens)");
  s->add_option("--cell", a->cell, "rnn, rnn-relu, lstm, gru")
      ->check(CLI::IsMember({"rnn", "rnn-tanh", "rnn-relu", "lstm", "gru"}))
      ->capture_default_str();
  s->add_option("--layers", a->layers, "Stacked layers")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  s->add_option("--hidden", a->hidden, "Hidden units")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  s->add_option("--batch", a->batch, "Streams (B)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  s->add_option("--seq", a->seq, "Steps per chunk (T)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  s->add_option("--vocab", a->vocab, "Vocabulary size (one-hot input)")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  s->add_option("--steps", a->steps, "Timed training steps")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  s->add_option("--warmup", a->warmup, "Untimed steps first")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  s->add_option("--sample-len", a->sample_len, "Timed sampling tokens (batch 1)")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  s->add_flag("--gemm-peak", a->peak,
              "Also measure the 2048^3 sgemm peak and report the fraction of it reached");
  s->add_flag("--json", a->json, "Print one JSON line instead of text");
  add_threads_option(*s, a->threads);
  s->callback([a]() {
    apply_threads(a->threads);
    ModelConfig c;
    c.cell = parse_cell(a->cell);
    c.layers = a->layers;
    c.hidden = a->hidden;
    c.vocab = c.outputs = a->vocab;
    LanguageModel<float> m(c);
    Rng rng(1234);
    m.init(rng);
    TrainConfig tc;  // Adam 2e-3, clip by norm 5, mean loss per token
    Optimizer opt(tc.optim, m.params.size());
    const int B = a->batch, T = a->seq, n = a->warmup + a->steps;
    std::vector<int32_t> ids(size_t(B) * (size_t(n) * T + 1));
    for (auto& x : ids) x = int32_t(rng.below(c.vocab));
    BatchStream stream(ids, B, T, "the benchmark's tokens");
    std::vector<int32_t> in(size_t(T) * B), tg(size_t(T) * B);
    m.reset_state(B);
    double t0 = 0, loss_first = 0, loss_last = 0;
    for (int k = 0; k < n; ++k) {
      if (k == a->warmup) t0 = seconds();
      stream.get(k, in.data(), tg.data());
      StepResult r = train_step(m, opt, in.data(), tg.data(), T, B, tc, tc.optim.lr, rng);
      if (k == 0) loss_first = r.loss;
      loss_last = r.loss;
    }
    const double train_s = seconds() - t0;
    const double train_tps = double(B) * T * a->steps / train_s;

    double sample_tps = 0;
    if (a->sample_len > 0) {
      SampleOptions so;
      int count = 0;
      double ts = 0;
      generate(m, {0}, 0, a->sample_len + 20, so, rng, [&](int32_t) {
        if (++count == 20) ts = seconds();  // 20 warm-up tokens
      });
      sample_tps = a->sample_len / (seconds() - ts);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double rss_mib = ru.ru_maxrss / 1024.0;
    const double fwd = forward_flops(c);
    const double train_gflops = 3 * fwd * train_tps / 1e9;
    const double peak = a->peak ? gemm_peak_gflops() : 0;
    nlohmann::json j = {{"cell", cell_name(c.cell)},
                        {"layers", c.layers},
                        {"hidden", c.hidden},
                        {"batch", B},
                        {"seq", T},
                        {"vocab", c.vocab},
                        {"steps", a->steps},
                        {"threads", a->threads},
                        {"params", m.layout().count()},
                        {"train_tok_s", train_tps},
                        {"ms_per_step", 1e3 * train_s / a->steps},
                        {"loss_first", loss_first},
                        {"loss_last", loss_last},
                        {"sample_tok_s", sample_tps},
                        {"train_gflop_per_tok_model", 3 * fwd / 1e9},
                        {"train_gflops_achieved", train_gflops},
                        {"sample_gflops_achieved", fwd * sample_tps / 1e9},
                        {"peak_rss_mib", rss_mib}};
    if (a->peak) {
      j["gemm_peak_gflops"] = peak;
      j["train_fraction_of_peak"] = train_gflops / peak;
    }
    if (a->json) {
      std::cout << j.dump() << "\n";
      return;
    }
    std::printf("%s %dx%d, batch %d x seq %d, vocab %d, %d threads\n", cell_name(c.cell).c_str(),
                c.layers, c.hidden, B, T, c.vocab, a->threads);
    std::printf("training   %10.0f tokens/s  (%.2f ms/step, %.1f GFLOP/s", train_tps,
                1e3 * train_s / a->steps, train_gflops);
    if (a->peak)
      std::printf(", %.0f%% of the %.0f GFLOP/s sgemm peak", 100 * train_gflops / peak, peak);
    std::printf(")\nsampling   %10.0f tokens/s  (batch 1)\npeak RSS   %10.1f MiB\n", sample_tps,
                rss_mib);
  });
}

}  // namespace unroll::cli

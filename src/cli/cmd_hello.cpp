// unroll hello — the classic worked example: a vanilla RNN learns "hello".
// Vocabulary h, e, l, o with one-hot inputs; it predicts the next character at
// every step, then generates "hello" from "h" by feeding each output back in.
#include <cmath>
#include <cstdio>
#include <string>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/model/model.h"
#include "unroll/train/optimizer.h"

namespace unroll::cli {

namespace {
const char kChars[] = "helo";  // the lecture's order: h=0, e=1, l=2, o=3
int index_of(char c) { return int(std::string(kChars).find(c)); }

void print_vec(const char* label, const float* v, int n) {
  std::printf("  %-9s [", label);
  for (int i = 0; i < n; ++i) std::printf("%s%6.2f", i ? " " : "", v[i]);
  std::printf(" ]\n");
}
}  // namespace

void add_hello(CLI::App& app) {
  struct Args {
    int hidden = 3, steps = 300;
    uint64_t seed = 7;
    float lr = 0.05f;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s = app.add_subcommand("hello", "The worked example: a vanilla RNN learns \"hello\"");
  s->add_option("--hidden", a->hidden, "Hidden units")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  s->add_option("--steps", a->steps, "Training steps (Adam)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  s->add_option("--lr", a->lr, "Learning rate")->check(positive())->capture_default_str();
  s->add_option("--seed", a->seed, "Random seed")->check(seed_check())->capture_default_str();
  s->callback([a]() {
    ModelConfig c;
    c.cell = CellKind::RnnTanh;
    c.layers = 1;
    c.hidden = a->hidden;
    c.vocab = c.outputs = 4;
    c.init = InitKind::Uniform;  // its figures (docs/results.md) are for this start
    c.init_scale = 0.5f;
    LanguageModel<float> m(c);
    Rng rng(a->seed);
    m.init(rng);
    const std::string text = "hello";
    std::vector<int32_t> in, tg;
    for (size_t t = 0; t + 1 < text.size(); ++t) {
      in.push_back(index_of(text[t]));
      tg.push_back(index_of(text[t + 1]));
    }
    const int T = int(in.size());
    std::printf(
        "Vocabulary h e l o (one-hot), vanilla RNN with %d hidden units:\n"
        "  h_t = tanh(W_hh h_(t-1) + W_xh x_t + b_h),  y_t = W_hy h_t + b_y\n"
        "Training on \"hell\" -> \"ello\" (%d steps of Adam, lr %g):\n",
        c.hidden, a->steps, a->lr);
    OptimConfig oc;
    oc.lr = a->lr;
    Optimizer opt(oc, m.params.size());
    // A learning rate far too large: the loss goes to NaN; say so, never print it.
    auto finite = [&](const LossSum& l, int step) {
      if (std::isfinite(l.sum)) return;
      char lr[32];
      std::snprintf(lr, sizeof lr, "%g", a->lr);
      throw Error("training diverged: the loss is not finite " +
                  (step > 0 ? "at step " + std::to_string(step) : std::string("after training")) +
                  " (--lr " + lr + " is too large; the default is 0.05)");
    };
    for (int step = 1; step <= a->steps; ++step) {
      m.reset_state(1);
      m.zero_grad();
      LossSum l = m.forward(in.data(), tg.data(), T, 1, Mode::Train);
      finite(l, step);
      m.backward(1.0f / float(l.count));
      opt.step(m.params.data(), m.grads.data(), a->lr);
      if (step == 1 || step % (a->steps / 5 > 0 ? a->steps / 5 : 1) == 0)
        std::printf("  step %4d  loss %.4f nats/char\n", step, l.sum / double(l.count));
    }

    m.reset_state(1);
    finite(m.forward(in.data(), tg.data(), T, 1, Mode::Eval), 0);
    std::printf("\nThe unrolled network on \"hell\", step by step:\n");
    Buffer<float> hs, cs;
    m.layer_states(0, hs, cs);
    const float* h = hs.data() + c.hidden;  // h_1 .. h_T (row 0 is h_0)
    const float* z = m.logits();
    for (int t = 0; t < T; ++t) {
      float x[4] = {0, 0, 0, 0};
      x[in[t]] = 1;
      float p[4], mx = *std::max_element(z + t * 4, z + t * 4 + 4), sum = 0;
      for (int k = 0; k < 4; ++k) sum += (p[k] = std::exp(z[t * 4 + k] - mx));
      for (float& v : p) v /= sum;
      int pred = int(std::max_element(p, p + 4) - p);
      std::printf("t=%d  input '%c'  target '%c'  predicted '%c'\n", t + 1, text[t], text[t + 1],
                  kChars[pred]);
      print_vec("x (h e l o)", x, 4);
      print_vec("h_t", h + t * c.hidden, c.hidden);
      print_vec("logits y", z + t * 4, 4);
      print_vec("softmax", p, 4);
    }

    std::printf("\nGenerating from \"h\", feeding each most likely character back in:\n");
    m.reset_state(1);
    int32_t tok = index_of('h');
    std::string out = "h";
    for (int i = 0; i < 4; ++i) {
      m.forward(&tok, nullptr, 1, 1, Mode::Eval);
      const float* zz = m.logits();
      tok = int32_t(std::max_element(zz, zz + 4) - zz);
      out += kChars[tok];
    }
    std::printf("%s\n", out.c_str());
  });
}

}  // namespace unroll::cli

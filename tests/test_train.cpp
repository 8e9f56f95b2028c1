// Training machinery: optimizers, clipping, schedule, checkpoints, and exact resume.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "unroll/core/error.h"
#include "unroll/infer/evaluate.h"
#include "unroll/text/corpus.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/safetensors.h"
#include "unroll/train/snapshots.h"
#include "unroll/train/trainer.h"

using namespace unroll;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("unroll_test_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Optimizer, AdamFirstStepMovesEachWeightByLr) {
  // Adam's bias-corrected first step is lr · g/|g| (up to eps) for every weight.
  OptimConfig c;
  c.lr = 0.01f;
  Optimizer o(c, 3);
  float p[3] = {1, 2, 3}, g[3] = {0.5f, -2.0f, 1e-3f};
  o.step(p, g, c.lr);
  EXPECT_NEAR(p[0], 0.99f, 1e-6);
  EXPECT_NEAR(p[1], 2.01f, 1e-6);
  EXPECT_NEAR(p[2], 2.99f, 1e-5);
}

// Decoupled weight decay shrinks every weight by lr·wd before the update,
// whatever the optimizer, and is off by default (0).
TEST(Optimizer, DecoupledWeightDecay) {
  for (OptimKind k : {OptimKind::Adam, OptimKind::Sgd}) {
    OptimConfig c;
    c.kind = k;
    c.weight_decay = 0.5f;
    Optimizer o(c, 3);
    std::vector<float> p = {1, -2, 4}, g = {0, 0, 0};
    o.step(p.data(), g.data(), 0.1f);
    EXPECT_FLOAT_EQ(p[0], 0.95f);
    EXPECT_FLOAT_EQ(p[1], -1.9f);
    EXPECT_FLOAT_EQ(p[2], 3.8f);
    EXPECT_FLOAT_EQ(optim_config_from_json(to_json(c)).weight_decay, 0.5f);
  }
  EXPECT_EQ(OptimConfig{}.weight_decay, 0.0f);
}

TEST(Optimizer, SgdMomentumAndAdagradAndRmsprop) {
  OptimConfig c;
  c.kind = OptimKind::Sgd;
  c.momentum = 0.5f;
  Optimizer s(c, 1);
  float p = 0, g = 1;
  s.step(&p, &g, 0.1f);  // v = 1, p = -0.1
  s.step(&p, &g, 0.1f);  // v = 1.5, p = -0.25
  EXPECT_NEAR(p, -0.25f, 1e-6);

  c.kind = OptimKind::Adagrad;
  Optimizer a(c, 1);
  p = 0;
  a.step(&p, &g, 0.1f);  // v = 1 → −0.1
  a.step(&p, &g, 0.1f);  // v = 2 → −0.1/√2
  EXPECT_NEAR(p, -0.1f - 0.1f / std::sqrt(2.0f), 1e-6);

  c.kind = OptimKind::RmsProp;
  c.alpha = 0.9f;
  Optimizer r(c, 1);
  p = 0;
  r.step(&p, &g, 0.1f);  // v = 0.1 → −0.1/√0.1
  EXPECT_NEAR(p, -0.1f / std::sqrt(0.1f), 1e-5);
}

TEST(Clipping, ByNormAndByValue) {
  float g[4] = {3, 4, 0, 0};
  EXPECT_NEAR(clip_by_norm(g, 4, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(global_norm(g, 4), 1.0, 1e-6);
  EXPECT_NEAR(g[0], 0.6f, 1e-6);
  float h[3] = {3, -4, 0.5f};
  clip_by_value(h, 3, 1.0);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -1.0f);
  EXPECT_EQ(h[2], 0.5f);
  float k[2] = {0.3f, 0.4f};
  clip_by_norm(k, 2, 5.0);  // below the threshold: untouched
  EXPECT_EQ(k[0], 0.3f);
}

// clip_gradient, what every task's --clip and --clip-mode run: "value" says it clipped when
// an element was beyond the bound (even with the norm below it), "norm" when the norm was.
TEST(Clipping, OneFunctionForEveryTask) {
  float g[3] = {0.9f, -0.2f, 0.1f};  // norm 0.93, one element beyond 0.5
  Clipped v = clip_gradient(g, 3, 0.5, "value");
  EXPECT_TRUE(v.clipped);
  EXPECT_NEAR(v.norm, std::sqrt(0.86), 1e-6);
  EXPECT_EQ(g[0], 0.5f);
  EXPECT_EQ(g[1], -0.2f);
  float h[3] = {0.9f, -0.2f, 0.1f};
  Clipped n = clip_gradient(h, 3, 1.0, "norm");  // norm 0.93 < 1: untouched
  EXPECT_FALSE(n.clipped);
  EXPECT_EQ(h[0], 0.9f);
  EXPECT_TRUE(clip_gradient(h, 3, 0.5, "norm").clipped);
  EXPECT_NEAR(global_norm(h, 3), 0.5, 1e-6);
  float k[2] = {100, -100};
  Clipped off = clip_gradient(k, 2, 0, "value");  // 0 = off
  EXPECT_FALSE(off.clipped);
  EXPECT_EQ(k[0], 100.0f);
}

TEST(Schedule, DecayAfterEpochs) {
  // Zaremba et al.: lr 1 for 4 epochs, then halved every epoch.
  EXPECT_EQ(scheduled_lr(1.0f, 0.5f, 4, 1), 1.0f);
  EXPECT_EQ(scheduled_lr(1.0f, 0.5f, 4, 4), 1.0f);
  EXPECT_EQ(scheduled_lr(1.0f, 0.5f, 4, 5), 0.5f);
  EXPECT_EQ(scheduled_lr(1.0f, 0.5f, 4, 7), 0.125f);
}

TEST(Schedule, WarmupCosineAndPlateau) {
  Schedule s;
  s.lr = 1.0f;
  s.warmup = 4;
  // The warm-up rises linearly to the full rate at its last step.
  EXPECT_FLOAT_EQ(schedule_lr(s, 1, 1, 0), 0.25f);
  EXPECT_FLOAT_EQ(schedule_lr(s, 4, 1, 0), 1.0f);
  EXPECT_FLOAT_EQ(schedule_lr(s, 5, 1, 0), 1.0f);  // then the step schedule, no decay
  s.kind = ScheduleKind::Cosine;
  s.total = 104;
  s.lr_min = 0.1f;
  EXPECT_FLOAT_EQ(schedule_lr(s, 4, 1, 0), 1.0f);    // the end of the warm-up is the top
  EXPECT_FLOAT_EQ(schedule_lr(s, 54, 1, 0), 0.55f);  // halfway: the mean of the two ends
  EXPECT_FLOAT_EQ(schedule_lr(s, 104, 1, 0), 0.1f);  // the last step: lr_min
  EXPECT_FLOAT_EQ(schedule_lr(s, 500, 1, 0), 0.1f);  // past it (a longer resume): stays there
  EXPECT_GT(schedule_lr(s, 30, 1, 0), schedule_lr(s, 31, 1, 0));
  s.kind = ScheduleKind::Plateau;
  s.decay = 0.5f;
  EXPECT_FLOAT_EQ(schedule_lr(s, 50, 1, 0), 1.0f);
  EXPECT_FLOAT_EQ(schedule_lr(s, 50, 1, 3), 0.125f);
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::Cosine);
  EXPECT_THROW(parse_schedule("linear"), Error);

  Plateau p;  // patience 2: a cut after two validations in a row without a new best
  for (bool improved : {true, false, true, false, false, false, false}) p.observe(improved, 2);
  EXPECT_EQ(p.cuts, 2);
  EXPECT_EQ(p.bad, 0);
}

TEST(Optimizer, AveragingIsTheMeanOfTheWeightsSinceItStarted) {
  OptimConfig c;
  c.kind = OptimKind::Sgd;
  c.lr = 0.5f;
  Optimizer o(c, 3);
  float p[3] = {1, -2, 4}, g[3] = {1, 2, -1};
  std::vector<std::array<double, 3>> seen;
  o.step(p, g, c.lr);  // before the start: not in the average
  o.start_average(p);
  seen.push_back({p[0], p[1], p[2]});
  for (int k = 0; k < 6; ++k) {
    g[0] = float(k % 3) - 1, g[1] = 0.25f * k, g[2] = -1;
    o.step(p, g, c.lr);
    o.add_to_average(p);
    seen.push_back({p[0], p[1], p[2]});
  }
  EXPECT_EQ(o.avg_steps, 7);
  for (int i = 0; i < 3; ++i) {
    double mean = 0;
    for (auto& s : seen) mean += s[i] / seen.size();
    EXPECT_NEAR(o.avg[i], mean, 1e-5) << i;
  }
}

TEST(Optimizer, NonMonotoneTrigger) {
  // Worse than the best of those more than n = 2 validations ago.
  EXPECT_FALSE(non_monotone_trigger({3.0, 2.0}, 9.0, 2));       // too few to look back on
  EXPECT_FALSE(non_monotone_trigger({3.0, 2.0, 1.5}, 2.5, 2));  // 2.5 < 3.0
  EXPECT_TRUE(non_monotone_trigger({3.0, 2.0, 1.5}, 3.1, 2));
  EXPECT_FALSE(non_monotone_trigger({3.0, 2.0, 1.5, 1.4}, 2.0, 2));  // equal to the best: not worse
  EXPECT_TRUE(non_monotone_trigger({3.0, 2.0, 1.5, 1.4}, 2.01, 2));
  EXPECT_FALSE(non_monotone_trigger({3.0, 2.0, 1.5}, 9.0, 0));  // off
}

TEST(Duration, Parses) {
  EXPECT_EQ(parse_duration("90"), 90);
  EXPECT_EQ(parse_duration("5m"), 300);
  EXPECT_EQ(parse_duration("1h30m"), 5400);
  EXPECT_THROW(parse_duration("5 minutes"), Error);
  EXPECT_THROW(parse_duration(""), Error);
  EXPECT_EQ(parse_duration("2.5h"), 9000);
  EXPECT_EQ(parse_duration("1h2m3s"), 3723);
  // Each unit once and largest first, plain decimals only: these used to add
  // up (2s3s), read as infinity (inf) or be called negative (nans).
  for (const char* bad : {"2s3s", "1m1h", "inf", "nan", "nans", "-5s", "1e3s", "+5m", "1h30", ".s",
                          "1..5s", "5ms", "m", "1e999"})
    EXPECT_THROW(parse_duration(bad), Error) << bad;
}

std::string corpus_text() {
  std::string s;
  const char* lines[] = {"To be, or not to be, that is the question:\n",
                         "Whether 'tis nobler in the mind to suffer\n",
                         "The slings and arrows of outrageous fortune,\n"};
  for (int i = 0; i < 40; ++i) s += lines[i % 3];
  return s;
}

// The corpus of `text`, written to DIR/text.txt.
TextCorpus corpus_in(const fs::path& dir, const std::string& text) {
  std::ofstream(dir / "text.txt") << text;
  return load_corpus({(dir / "text.txt").string()});
}

TEST(Checkpoint, RoundTripKeepsEverything) {
  fs::path d = temp_dir("roundtrip");
  TextCorpus corpus = corpus_in(d, corpus_text());
  ModelConfig mc;
  mc.cell = CellKind::Gru;
  mc.layers = 2;
  mc.hidden = 12;
  mc.embed = 5;
  mc.vocab = corpus.vocab.size();
  mc.outputs = mc.vocab;
  LanguageModel<float> m(mc);
  Rng rng(1);
  m.init(rng);
  m.reset_state(3);
  for (auto& x : m.state_h) x = float(rng.uniform());
  OptimConfig oc;
  Optimizer opt(oc, m.params.size());
  for (auto& x : opt.m) x = float(rng.uniform());
  for (auto& x : opt.v) x = float(rng.uniform());
  opt.t = 17;
  nlohmann::json progress = {{"step", 5}};
  save_checkpoint((d / "ck.safetensors").string(), m, corpus.vocab, {{"batch", 3}}, progress,
                  corpus.describe(), &opt);
  Checkpoint ck = load_checkpoint((d / "ck.safetensors").string());
  EXPECT_EQ(ck.model_config.hidden, 12);
  EXPECT_EQ(ck.model_config.embed, 5);
  EXPECT_EQ(ck.model_config.cell, CellKind::Gru);
  EXPECT_EQ(ck.vocab.to_json(), corpus.vocab.to_json());
  ASSERT_EQ(ck.model->params.size(), m.params.size());
  EXPECT_TRUE(std::equal(m.params.begin(), m.params.end(), ck.model->params.begin()));
  EXPECT_TRUE(
      std::equal(m.state_h.begin(), m.state_h.end(), language_model(*ck.model).state_h.begin()));
  EXPECT_TRUE(std::equal(opt.m.begin(), opt.m.end(), ck.opt_m.begin()));
  EXPECT_TRUE(std::equal(opt.v.begin(), opt.v.end(), ck.opt_v.begin()));
  EXPECT_EQ(ck.opt_t, 17);
  EXPECT_EQ(ck.progress["step"], 5);
  // No temporary file is left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(d)) files += e.is_regular_file();
  EXPECT_EQ(files, 2);
  fs::remove_all(d);
}

TEST(Checkpoint, RejectsAFileThatIsNotACheckpoint) {
  fs::path d = temp_dir("reject");
  std::ofstream(d / "junk.safetensors") << "this is not a checkpoint at all, just text";
  EXPECT_THROW(load_checkpoint((d / "junk.safetensors").string()), Error);
  EXPECT_THROW(load_checkpoint((d / "absent.safetensors").string()), Error);
  fs::remove_all(d);
}

// Metadata that a file supplies is checked before it is used: numbers that
// do not fit their field, and a model config whose tensors the file does not
// hold (here one that would need terabytes), are errors, not allocations,
// wrapped integers or undefined behaviour. The checksum is recomputed, so only
// these checks stand between the file and the model.
TEST(Checkpoint, MetadataIsCheckedBeforeItIsUsed) {
  fs::path d = temp_dir("metadata");
  TextCorpus corpus = corpus_in(d, corpus_text());
  ModelConfig mc;
  mc.hidden = 8;
  mc.vocab = mc.outputs = corpus.vocab.size();
  LanguageModel<float> m(mc);
  const std::string good = (d / "good.safetensors").string();
  save_checkpoint(good, m, corpus.vocab, {{"batch", 3}}, {{"step", 1}}, corpus.describe(), nullptr);
  ASSERT_NO_THROW(load_checkpoint(good));
  auto with = [&](const std::string& key, const std::function<void(nlohmann::json&)>& edit) {
    SafeTensors st = load_safetensors(good);
    nlohmann::json j = nlohmann::json::parse(st.metadata.at(key));
    edit(j);
    st.metadata[key] = j.dump();
    const std::string bad = (d / "bad.safetensors").string();
    save_safetensors(bad, st);
    return bad;
  };
  auto expect_error = [](const std::string& path, const std::string& needle) {
    try {
      load_checkpoint(path);
      ADD_FAILURE() << "loaded; expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }  // anything else (std::bad_alloc, nlohmann's exceptions) fails the test
  };
  expect_error(with("model", [](auto& j) { j["layers"] = 64, j["hidden"] = 65536; }),
               "tensor 'rnn.weight_ih_l0' has shape [32, " + std::to_string(mc.vocab) +
                   "] but the model config needs");
  expect_error(with("model", [](auto& j) { j["layers"] = 1e100; }),
               "'layers' is not a whole number in range");
  expect_error(with("model", [](auto& j) { j["hidden"] = (uint64_t(1) << 32) + 8; }),
               "'hidden' is out of range");
  expect_error(with("model", [](auto& j) { j["hidden"] = "8"; }), "'hidden' is not a number");
  expect_error(with("model", [](auto& j) { j["dropout"] = 1e300; }), "'dropout' is out of range");
  expect_error(with("data", [](auto& j) { j["format"]["min_count"] = -1.5; }),
               "'min_count' is not a whole number");
  expect_error(with("data", [](auto& j) { j["format"]["level"] = nlohmann::json::array(); }),
               "text format");
  {
    SafeTensors st = load_safetensors(good);
    st.metadata["optimizer.t"] = "12x";
    save_safetensors((d / "t.safetensors").string(), st);
    expect_error((d / "t.safetensors").string(), "optimizer.t is not a step count");
  }
  fs::remove_all(d);
}

// A real (small) checkpoint cut at every length, and with every bit of every
// byte flipped in turn: load_checkpoint always throws an Error (the checksum
// covers the header and the data), never crashes and never loads.
TEST(Checkpoint, EveryTruncationAndEveryBitFlipIsAnError) {
  fs::path d = temp_dir("flips");
  TextCorpus corpus = corpus_in(d, "abcab\n");
  ModelConfig mc;
  mc.cell = CellKind::Gru;
  mc.hidden = 2;
  mc.vocab = mc.outputs = corpus.vocab.size();
  LanguageModel<float> m(mc);
  Rng rng(1);
  m.init(rng);
  const std::string good = (d / "good.safetensors").string(),
                    bad = (d / "bad.safetensors").string();
  save_checkpoint(good, m, corpus.vocab, {{"batch", 3}}, {{"step", 1}}, corpus.describe(), nullptr);
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NO_THROW(load_checkpoint(good));
  auto write = [&](const std::string& b) {
    std::ofstream(bad, std::ios::binary | std::ios::trunc) << b;
  };
  size_t errors = 0, tried = 0;
  for (size_t k = 0; k < bytes.size(); ++k) {
    write(bytes.substr(0, k));
    ++tried;
    try {
      load_checkpoint(bad);
      ADD_FAILURE() << "loaded when cut to " << k << " bytes";
    } catch (const Error&) {
      ++errors;
    }
  }
  for (size_t pos = 0; pos < bytes.size(); ++pos)
    for (int bit = 0; bit < 8; ++bit) {
      std::string b = bytes;
      b[pos] = char(b[pos] ^ (1 << bit));
      write(b);
      ++tried;
      try {
        load_checkpoint(bad);
        ADD_FAILURE() << "loaded with bit " << bit << " of byte " << pos << " flipped";
      } catch (const Error&) {
        ++errors;
      }
    }
  EXPECT_EQ(errors, tried);
  EXPECT_EQ(tried, bytes.size() * 9);
  std::printf("[ info     ] %zu truncations and bit flips of a %zu-byte checkpoint: %zu errors\n",
              tried, bytes.size(), errors);
  fs::remove_all(d);
}

// Training 20 steps straight equals 10 steps, a checkpoint, and 10 more after
// a resume: the same losses and the same final parameters, bit for bit.
TEST(Resume, ContinuesBitForBit) {
  for (CellKind cell : {CellKind::Lstm, CellKind::Gru}) {
    fs::path d = temp_dir("resume");
    fs::path f = d / "text.txt";
    std::ofstream(f) << corpus_text();
    ModelConfig mc;
    mc.cell = cell;
    mc.layers = 2;
    mc.hidden = 16;
    mc.dropout = 0.1f;  // the RNG state must carry over too
    TrainConfig tc;
    tc.batch = 4;
    tc.seq = 8;
    tc.eval_every = 5;
    tc.sample_every = 0;
    tc.print_every = 1000;
    tc.max_steps = 20;
    tc.train_frac = 0.8;
    tc.val_frac = 0.1;
    std::ostringstream log;
    Trainer a(mc, tc, load_corpus({f.string()}), (d / "a").string());
    auto ea = a.train(log);
    ASSERT_EQ(ea.size(), 20u);

    tc.max_steps = 10;
    Trainer b(mc, tc, load_corpus({f.string()}), (d / "b").string());
    b.train(log);
    auto r = Trainer::resume((d / "b").string(), [](TrainConfig& c) { c.max_steps = 20; });
    EXPECT_EQ(r->step(), 10);
    auto eb = r->train(log);
    ASSERT_EQ(eb.size(), 10u);
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(eb[i].step, ea[10 + i].step);
      EXPECT_EQ(eb[i].train_loss, ea[10 + i].train_loss) << "step " << eb[i].step;
    }
    const auto& pa = a.model().params;
    const auto& pb = r->model().params;
    ASSERT_EQ(pa.size(), pb.size());
    EXPECT_TRUE(std::equal(pa.begin(), pa.end(), pb.begin())) << cell_name(cell);
    EXPECT_EQ(a.best_val(), r->best_val());
    fs::remove_all(d);
  }
}

// Validation that never improves (SGD steps of 1e-30 leave every weight as it
// is) cuts the rate at every evaluation after the first with patience 1; the
// count carries over a resume.
TEST(Resume, PlateauScheduleCutsWhenValidationStallsAndCarriesOver) {
  fs::path d = temp_dir("plateau");
  fs::path f = d / "text.txt";
  std::ofstream(f) << corpus_text();
  ModelConfig mc;
  mc.hidden = 8;
  TrainConfig tc;
  tc.batch = 4;
  tc.seq = 8;
  tc.eval_every = 5;
  tc.sample_every = 0;
  tc.print_every = 1;
  tc.max_steps = 20;
  tc.optim.kind = OptimKind::Sgd;
  tc.optim.lr = 1e-30f;
  tc.lr_schedule = "plateau";
  tc.lr_decay = 0.5f;
  tc.patience = 1;
  auto rates = [](const fs::path& run) {  // the rate of each step, from metrics.jsonl
    std::map<int64_t, double> r;
    std::ifstream in(run / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["kind"] == "step") r[j["step"].get<int64_t>()] = j["lr"].get<double>();
    }
    return r;
  };
  std::ostringstream log;
  Trainer a(mc, tc, load_corpus({f.string()}), (d / "a").string());
  a.train(log);
  auto ra = rates(d / "a");
  ASSERT_EQ(ra.size(), 20u);
  EXPECT_FLOAT_EQ(ra[5], 1e-30f);
  EXPECT_FLOAT_EQ(ra[10], 1e-30f);  // step 10's validation is the first without a new best
  EXPECT_FLOAT_EQ(ra[11], 0.5e-30f);
  EXPECT_FLOAT_EQ(ra[16], 0.25e-30f);

  tc.max_steps = 10;
  Trainer b(mc, tc, load_corpus({f.string()}), (d / "b").string());
  b.train(log);
  auto r = Trainer::resume((d / "b").string(), [](TrainConfig& c) { c.max_steps = 20; });
  r->train(log);
  EXPECT_EQ(rates(d / "b"), ra);
  fs::remove_all(d);
}

// NT-ASGD: a large SGD rate makes validation stall, averaging starts (logged
// and recorded), latest.safetensors keeps the average beside the trained
// weights, and a resume after the start continues the average exactly.
TEST(Resume, AveragedSgdStartsWhenValidationStallsAndCarriesOver) {
  fs::path d = temp_dir("asgd");
  fs::path f = d / "text.txt";
  std::ofstream(f) << corpus_text();
  ModelConfig mc;
  mc.hidden = 12;
  TrainConfig tc;
  tc.batch = 4;
  tc.seq = 8;
  tc.eval_every = 2;
  tc.sample_every = 0;
  tc.print_every = 1000;
  tc.max_steps = 40;
  tc.optim.kind = OptimKind::Sgd;
  tc.optim.lr = 2.0f;
  tc.asgd = 1;
  std::ostringstream log;
  Trainer a(mc, tc, load_corpus({f.string()}), (d / "a").string());
  a.train(log);
  int64_t start = -1;
  std::ifstream in(d / "a" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["kind"] == "asgd") start = j["step"].get<int64_t>();
  }
  ASSERT_GT(start, 0) << "averaging never started:\n" << log.str();
  ASSERT_LT(start, 34) << "it should start before the resume below, which must carry the average";
  EXPECT_NE(log.str().find("NT-ASGD"), std::string::npos);
  Checkpoint latest = load_checkpoint((d / "a" / "latest.safetensors").string());
  ASSERT_EQ(latest.opt_avg.size(), latest.model->params.size());
  EXPECT_EQ(latest.opt_avg_steps, 40 - start + 1);
  EXPECT_FALSE(
      std::equal(latest.opt_avg.begin(), latest.opt_avg.end(), latest.model->params.begin()));
  // The last validation (step 40) scored the average, not the trained weights.
  double last_val = 0;
  {
    std::ifstream m(d / "a" / "metrics.jsonl");
    for (std::string line; std::getline(m, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["kind"] == "eval") last_val = j["val_loss"].get<double>();
    }
  }
  const std::vector<int32_t> val = split_contiguous(load_corpus({f.string()}).ids, 0.9, 0.05).val;
  LanguageModel<float>& lm = language_model(*latest.model);
  const Buffer<float> trained = lm.params;
  lm.params = latest.opt_avg;
  EXPECT_EQ(evaluate(lm, val, tc.batch, tc.seq).loss, last_val);
  lm.params = trained;
  EXPECT_NE(evaluate(lm, val, tc.batch, tc.seq).loss, last_val);
  // best.safetensors, saved while averaging, holds the average as its weights and its average.
  Checkpoint best = load_checkpoint((d / "a" / "best.safetensors").string());
  if (best.progress["step"].get<int64_t>() > start) {
    ASSERT_EQ(best.opt_avg.size(), best.model->params.size());
    EXPECT_TRUE(std::equal(best.opt_avg.begin(), best.opt_avg.end(), best.model->params.begin()));
  }

  tc.max_steps = 34;
  Trainer b(mc, tc, load_corpus({f.string()}), (d / "b").string());
  b.train(log);
  auto r = Trainer::resume((d / "b").string(), [](TrainConfig& c) { c.max_steps = 40; });
  r->train(log);
  Checkpoint resumed = load_checkpoint((d / "b" / "latest.safetensors").string());
  EXPECT_TRUE(std::equal(resumed.opt_avg.begin(), resumed.opt_avg.end(), latest.opt_avg.begin()));
  EXPECT_TRUE(std::equal(resumed.model->params.begin(), resumed.model->params.end(),
                         latest.model->params.begin()));
  EXPECT_EQ(a.best_val(), r->best_val());
  fs::remove_all(d);
}

TEST(Trainer, TooShortTextSaysWhatFitsAndWritesNothing) {
  fs::path d = temp_dir("short");
  fs::path f = d / "text.txt";
  std::ofstream(f) << "just a short line of text\n";
  ModelConfig mc;
  TrainConfig tc;  // batch 50 × seq 50 cannot fit
  try {
    Trainer t(mc, tc, load_corpus({f.string()}), (d / "run").string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(d / "run"));
  fs::remove_all(d);
}

TEST(Trainer, LossFallsOnARepetitiveText) {
  fs::path d = temp_dir("falls");
  fs::path f = d / "text.txt";
  std::ofstream(f) << corpus_text();
  ModelConfig mc;
  mc.hidden = 32;
  mc.layers = 1;
  TrainConfig tc;
  tc.batch = 4;
  tc.seq = 16;
  tc.max_steps = 150;
  tc.eval_every = 0;
  tc.sample_every = 0;
  tc.optim.lr = 1e-2f;
  std::ostringstream log;
  Trainer t(mc, tc, load_corpus({f.string()}), (d / "run").string());
  auto ev = t.train(log);
  EXPECT_LT(ev.back().train_loss, 0.5 * ev.front().train_loss);
  EXPECT_TRUE(fs::exists(d / "run" / "latest.safetensors"));
  EXPECT_TRUE(fs::exists(d / "run" / "best.safetensors"));
  fs::remove_all(d);
}

// Per evaluation the trainer logs gradient statistics and appends them to
// metrics.jsonl: with an evaluation after every step, the per-group norms
// make up the global norm exactly, and the clip fraction is 0 or 1.
TEST(Trainer, GradientStatisticsPerEvaluation) {
  for (float clip : {1e-4f, 1e9f}) {
    fs::path d = temp_dir("gradstats");
    fs::path f = d / "text.txt";
    std::ofstream(f) << corpus_text();
    ModelConfig mc;
    mc.hidden = 8;
    mc.layers = 2;
    TrainConfig tc;
    tc.batch = 2;
    tc.seq = 8;
    tc.max_steps = 6;
    tc.eval_every = 1;
    tc.sample_every = 0;
    tc.clip = clip;
    std::ostringstream log;
    Trainer t(mc, tc, load_corpus({f.string()}), (d / "run").string());
    auto ev = t.train(log);
    EXPECT_NE(log.str().find("gradients over 1 steps"), std::string::npos) << log.str();
    EXPECT_NE(log.str().find("layer 2"), std::string::npos) << log.str();
    std::ifstream in(d / "run" / "metrics.jsonl");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (j["kind"] != "eval") continue;
      ASSERT_LT(n, int(ev.size()));
      EXPECT_EQ(j["step"], ev[n].step);
      EXPECT_DOUBLE_EQ(j["grad_norm_mean"].get<double>(), ev[n].grad_norm);
      double sq = 0;
      for (auto& [name, v] : j["group_grad_norms"].items()) sq += v.get<double>() * v.get<double>();
      EXPECT_EQ(j["group_grad_norms"].size(), 3u);  // layer 1, layer 2, head
      EXPECT_NEAR(std::sqrt(sq), ev[n].grad_norm, 1e-4 * ev[n].grad_norm);
      EXPECT_EQ(j["clip_fraction"].get<double>(), clip < 1 ? 1.0 : 0.0);
      EXPECT_TRUE(j.contains("val_loss"));
      ++n;
    }
    EXPECT_EQ(n, 6);
    fs::remove_all(d);
  }
}

}  // namespace

// --snapshot-every's schedules: step 0 always; every N; N, N*F, N*F^2 rounded
// (dense early); or the steps listed.
TEST(Snapshots, ScheduleForms) {
  auto kept = [](const std::string& spec, int64_t upto) {
    const SnapshotSchedule s = parse_snapshot_schedule(spec);
    std::vector<int64_t> v;
    for (int64_t t = 0; t <= upto; ++t)
      if (s.due(t)) v.push_back(t);
    return v;
  };
  EXPECT_TRUE(kept("", 100).empty());
  EXPECT_EQ(kept("25", 100), (std::vector<int64_t>{0, 25, 50, 75, 100}));
  EXPECT_EQ(kept("100x2", 2000), (std::vector<int64_t>{0, 100, 200, 400, 800, 1600}));
  EXPECT_EQ(kept("1x1.5", 12), (std::vector<int64_t>{0, 1, 2, 3, 5, 8, 12}));
  EXPECT_EQ(kept("300,10,50,10", 1000), (std::vector<int64_t>{0, 10, 50, 300}));
  for (const char* bad : {"0", "-5", "5x", "5x1", "5x0.5", "x2", "1,,2", "a", "5xx2"})
    EXPECT_THROW(parse_snapshot_schedule(bad), Error) << bad;
  EXPECT_EQ(
      snapshot_path("runs/a", 1234),
      (std::filesystem::path("runs/a") / "snapshots" / "step-000001234.safetensors").string());
}

TEST(Snapshots, BudgetThinsTheOldestAndKeepsTheEnds) {
  EXPECT_EQ(parse_snapshot_budget(""), 0);
  EXPECT_EQ(parse_snapshot_budget("1000"), 1000);
  EXPECT_EQ(parse_snapshot_budget("300k"), 300 * 1024);
  EXPECT_EQ(parse_snapshot_budget("1.5M"), 3 * 512 * 1024);
  EXPECT_EQ(parse_snapshot_budget("2GiB"), int64_t(2) << 30);
  EXPECT_EQ(parse_snapshot_budget("3m"), 3 << 20);
  for (const char* bad : {"M", "5X", "-1M", "0", "1.2.3M", "5 M", "5MB", "nan"})
    EXPECT_THROW(parse_snapshot_budget(bad), Error) << bad;

  auto files = [](std::vector<int64_t> steps) {
    std::vector<SnapshotFile> f;
    for (int64_t s : steps) f.push_back({s, "step-" + std::to_string(s), 10});
    return f;
  };
  auto removed = [](const std::vector<SnapshotFile>& f, int64_t budget) {
    std::vector<int64_t> steps;
    for (size_t i : snapshots_to_thin(f, budget)) steps.push_back(f[i].step);
    return steps;
  };
  // Evenly spaced: every other one goes, the oldest first.
  const auto even = files({0, 100, 200, 300, 400, 500, 600});
  EXPECT_TRUE(removed(even, 70).empty());
  EXPECT_EQ(removed(even, 60), (std::vector<int64_t>{100}));
  EXPECT_EQ(removed(even, 40), (std::vector<int64_t>{100, 300, 500}));
  // Dense early (100x2): the early ones go first; the first and the last always stay.
  const auto geometric = files({0, 100, 200, 400, 800, 1600});
  EXPECT_EQ(removed(geometric, 40), (std::vector<int64_t>{100, 200}));
  EXPECT_EQ(removed(geometric, 1), (std::vector<int64_t>{100, 200, 400, 800}));
  EXPECT_TRUE(removed(files({0, 5}), 1).empty());
  EXPECT_TRUE(removed(even, 0).empty()) << "0: no budget";

  // list_snapshots reads only the names snapshot_path writes, in step order.
  const fs::path dir =
      fs::temp_directory_path() / ("unroll_snapshots_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "snapshots");
  for (int64_t s : {300, 0, 20})
    std::ofstream(snapshot_path(dir.string(), s)) << std::string(size_t(s) + 1, 'x');
  for (const char* other :
       {"step-12.safetensors", "step-000000020.safetensors.tmp.99", "notes.txt"})
    std::ofstream(dir / "snapshots" / other) << "x";
  const std::vector<SnapshotFile> listed = list_snapshots(dir.string());
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[0].step, 0);
  EXPECT_EQ(listed[1].step, 20);
  EXPECT_EQ(listed[2].step, 300);
  EXPECT_EQ(listed[2].bytes, 301);
  EXPECT_TRUE(list_snapshots((dir / "none").string()).empty());
  fs::remove_all(dir);
}

#include "unroll/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/core/gemm.h"
#include "unroll/core/shell.h"
#include "unroll/infer/evaluate.h"
#include "unroll/infer/sampler.h"
#include "unroll/text/corpus.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"

namespace fs = std::filesystem;

namespace unroll {

StepResult train_step(LanguageModel<float>& m, Optimizer& opt, const int32_t* in, const int32_t* tg,
                      int T, int B, const TrainConfig& cfg, float lr, Rng& rng, Comm& comm) {
  m.zero_grad();
  const LossSum l = m.forward(in, tg, T, B, Mode::Train, &rng);
  BatchLoss b{l.sum, l.count, B, int64_t(T) * B};
  return finish_step(m, opt, b, cfg, lr, comm);
}

// The language model as a task of the run loop: B streams through the
// training text, chunk `index` of the epoch, the hidden state carried.
class LmTask : public Task {
 public:
  const TrainConfig* cfg = nullptr;  // the run loop's (lr_total may change as it runs)
  TextCorpus corpus;
  std::vector<int32_t> train_ids, val_ids, test_ids;
  std::unique_ptr<BatchStream> stream;  // chunks of the training part, built once
  std::unique_ptr<LanguageModel<float>> model_;
  int Bl = 0;  // this rank's streams

  void prepare();
  LanguageModel<float>& model() override { return *model_; }
  int64_t batches_per_epoch() const override { return stream->chunks(); }

  std::string describe(int ranks) const override {
    const ModelConfig& c = model_->config();
    std::ostringstream s;
    s << "training " << cell_name(c.cell) << " " << c.layers << "x" << c.hidden << " ("
      << model_->layout().count() << " parameters) on " << train_ids.size() << " "
      << corpus.format.unit() << ", vocabulary " << corpus.vocab.size() << ", batch " << cfg->batch
      << " x seq " << cfg->seq << ", " << stream->chunks() << " chunks per epoch"
      << (ranks > 1 ? ", " + std::to_string(ranks) + " ranks of " + std::to_string(Bl) + " streams"
                    : std::string())
      << "\n";
    return s.str();
  }

  // A new run or a resume: this rank's share of the carried state.
  void start_run(int, int rank, int ranks) override {
    const int B = cfg->batch;
    require(B % ranks == 0, "--batch " + std::to_string(B) + " does not split evenly over " +
                                std::to_string(ranks) + " ranks: give a multiple of " +
                                std::to_string(ranks));
    Bl = B / ranks;
    LanguageModel<float>& m = *model_;
    in.resize(size_t(cfg->seq) * B), tg.resize(in.size());
    if (m.state_batch() == B && ranks > 1) {  // a checkpoint's state of all B streams: take ours
      const int L = m.config().layers, H = m.config().hidden;
      Buffer<float> h = m.state_h, c = m.state_c;
      m.reset_state(Bl);
      for (int l = 0; l < L; ++l) {
        const size_t from = (size_t(l) * B + size_t(rank) * Bl) * H, to = size_t(l) * Bl * H;
        std::copy_n(h.begin() + from, size_t(Bl) * H, m.state_h.begin() + to);
        if (!c.empty()) std::copy_n(c.begin() + from, size_t(Bl) * H, m.state_c.begin() + to);
      }
    }
    if (m.state_batch() != Bl) m.reset_state(Bl);
  }
  // A new epoch: the streams start over with a fresh state.
  void start_epoch(int, int, int) override { model_->reset_state(Bl); }

  BatchLoss forward(int64_t index, int rank, int ranks, Rng& rng) override {
    const int B = cfg->batch, T = cfg->seq;
    stream->get(int(index), in.data(), tg.data());
    const int32_t *x = in.data(), *y = tg.data();
    if (ranks > 1) {  // columns [rank·Bl, (rank+1)·Bl) of the time-major [T][B] chunk
      in_l.resize(size_t(T) * Bl), tg_l.resize(in_l.size());
      for (int t = 0; t < T; ++t) {
        std::copy_n(in.begin() + size_t(t) * B + size_t(rank) * Bl, Bl,
                    in_l.begin() + size_t(t) * Bl);
        std::copy_n(tg.begin() + size_t(t) * B + size_t(rank) * Bl, Bl,
                    tg_l.begin() + size_t(t) * Bl);
      }
      x = in_l.data(), y = tg_l.data();
    }
    const LossSum l = model_->forward(x, y, T, Bl, Mode::Train, &rng);
    return {l.sum, l.count, Bl, int64_t(T) * Bl};
  }

  bool has_validation() const override { return !val_ids.empty(); }

  // Characters: bits per character; words: perplexity, as papers report them.
  Validation validate() override {
    Validation v;
    v.loss = evaluate(*model_, val_ids, cfg->batch, cfg->seq).loss;
    const bool chars = corpus.format.level == "char";
    char b[160];
    if (chars)
      std::snprintf(b, sizeof b, "val loss %.4f nats, %.4f bits/char", v.loss,
                    v.loss / std::log(2.0));
    else
      std::snprintf(b, sizeof b, "val loss %.4f nats, perplexity %.2f", v.loss, std::exp(v.loss));
    v.text = b;
    v.record = {{"val_bits_per_token", v.loss / std::log(2.0)},
                {"val_perplexity", std::exp(v.loss)}};
    if (!test_ids.empty()) {
      StateGuard<float> guard(*model_);
      const double test = evaluate(*model_, test_ids, cfg->batch, cfg->seq).loss;
      if (chars)
        std::snprintf(b, sizeof b, ", test %.4f bits/char", test / std::log(2.0));
      else
        std::snprintf(b, sizeof b, ", test perplexity %.2f", std::exp(test));
      v.text += b;
      v.record["test_loss"] = test;
    }
    return v;
  }

  void save(const std::string& path, const nlohmann::json& progress,
            const Optimizer* opt) override {
    save_checkpoint(path, *model_, corpus.vocab, to_json(*cfg), progress, corpus.describe(), opt);
  }

  nlohmann::json config_json() const override {
    return {{"model", to_json(model_->config())},
            {"train", to_json(*cfg)},
            {"data", corpus.describe()},
            {"vocab_size", corpus.vocab.size()}};
  }

  std::string resume_command(const std::string& dir) const override {
    return unroll::resume_command("lm", dir);
  }

  // --on-nan skip: the carried state before each step, put back if it is skipped.
  void keep_state() override {
    state_before.first.assign(model_->state_h.begin(), model_->state_h.end());
    state_before.second.assign(model_->state_c.begin(), model_->state_c.end());
  }
  void restore_state() override {
    LanguageModel<float>& m = *model_;
    require(state_before.first.size() == m.state_h.size() &&
                state_before.second.size() == m.state_c.size(),
            "internal: the carried state changed size during a step");
    std::copy(state_before.first.begin(), state_before.first.end(), m.state_h.begin());
    std::copy(state_before.second.begin(), state_before.second.end(), m.state_c.begin());
  }
  void poison() override {
    std::fill(model_->state_h.begin(), model_->state_h.end(),
              std::numeric_limits<float>::quiet_NaN());
  }

  // Saving with several ranks: the checkpoint holds the state of all B
  // streams, gathered on rank 0 (the rest of the model and the optimizer are
  // the same on every rank).
  bool gather_state(Comm& comm) override {
    const int ranks = comm.size(), B = cfg->batch;
    if (ranks == 1) return true;
    const bool root = comm.root();
    LanguageModel<float>& m = *model_;
    const int L = m.config().layers, H = m.config().hidden;
    const bool lstm = m.config().cell == CellKind::Lstm;
    Buffer<float> h(root ? size_t(L) * B * H : 0), c(root && lstm ? size_t(L) * B * H : 0);
    for (int l = 0; l < L; ++l) {
      comm.gather(m.state_h.data() + size_t(l) * Bl * H, size_t(Bl) * H,
                  root ? h.data() + size_t(l) * B * H : nullptr);
      if (lstm)
        comm.gather(m.state_c.data() + size_t(l) * Bl * H, size_t(Bl) * H,
                    root ? c.data() + size_t(l) * B * H : nullptr);
    }
    if (!root) return false;
    local_state = {m.state_h, m.state_c};
    m.reset_state(B);
    std::copy(h.begin(), h.end(), m.state_h.begin());
    std::copy(c.begin(), c.end(), m.state_c.begin());
    return true;
  }
  void local_state_back(Comm& comm) override {
    if (comm.size() == 1) return;
    LanguageModel<float>& m = *model_;
    m.reset_state(Bl);
    std::copy(local_state.first.begin(), local_state.first.end(), m.state_h.begin());
    std::copy(local_state.second.begin(), local_state.second.end(), m.state_c.begin());
  }

  Note after_step(int64_t step) override {
    if (cfg->sample_every == 0 || step % cfg->sample_every != 0) return {};
    StateGuard<float> guard(*model_);
    Rng srng(cfg->seed ^ (0x5DEECE66Dull * uint64_t(step + 1)));
    SampleOptions so;
    so.temperature = cfg->sample_temperature;
    std::vector<std::string> tokens;
    generate(*model_, {}, corpus.vocab.start_id(), cfg->sample_len, so, srng,
             [&](int32_t id) { tokens.push_back(corpus.vocab.token(id)); });
    const std::string text = detokenize(tokens, corpus.format);
    // The log may be a terminal: control characters the model learned (ESC
    // from a log file, say) are shown, not obeyed. metrics.jsonl has the text as is.
    return {"---- sample at step " + std::to_string(step) + " ----\n" + escape_controls(text) +
                "\n----\n",
            {{"kind", "sample"}, {"step", step}, {"text", text}}};
  }

 private:
  std::vector<int32_t> in, tg, in_l, tg_l;  // a chunk [T][B], and this rank's columns
  std::pair<Buffer<float>, Buffer<float>> state_before, local_state;
};

void LmTask::prepare() {
  const TrainConfig& c = *cfg;
  if (c.val_files.empty()) {
    Split sp = split_contiguous(corpus.ids, c.train_frac, c.val_frac);
    train_ids = std::move(sp.train);
    val_ids = std::move(sp.val);
  } else {  // validation from its own files: all of the training files train
    train_ids = corpus.ids;
    try {
      val_ids = load_corpus(c.val_files, &corpus.vocab, corpus.format).ids;
    } catch (const Error& e) {
      const std::string m = e.what();
      throw Error("--val: " + m +
                  (m.find("vocabulary") != std::string::npos
                       ? " (the vocabulary is the training text's)"
                       : ""));
    }
  }
  if (!c.test_files.empty()) {
    try {
      test_ids = load_corpus(c.test_files, &corpus.vocab, corpus.format).ids;
    } catch (const Error& e) {
      const std::string m = e.what();
      throw Error("--test: " + m +
                  (m.find("vocabulary") != std::string::npos
                       ? " (the vocabulary is the training text's)"
                       : ""));
    }
    require(test_ids.size() >= 2, "the test text needs at least two tokens");
  }
  stream =
      std::make_unique<BatchStream>(train_ids, c.batch, c.seq, "the training part of the text");
  if (!val_ids.empty())
    require(val_ids.size() >= 2,
            c.val_files.empty()
                ? "the validation part of the text has fewer than 2 " +
                      std::string(corpus.format.unit()) +
                      ": raise --split's validation fraction or use --split 1,0 for no validation"
                : "--val: the validation text has fewer than 2 " +
                      std::string(corpus.format.unit()) + ": give a longer file");
}

Trainer::Trainer() = default;
Trainer::~Trainer() = default;

Trainer::Trainer(const ModelConfig& model, const TrainConfig& train, TextCorpus corpus,
                 std::string out_dir)
    : task_(std::make_unique<LmTask>()) {
  train.validate();
  task_->corpus = std::move(corpus);
  ModelConfig mc = model;
  mc.vocab = task_->corpus.vocab.size();
  if (mc.head == HeadKind::Softmax) mc.outputs = mc.vocab;
  task_->model_ = std::make_unique<LanguageModel<float>>(mc);
  loop_ = std::make_unique<RunLoop>(*task_, train, std::move(out_dir));
  task_->model_->init(loop_->rng());  // the run's generator goes on to dropout
  task_->cfg = &loop_->config();
  task_->prepare();
}

LanguageModel<float>& Trainer::model() { return task_->model(); }

std::string Trainer::resume_command() const { return task_->resume_command(loop_->dir()); }

std::vector<TrainEvent> Trainer::train(std::ostream& log) {
  loop_->command_line = command_line;
  loop_->live_progress = live_progress;
  loop_->poison_steps = poison_steps;
  return loop_->run(log);
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& dir,
                                         const std::function<void(TrainConfig&)>& adjust) {
  const std::string path = (fs::path(dir) / "latest.safetensors").string();
  Checkpoint ck = load_run_checkpoint(dir, "lm");
  TrainConfig cfg = train_config_from_json(ck.train);
  if (adjust) adjust(cfg);
  cfg.validate();
  std::unique_ptr<Trainer> t(new Trainer());
  t->task_ = std::make_unique<LmTask>();
  std::vector<std::string> files = ck.data.at("files");
  t->task_->corpus = load_corpus(files, &ck.vocab, ck.format);
  const nlohmann::json now = t->task_->corpus.describe();
  if (now["hash"] != ck.data["hash"]) {
    std::string which = "the training files";
    if (ck.data.contains("file_hashes") && ck.data["file_hashes"].size() == files.size())
      for (size_t i = 0; i < files.size(); ++i)
        if (now["file_hashes"][i] != ck.data["file_hashes"][i]) {
          which = "'" + files[i] + "'";
          break;
        }
    throw Error("cannot resume: " + which + " changed since '" + path +
                "' was written (the content hash differs)");
  }
  t->task_->model_ = take_language_model(std::move(ck.model));
  t->loop_ = std::make_unique<RunLoop>(*t->task_, cfg, dir);
  t->loop_->restore(ck, path);
  t->task_->cfg = &t->loop_->config();
  t->task_->prepare();
  return t;
}

}  // namespace unroll

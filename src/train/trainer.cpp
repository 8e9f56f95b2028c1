#include "unroll/train/trainer.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>

#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/core/gemm.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/json.h"
#include "unroll/core/shell.h"
#include "unroll/infer/evaluate.h"
#include "unroll/infer/sampler.h"
#include "unroll/text/corpus.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"

namespace fs = std::filesystem;

namespace unroll {

void TrainConfig::validate() const {
  require(batch >= 1 && batch <= 100000,
          "--batch must be in [1, 100000] (got " + std::to_string(batch) + ")");
  require(seq >= 1 && seq <= 100000,
          "--seq must be in [1, 100000] (got " + std::to_string(seq) + ")");
  require(clip_mode == "norm" || clip_mode == "value",
          "--clip-mode must be 'norm' or 'value' (got '" + clip_mode + "')");
  require(clip >= 0 && std::isfinite(clip), "--clip must be 0 (off) or a positive number");
  require(std::isfinite(optim.momentum) && optim.momentum >= 0 && optim.momentum < 1,
          "--momentum must be in [0, 1)");
  require(std::isfinite(optim.alpha) && optim.alpha >= 0 && optim.alpha < 1,
          "--rmsprop-alpha must be in [0, 1)");
  require(lr_decay > 0 && lr_decay <= 1, "--lr-decay must be in (0, 1]");
  require(lr_decay_after >= 0, "--lr-decay-after must be 0 or more epochs");
  const ScheduleKind sk = parse_schedule(lr_schedule);
  require(sk != ScheduleKind::Plateau || lr_decay < 1,
          "--lr-schedule plateau multiplies the rate by --lr-decay, which must then be below 1");
  require(warmup >= 0, "--warmup must be 0 or more steps");
  require(std::isfinite(lr_min) && lr_min >= 0 && lr_min < optim.lr,
          "--lr-min must be at least 0 and below --lr");
  require(patience >= 1, "--patience must be 1 or more validations");
  require(asgd >= 0, "--asgd must be 0 (off) or a number of validations");
  require(optim.beta1 >= 0 && optim.beta1 < 1 && optim.beta2 >= 0 && optim.beta2 < 1,
          "--betas must be two numbers in [0, 1)");
  require(std::isfinite(optim.eps) && optim.eps > 0, "--eps must be a positive number");
  require(std::isfinite(optim.weight_decay) && optim.weight_decay >= 0 &&
              optim.lr * optim.weight_decay < 1,
          "--weight-decay must be at least 0, and --lr x --weight-decay below 1");
  require(loss_norm == "token" || loss_norm == "batch",
          "--loss-norm must be 'token' or 'batch' (got '" + loss_norm + "')");
  require(max_steps >= 0 && max_epochs >= 0 && max_seconds >= 0,
          "--steps, --epochs and --time must not be negative");
  require(eval_every >= 0 && sample_every >= 0 && print_every >= 0 && sample_len >= 0,
          "--eval-every, --sample-every, --print-every and --sample-len must not be negative");
  check_temperature(sample_temperature, "--sample-temperature");
  require(train_frac > 0 && val_frac >= 0 && train_frac + val_frac <= 1 + 1e-9,
          "--split fractions must have train > 0, val >= 0 and train + val <= 1");
  require(on_nan == "stop" || on_nan == "skip",
          "--on-nan must be 'stop' or 'skip' (got '" + on_nan + "')");
}

nlohmann::json to_json(const TrainConfig& c) {
  return {{"batch", c.batch},
          {"seq", c.seq},
          {"optim", to_json(c.optim)},
          {"clip_mode", c.clip_mode},
          {"clip", c.clip},
          {"lr_decay", c.lr_decay},
          {"lr_decay_after", c.lr_decay_after},
          {"lr_schedule", c.lr_schedule},
          {"warmup", c.warmup},
          {"lr_min", c.lr_min},
          {"lr_total", c.lr_total},
          {"patience", c.patience},
          {"asgd", c.asgd},
          {"loss_norm", c.loss_norm},
          {"max_steps", c.max_steps},
          {"max_epochs", c.max_epochs},
          {"max_seconds", c.max_seconds},
          {"eval_every", c.eval_every},
          {"sample_every", c.sample_every},
          {"sample_len", c.sample_len},
          {"sample_temperature", c.sample_temperature},
          {"print_every", c.print_every},
          {"seed", c.seed},
          {"train_frac", c.train_frac},
          {"val_frac", c.val_frac},
          {"val_files", c.val_files},
          {"test_files", c.test_files},
          {"on_nan", c.on_nan},
          {"init_from", c.init_from}};
}

TrainConfig train_config_from_json(const nlohmann::json& j) {
  TrainConfig c;
  try {
    c.batch = json_field<int>(j, "batch");
    c.seq = json_field<int>(j, "seq");
    c.optim = optim_config_from_json(j.at("optim"));
    c.clip_mode = j.at("clip_mode");
    c.clip = json_field<double>(j, "clip");
    c.lr_decay = json_field<float>(j, "lr_decay");
    c.lr_decay_after = json_field<int>(j, "lr_decay_after");
    c.lr_schedule = j.value("lr_schedule", std::string("step"));  // absent before schedules
    c.warmup = json_field(j, "warmup", int64_t(0));
    c.lr_min = json_field(j, "lr_min", 0.0f);
    c.lr_total = json_field(j, "lr_total", int64_t(0));
    c.patience = json_field(j, "patience", 1);
    c.asgd = json_field(j, "asgd", 0);
    c.loss_norm = j.at("loss_norm");
    c.max_steps = json_field<int64_t>(j, "max_steps");
    c.max_epochs = json_field<double>(j, "max_epochs");
    c.max_seconds = json_field<double>(j, "max_seconds");
    c.eval_every = json_field<int>(j, "eval_every");
    c.sample_every = json_field<int>(j, "sample_every");
    c.sample_len = json_field<int>(j, "sample_len");
    c.sample_temperature = json_field<float>(j, "sample_temperature");
    c.print_every = json_field<int>(j, "print_every");
    c.seed = json_field<uint64_t>(j, "seed");
    c.train_frac = json_field<double>(j, "train_frac");
    c.val_frac = json_field<double>(j, "val_frac");
    c.val_files = j.value("val_files", std::vector<std::string>{});  // absent before word level
    c.test_files = j.value("test_files", std::vector<std::string>{});
    c.on_nan = j.value("on_nan", std::string("stop"));  // absent before it existed
    c.init_from = j.value("init_from", std::string());
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("training options in the checkpoint are malformed: ") + e.what());
  }
  c.validate();
  return c;
}

double parse_duration(const std::string& s) {
  // NUMBER[h][NUMBERm][NUMBERs]: each unit at most once, largest first; a
  // bare number is seconds. Plain decimals only: no signs, exponents, inf or nan.
  const std::string usage = "cannot read duration '" + s + "': use e.g. 90s, 5m, 1h30m or 2.5h";
  require(!s.empty(), "empty duration: use e.g. 90s, 5m, 1h30m or 2.5h");
  double total = 0;
  size_t i = 0;
  int last_unit = 4;  // h = 3, m = 2, s = 1, none = 0
  while (i < s.size()) {
    const size_t start = i;
    while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
    const std::string number = s.substr(start, i - start);
    require(!number.empty() && number != "." && number.find('.') == number.rfind('.'), usage);
    double v;
    try {
      v = std::stod(number);
    } catch (const std::exception&) {  // beyond a double
      throw Error(usage);
    }
    int unit = 0;
    double seconds = 1;
    if (i < s.size()) {
      const char u = s[i++];
      if (u == 'h')
        unit = 3, seconds = 3600;
      else if (u == 'm')
        unit = 2, seconds = 60;
      else if (u == 's')
        unit = 1, seconds = 1;
      else if (u == 'e' || u == 'E' || u == '+' || u == '-')
        throw Error(usage + " (plain decimals: no exponent or sign)");
      else
        throw Error(usage + " (units are h, m and s)");
    }
    require(
        unit < last_unit && (unit > 0 || start == 0),
        usage + " (each unit once, largest first; a number without a unit only alone, as seconds)");
    last_unit = unit;
    total += v * seconds;
  }
  require(std::isfinite(total), usage);
  return total;
}

namespace {

std::string fmt_time(double s) {
  char b[32];
  if (s >= 3600)
    std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  else if (s >= 60)
    std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  else
    std::snprintf(b, sizeof b, "%.0fs", s);
  return b;
}

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Trainer::Trainer(const ModelConfig& model, const TrainConfig& train, TextCorpus corpus,
                 std::string out_dir)
    : cfg_(train), corpus_(std::move(corpus)), dir_(std::move(out_dir)), rng_(train.seed) {
  cfg_.validate();
  ModelConfig mc = model;
  mc.vocab = corpus_.vocab.size();
  if (mc.head == HeadKind::Softmax) mc.outputs = mc.vocab;
  model_ = std::make_unique<Model<float>>(mc);
  model_->init(rng_);
  opt_ = std::make_unique<Optimizer>(cfg_.optim, model_->params.size());
  prepare();
}

void Trainer::prepare() {
  if (cfg_.val_files.empty()) {
    Split sp = split_contiguous(corpus_.ids, cfg_.train_frac, cfg_.val_frac);
    train_ids_ = std::move(sp.train);
    val_ids_ = std::move(sp.val);
  } else {  // validation from its own files: all of the training files train
    train_ids_ = corpus_.ids;
    try {
      val_ids_ = load_corpus(cfg_.val_files, &corpus_.vocab, corpus_.format).ids;
    } catch (const Error& e) {
      const std::string m = e.what();
      throw Error("--val: " + m +
                  (m.find("vocabulary") != std::string::npos
                       ? " (the vocabulary is the training text's)"
                       : ""));
    }
  }
  if (!cfg_.test_files.empty()) {
    try {
      test_ids_ = load_corpus(cfg_.test_files, &corpus_.vocab, corpus_.format).ids;
    } catch (const Error& e) {
      const std::string m = e.what();
      throw Error("--test: " + m +
                  (m.find("vocabulary") != std::string::npos
                       ? " (the vocabulary is the training text's)"
                       : ""));
    }
    require(test_ids_.size() >= 2, "the test text needs at least two tokens");
  }
  stream_ = std::make_unique<BatchStream>(train_ids_, cfg_.batch, cfg_.seq,
                                          "the training part of the text");
  if (!val_ids_.empty())
    require(val_ids_.size() >= 2,
            cfg_.val_files.empty()
                ? "the validation part of the text has fewer than 2 " +
                      std::string(corpus_.format.unit()) +
                      ": raise --split's validation fraction or use --split 1,0 for no validation"
                : "--val: the validation text has fewer than 2 " +
                      std::string(corpus_.format.unit()) + ": give a longer file");
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& dir,
                                         const std::function<void(TrainConfig&)>& adjust) {
  const std::string path = (fs::path(dir) / "latest.safetensors").string();
  require(path_kind(dir, "--resume") == PathKind::Folder,
          "cannot resume: the run folder '" + dir + "' does not exist or is not a folder");
  require(path_kind(path, "--resume") != PathKind::None,
          "cannot resume: '" + path + "' does not exist");
  Checkpoint ck;
  try {
    ck = load_checkpoint(path);
  } catch (const Error& e) {
    const fs::path best = fs::path(dir) / "best.safetensors";
    std::error_code ec;
    throw Error(std::string(e.what()) +
                (fs::exists(best, ec) ? "; to resume from the best checkpoint instead: cp " +
                                            shell_quote(best.string()) + " " + shell_quote(path)
                                      : std::string()));
  }
  require_task(ck, path, "lm");
  require(!ck.train.is_null() && !ck.progress.is_null() && !ck.data.is_null(),
          "cannot resume from '" + path + "': it holds no training state");
  std::unique_ptr<Trainer> t(new Trainer());
  t->cfg_ = train_config_from_json(ck.train);
  if (adjust) adjust(t->cfg_);
  t->cfg_.validate();
  t->dir_ = dir;
  std::vector<std::string> files = ck.data.at("files");
  t->corpus_ = load_corpus(files, &ck.vocab, ck.format);
  const nlohmann::json now = t->corpus_.describe();
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
  t->model_ = std::move(ck.model);
  t->opt_ = std::make_unique<Optimizer>(t->cfg_.optim, t->model_->params.size());
  if (!t->opt_->m.empty()) t->opt_->m = ck.opt_m;
  if (!t->opt_->v.empty()) t->opt_->v = ck.opt_v;
  t->opt_->t = ck.opt_t;
  if (!ck.opt_avg.empty()) {
    require(ck.opt_avg_steps >= 1,
            "cannot resume: '" + path + "' has an average of no steps (optimizer.avg_steps)");
    t->opt_->avg = ck.opt_avg;
    t->opt_->avg_steps = ck.opt_avg_steps;
  }
  require(t->opt_->m.size() == t->model_->params.size() || t->opt_->m.empty(),
          "cannot resume: '" + path + "' lacks the optimizer state");
  const auto& p = ck.progress;
  std::array<uint64_t, 4> rs;
  try {
    t->step_ = json_field<int64_t>(p, "step");
    t->epoch_ = json_field<int>(p, "epoch");
    t->chunk_ = json_field<int64_t>(p, "chunk");
    t->tokens_ = json_field<int64_t>(p, "tokens");
    t->elapsed_ = json_field<double>(p, "elapsed");
    t->best_val_ = json_field<double>(p, "best_val");
    t->last_val_ = json_field<double>(p, "last_val");
    t->skipped_ = json_field(p, "skipped_batches", int64_t(0));
    t->plateau_.bad = json_field(p, "plateau_bad", 0);
    t->plateau_.cuts = json_field(p, "plateau_cuts", 0);
    require(t->plateau_.bad >= 0 && t->plateau_.cuts >= 0,
            "'plateau_bad' or 'plateau_cuts' is negative");
    t->val_history_ = p.value("val_history", std::vector<double>{});
    for (int i = 0; i < 4; ++i) {
      const std::string w = p.at("rng").at(i).get<std::string>();
      require(
          !w.empty() && w.size() <= 20 && w.find_first_not_of("0123456789") == std::string::npos,
          "'rng' is malformed");
      rs[i] = std::stoull(w);
    }
  } catch (const std::exception& e) {  // Error, and nlohmann's and stoull's exceptions
    throw Error("cannot resume from '" + path + "': its progress record is malformed: " + e.what());
  }
  require(t->step_ >= 0 && t->epoch_ >= 1 && t->chunk_ >= 0 && t->tokens_ >= 0,
          "cannot resume from '" + path + "': its progress record is malformed");
  t->rng_.set_state(rs);
  t->prepare();
  return t;
}

std::string Trainer::resume_command() const {
  return "unroll train --resume " + shell_quote(dir_) + " --threads " +
         std::to_string(get_threads());
}

nlohmann::json Trainer::progress_json() const {
  auto rs = rng_.state();
  nlohmann::json r = nlohmann::json::array();
  for (auto w : rs) r.push_back(std::to_string(w));
  nlohmann::json j = {{"step", step_},
                      {"epoch", epoch_},
                      {"chunk", chunk_},
                      {"tokens", tokens_},
                      {"elapsed", elapsed_},
                      {"best_val", best_val_},
                      {"last_val", last_val_},
                      {"rng", r},
                      {"skipped_batches", skipped_},
                      {"plateau_bad", plateau_.bad},
                      {"plateau_cuts", plateau_.cuts}};
  if (cfg_.asgd > 0) j["val_history"] = val_history_;  // NT-ASGD's trigger looks back on it
  // Epochs done as a fraction, as the training log shows them (for `unroll info`).
  if (stream_ && stream_->chunks() > 0)
    j["epochs_done"] = double(epoch_ - 1) + double(chunk_) / double(stream_->chunks());
  return j;
}

void Trainer::save(const std::string& name) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  require(!ec, "cannot create the run folder '" + dir_ + "': " + ec.message());
  save_checkpoint((fs::path(dir_) / name).string(), *model_, corpus_.vocab, to_json(cfg_),
                  progress_json(), corpus_.describe(), opt_.get());
}

double Trainer::validate_now() {
  EvalResult r = evaluate(*model_, val_ids_, cfg_.batch, cfg_.seq);
  return r.loss;
}

void Trainer::end_progress_line(std::ostream& log) {
  if (bar_shown_) log << "\n";
  bar_shown_ = false;
}

void Trainer::print_sample(std::ostream& log) {
  StateGuard<float> guard(*model_);
  Rng srng(cfg_.seed ^ (0x5DEECE66Dull * uint64_t(step_ + 1)));
  SampleOptions so;
  so.temperature = cfg_.sample_temperature;
  std::vector<std::string> tokens;
  generate(*model_, {}, corpus_.vocab.start_id(), cfg_.sample_len, so, srng,
           [&](int32_t id) { tokens.push_back(corpus_.vocab.token(id)); });
  const std::string text = detokenize(tokens, corpus_.format);
  end_progress_line(log);
  // The log may be a terminal: control characters the model learned (ESC
  // from a log file, say) are shown, not obeyed. metrics.jsonl has the text as is.
  log << "---- sample at step " << step_ << " ----\n"
      << escape_controls(text) << "\n----\n"
      << std::flush;
  if (metrics_) metrics_->append({{"kind", "sample"}, {"step", step_}, {"text", text}});
}

std::vector<std::string> grad_groups(const ModelConfig& cfg) {
  std::vector<std::string> g;
  if (cfg.embed) g.push_back("embedding");
  for (int l = 0; l < cfg.layers; ++l) g.push_back("layer " + std::to_string(l + 1));
  g.push_back("head");
  return g;
}

namespace {
// Gradient norm of each grad_groups() entry.
std::vector<double> group_norms(Model<float>& m) {
  const ModelConfig& cfg = m.config();
  std::vector<double> sq(grad_groups(cfg).size(), 0.0);
  for (const auto& v : m.layout().views()) {
    size_t g = sq.size() - 1;  // head
    if (v.name.rfind("embedding", 0) == 0) g = 0;
    const size_t at = v.name.rfind("_l");
    if (v.name.rfind("rnn.", 0) == 0 && at != std::string::npos)
      g = size_t(std::stoi(v.name.substr(at + 2))) + (cfg.embed ? 1 : 0);
    const float* p = m.grads.data() + v.offset;
    double s = 0;
    for (size_t i = 0; i < v.size; ++i) s += double(p[i]) * p[i];
    sq[g] += s;
  }
  for (double& x : sq) x = std::sqrt(x);
  return sq;
}
}  // namespace

StepResult train_step(Model<float>& m, Optimizer& opt, const int32_t* in, const int32_t* tg, int T,
                      int B, const TrainConfig& cfg, float lr, Rng& rng, Comm& comm) {
  m.zero_grad();
  LossSum l = m.forward(in, tg, T, B, Mode::Train, &rng);
  double total[2] = {l.sum, double(l.count)};  // over all ranks
  comm.allreduce_sum(total, 2);
  const float scale =
      cfg.loss_norm == "token" ? 1.0f / float(total[1]) : 1.0f / float(B * comm.size());
  m.backward(scale);
  StepResult r;
  const auto reduce0 = std::chrono::steady_clock::now();
  comm.allreduce_sum(m.grads.data(), m.grads.size());  // the whole batch's gradient, on every rank
  r.reduce_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - reduce0).count();
  r.loss = total[0] / total[1];
  const size_t n = m.grads.size();
  r.group_norms = group_norms(m);
  const Clipped c = clip_gradient(m.grads.data(), n, cfg.clip, cfg.clip_mode);
  r.grad_norm = c.norm;
  r.clipped = c.clipped;
  // A non-finite loss or gradient is reported by the caller; the parameters stay untouched.
  if (std::isfinite(r.loss) && std::isfinite(r.grad_norm))
    opt.step(m.params.data(), m.grads.data(), lr);
  return r;
}

void Trainer::lock_run_folder() {
  if (!lock_) lock_ = std::make_unique<FolderLock>(dir_, "training", command_line);
}

std::vector<TrainEvent> Trainer::train(std::ostream& log) {
  // The run folder's lock is held until train() ends, however it ends.
  struct Unlock {
    std::unique_ptr<FolderLock>& lock;
    ~Unlock() { lock.reset(); }
  } unlock{lock_};
  Model<float>& m = *model_;
  const int B = cfg_.batch, T = cfg_.seq;
  const BatchStream& stream = *stream_;
  const int64_t per_epoch = stream.chunks();
  std::vector<int32_t> in(size_t(T) * B), tg(size_t(T) * B);
  std::vector<TrainEvent> events;
  // Data-parallel: this rank's share of the B streams.
  Comm& comm = *comm_;
  const int ranks = comm.size(), rank = comm.rank();
  const bool root = comm.root();
  require(B % ranks == 0, "--batch " + std::to_string(B) + " does not split evenly over " +
                              std::to_string(ranks) + " ranks: give a multiple of " +
                              std::to_string(ranks));
  const int Bl = B / ranks;
  std::vector<int32_t> in_l(ranks > 1 ? size_t(T) * Bl : 0),
      tg_l(in_l.size());                    // this rank's columns
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
  comm.broadcast(m.params.data(),
                 m.params.size());  // the same start on every rank, whatever happened

  const double t0 = now() - elapsed_;  // the run's clock (elapsed_ carries across resumes)
  const double session0 = now();       // --time counts this session's training only
  double last_print = now(), window_t = now();
  int64_t window_tokens = 0;
  double window_loss = 0;
  int window_steps = 0;
  const bool has_val = !val_ids_.empty();
  Schedule sched;
  sched.kind = parse_schedule(cfg_.lr_schedule);
  sched.lr = cfg_.optim.lr;
  sched.decay = cfg_.lr_decay;
  sched.after = cfg_.lr_decay_after;
  sched.warmup = cfg_.warmup;
  sched.lr_min = cfg_.lr_min;
  // With --time alone, the cosine ends where the time is estimated to run
  // out, from the pace of this session's first 10% of it (validations
  // included when one came by then): the full rate until that estimate.
  const bool cosine_by_time = sched.kind == ScheduleKind::Cosine && cfg_.lr_total == 0 &&
                              cfg_.max_steps == 0 && cfg_.max_epochs == 0 && cfg_.max_seconds > 0;
  if (sched.kind == ScheduleKind::Cosine && cfg_.lr_total == 0 && !cosine_by_time) {
    // It ends where the run's step or epoch limit does, as they stand when the
    // run starts; a resume keeps that end whatever its own limits.
    int64_t total = cfg_.max_steps;
    if (cfg_.max_epochs > 0) {  // the step at which done() stops (less a rounding slack)
      const int64_t by_epochs = int64_t(std::ceil(cfg_.max_epochs * double(per_epoch) - 1e-9));
      total = total > 0 ? std::min(total, by_epochs) : by_epochs;
    }
    require(total > 0,
            "--lr-schedule cosine decays to --lr-min at the last step: give --steps, --epochs or "
            "--time");
    require(total > cfg_.warmup,
            "--lr-schedule cosine: the warm-up (" + std::to_string(cfg_.warmup) +
                " steps) must end before the last step (" + std::to_string(total) + ")");
    cfg_.lr_total = total;
  }
  sched.total = cfg_.lr_total;
  require(cfg_.asgd == 0 || has_val,
          "--asgd starts averaging when validation stops improving, and this run has no validation "
          "text: give --split with a validation part, or --val");
  require(
      sched.kind != ScheduleKind::Plateau || has_val,
      "--lr-schedule plateau lowers the rate when validation stops improving, and this run has no "
      "validation text: give --split with a validation part, or --val");
  // Gradient statistics between evaluations (logged, and kept in metrics.jsonl).
  const std::vector<std::string> groups = grad_groups(m.config());
  struct GradWindow {
    int steps = 0, clipped = 0;
    double norm_sum = 0, norm_max = 0, loss_sum = 0;
    std::vector<double> group_sum;
  } gw;
  gw.group_sum.assign(groups.size(), 0.0);

  if (root) {  // the run folder must be writable before any training time is spent
    std::error_code ec;
    fs::create_directories(dir_, ec);
    require(!ec && fs::is_directory(dir_), "cannot create the run folder '" + dir_ + "': " +
                                               (ec ? ec.message() : std::string("not a folder")) +
                                               "; choose another --out");
    lock_run_folder();
    remove_stale_temp_files(
        dir_, {"latest.safetensors", "best.safetensors", "config.json", "metrics.jsonl",
               "report.html"});  // of a run killed while it wrote
  }
  // The run's record: its settings (config.json) and metrics.jsonl, which a
  // resumed run continues from the step of its checkpoint.
  if (root) {
    // A resume keeps the command that started the run and adds its own, with
    // the step it continued from, to "resumes".
    const std::string config_path = (fs::path(dir_) / "config.json").string();
    nlohmann::json first_command = command_line, resumes = nlohmann::json::array();
    if (step_ > 0) {
      nlohmann::json before;
      std::ifstream in(config_path);
      try {
        if (in) before = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception&) {  // damaged: this command starts the record anew
      }
      if (before.is_object() && before.contains("command") && before["command"].is_string()) {
        first_command = before["command"];
        if (before.contains("resumes") && before["resumes"].is_array()) resumes = before["resumes"];
      }
      resumes.push_back({{"command", command_line}, {"step", step_}});
    }
    write_file_atomic(config_path,
                      {nlohmann::json({{"model", to_json(m.config())},
                                       {"train", to_json(cfg_)},
                                       {"data", corpus_.describe()},
                                       {"vocab_size", corpus_.vocab.size()},
                                       {"command", first_command},
                                       {"resumes", resumes},
                                       {"parameters", m.layout().count()},
                                       {"ranks", ranks}})
                           .dump(2) +
                       "\n"},
                      "run settings");
    metrics_ = std::make_unique<MetricsLog>((fs::path(dir_) / "metrics.jsonl").string(),
                                            step_ > 0 ? step_ : -1);
  }
  log << "training " << cell_name(m.config().cell) << " " << m.config().layers << "x"
      << m.config().hidden << " (" << m.layout().count() << " parameters) on " << train_ids_.size()
      << " " << corpus_.format.unit() << ", vocabulary " << corpus_.vocab.size() << ", batch " << B
      << " x seq " << T << ", " << per_epoch << " chunks per epoch"
      << (ranks > 1 ? ", " + std::to_string(ranks) + " ranks of " + std::to_string(Bl) + " streams"
                    : std::string())
      << "\n"
      << std::flush;
  if (!has_val)
    log << "no validation text (--split gives it 0 characters): no validation loss, and only "
           "latest.safetensors is written, not best.safetensors\n"
        << std::flush;

  const int64_t session_step0 = step_;
  auto done = [&]() {
    if (cfg_.max_steps > 0 && step_ >= cfg_.max_steps) return true;
    if (cfg_.max_epochs > 0 && double(epoch_ - 1) + double(chunk_) / per_epoch >= cfg_.max_epochs)
      return true;
    // A time limit ends a session only after its first step: however short
    // (--time 0.0001s), the run then has a checkpoint to resume from.
    if (cfg_.max_seconds > 0 && step_ > session_step0 && now() - session0 >= cfg_.max_seconds)
      return true;
    return false;
  };
  float last_lr = 0;  // the rate of the last step taken
  auto log_gradients = [&]() {
    if (gw.steps == 0) return;
    std::ostringstream line;
    char b[160];
    std::snprintf(b, sizeof b, "gradients over %d steps: norm mean %.3g max %.3g, clipped %.0f%% |",
                  gw.steps, gw.norm_sum / gw.steps, gw.norm_max, 100.0 * gw.clipped / gw.steps);
    line << b;
    nlohmann::json per = nlohmann::json::object();
    for (size_t g = 0; g < groups.size(); ++g) {
      std::snprintf(b, sizeof b, " %s %.3g", groups[g].c_str(), gw.group_sum[g] / gw.steps);
      line << b;
      per[groups[g]] = gw.group_sum[g] / gw.steps;
    }
    end_progress_line(log);
    log << line.str() << "\n" << std::flush;
    nlohmann::json rec = {{"kind", "eval"},
                          {"step", step_},
                          {"epoch", double(epoch_ - 1) + double(chunk_) / per_epoch},
                          {"tokens", tokens_},
                          {"elapsed", now() - t0},
                          {"train_loss", gw.loss_sum / gw.steps},
                          {"grad_norm_mean", gw.norm_sum / gw.steps},
                          {"grad_norm_max", gw.norm_max},
                          {"clip_fraction", double(gw.clipped) / gw.steps},
                          {"lr", last_lr},
                          {"group_grad_norms", per}};
    if (has_val) {
      rec["val_loss"] = last_val_;
      rec["val_bits_per_token"] = last_val_ / std::log(2.0);
      rec["val_perplexity"] = std::exp(last_val_);
      rec["best_val_loss"] = best_val_;
    }
    if (!test_ids_.empty()) rec["test_loss"] = last_test_;
    record(rec);
    gw = GradWindow{};
    gw.group_sum.assign(groups.size(), 0.0);
  };
  std::pair<Buffer<float>, Buffer<float>> local_state;  // rank 0's own streams while it saves
  // Saving with several ranks: the checkpoint holds the state of all B
  // streams, gathered on rank 0 (the rest of the model and the optimizer are
  // the same on every rank). Collective; returns false on the other ranks.
  auto gather_state = [&]() {
    if (ranks == 1) return true;
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
  };
  auto local_state_back = [&]() {  // after gather_state on rank 0
    if (ranks == 1) return;
    m.reset_state(Bl);
    std::copy(local_state.first.begin(), local_state.first.end(), m.state_h.begin());
    std::copy(local_state.second.begin(), local_state.second.end(), m.state_c.begin());
  };
  auto evaluate_and_save = [&]() {
    elapsed_ = now() - t0;
    if (!gather_state()) return;
    if (has_val) {
      // Averaging (NT-ASGD): validation, the test text and best.safetensors
      // use the averaged weights; latest.safetensors keeps the trained ones.
      const bool averaged = opt_->averaging();
      if (averaged) std::swap(m.params, opt_->avg);
      last_val_ = validate_now();
      const bool best = last_val_ < best_val_;
      if (best) best_val_ = last_val_;
      plateau_.observe(best, cfg_.patience);
      bool starts = false;
      if (cfg_.asgd > 0 && !averaged && non_monotone_trigger(val_history_, last_val_, cfg_.asgd)) {
        opt_->start_average(m.params.data());
        starts = true;
      }
      val_history_.push_back(last_val_);
      char b[160];
      // Characters: bits per character; words: perplexity, as papers report them.
      std::string test;
      if (!test_ids_.empty()) {
        StateGuard<float> guard(*model_);
        last_test_ = evaluate(*model_, test_ids_, cfg_.batch, cfg_.seq).loss;
        char t[96];
        if (corpus_.format.level == "char")
          std::snprintf(t, sizeof t, ", test %.4f bits/char", last_test_ / std::log(2.0));
        else
          std::snprintf(t, sizeof t, ", test perplexity %.2f", std::exp(last_test_));
        test = t;
      }
      if (corpus_.format.level == "char")
        std::snprintf(b, sizeof b, "eval step %lld: val loss %.4f nats, %.4f bits/char%s%s\n",
                      (long long)step_, last_val_, last_val_ / std::log(2.0), test.c_str(),
                      best ? " (best)" : "");
      else
        std::snprintf(b, sizeof b, "eval step %lld: val loss %.4f nats, perplexity %.2f%s%s\n",
                      (long long)step_, last_val_, std::exp(last_val_), test.c_str(),
                      best ? " (best)" : "");
      end_progress_line(log);
      log << b << std::flush;
      if (starts) {
        log << "NT-ASGD: validation is worse than the best of those more than " << cfg_.asgd
            << " validations ago; averaging the weights from step " << step_
            << " on (validation and best.safetensors use the average)\n"
            << std::flush;
        record({{"kind", "asgd"}, {"step", step_}});
      }
      log_gradients();  // before the checkpoint: a resume from an older one drops the record
      if (best && averaged) {
        // best.safetensors: the average as the weights, and as the average
        // too (a resume from it goes on from the averaged model).
        Buffer<float> trained = std::move(opt_->avg);
        opt_->avg = m.params;
        save("best.safetensors");
        opt_->avg = std::move(trained);
      } else if (best) {
        save("best.safetensors");
      }
      if (averaged) std::swap(m.params, opt_->avg);
      save("latest.safetensors");
    } else {
      log_gradients();
      save("latest.safetensors");
    }
    local_state_back();
    write_run_report(dir_, command_line);  // the curves so far, RUN_DIR/report.html
  };

  // --on-nan skip: the carried state before each step, put back if it is skipped.
  std::pair<Buffer<float>, Buffer<float>> state_before;
  int nan_run = 0;  // skipped batches in a row
  // Stop conditions hold for all ranks at once (a clock may run ahead on one).
  auto done_everywhere = [&]() { return comm.allreduce_max(done() ? 1 : 0) != 0; };
  Rng dropout_rng;                               // with several ranks: each its own dropout masks
  double reduce_seconds = 0, train_seconds = 0;  // this session: all-reduce, and the steps
  if (done_everywhere()) {  // e.g. a resume whose --steps the run has already reached
    log << "nothing to train: the run is already at step " << step_ << ", epoch " << epoch_
        << "; give a larger --steps or --epochs, or a --time" << std::endl;
    return events;
  }
  while (!done_everywhere()) {
    const double step0 = now();
    if (chunk_ >= per_epoch) {  // a new epoch: start the streams over with a fresh state
      ++epoch_;
      chunk_ = 0;
      m.reset_state(Bl);
    }
    stream.get(int(chunk_), in.data(), tg.data());
    if (ranks > 1)  // columns [rank·Bl, (rank+1)·Bl) of the time-major [T][B] chunk
      for (int t = 0; t < T; ++t) {
        std::copy_n(in.begin() + size_t(t) * B + size_t(rank) * Bl, Bl,
                    in_l.begin() + size_t(t) * Bl);
        std::copy_n(tg.begin() + size_t(t) * B + size_t(rank) * Bl, Bl,
                    tg_l.begin() + size_t(t) * Bl);
      }
    // Every rank advances rng_ alike; with several, each draws its own masks.
    if (ranks > 1) dropout_rng.reseed(rng_.next() ^ (0x9E3779B97F4A7C15ull * uint64_t(rank + 1)));
    const float lr = last_lr = schedule_lr(sched, step_ + 1, epoch_, plateau_.cuts);
    if (cfg_.on_nan == "skip") {
      state_before.first.assign(m.state_h.begin(), m.state_h.end());
      state_before.second.assign(m.state_c.begin(), m.state_c.end());
    }
    if (std::find(poison_steps.begin(), poison_steps.end(), step_ + 1) != poison_steps.end())
      std::fill(m.state_h.begin(), m.state_h.end(), std::numeric_limits<float>::quiet_NaN());
    StepResult r = train_step(m, *opt_, ranks > 1 ? in_l.data() : in.data(),
                              ranks > 1 ? tg_l.data() : tg.data(), T, Bl, cfg_, lr,
                              ranks > 1 ? dropout_rng : rng_, comm);
    const double mean = r.loss, norm = r.grad_norm;
    if (!std::isfinite(mean) || !std::isfinite(norm)) {
      // train_step left the parameters and the optimizer as they were.
      const std::string what = "at step " + std::to_string(step_ + 1) + " the loss (" +
                               std::to_string(mean) + ") or the gradient norm (" +
                               std::to_string(norm) + ") is not finite";
      const std::string kept =
          fs::exists(fs::path(dir_) / "latest.safetensors")
              ? "the last checkpoint in '" + dir_ + "' is kept"
              : "no checkpoint was written yet (a smaller --eval-every saves sooner)";
      require(cfg_.on_nan == "skip" && nan_run < kMaxSkippedInARow,
              cfg_.on_nan == "skip"
                  ? what + ", after " + std::to_string(kMaxSkippedInARow) +
                        " skipped batches in a row: stopping; " + "lower --lr or --clip; " + kept
                  : "training diverged: " + what +
                        "; lower --lr or --clip (or --on-nan skip to drop such " + "batches); " +
                        kept);
      require(state_before.first.size() == m.state_h.size() &&
                  state_before.second.size() == m.state_c.size(),
              "internal: the carried state changed size during a step");
      std::copy(state_before.first.begin(), state_before.first.end(), m.state_h.begin());
      std::copy(state_before.second.begin(), state_before.second.end(), m.state_c.begin());
      ++skipped_, ++nan_run, ++step_, ++chunk_;
      tokens_ += int64_t(T) * B;
      end_progress_line(log);
      log << "step " << step_ << ": loss or gradient not finite, batch skipped (" << skipped_
          << (skipped_ == 1 ? " batch" : " batches") << " so far)\n"
          << std::flush;
      record({{"kind", "skip"}, {"step", step_}, {"skipped_batches", skipped_}});
    } else {
      nan_run = 0;
      if (opt_->averaging()) opt_->add_to_average(m.params.data());
      reduce_seconds += r.reduce_seconds;
      ++step_;
      ++chunk_;
      tokens_ += int64_t(T) * B;
      events.push_back({step_, mean, norm});
      ++gw.steps, gw.clipped += r.clipped, gw.norm_sum += norm, gw.loss_sum += mean;
      gw.norm_max = std::max(gw.norm_max, norm);
      for (size_t g = 0; g < groups.size(); ++g) gw.group_sum[g] += r.group_norms[g];
      window_tokens += int64_t(T) * B;
      window_loss += mean;
      ++window_steps;

      const double tnow = now();
      const bool print_due = cfg_.print_every > 0
                                 ? step_ % cfg_.print_every == 0
                                 : tnow - last_print >= (live_progress ? 0.5 : 2.0);
      if (print_due) {
        const double tps = window_tokens / std::max(1e-9, tnow - window_t);
        double left = -1;
        if (cfg_.max_steps > 0) left = double(cfg_.max_steps - step_) * T * B / tps;
        if (cfg_.max_epochs > 0) {
          double l2 =
              (cfg_.max_epochs * per_epoch - double(epoch_ - 1) * per_epoch - chunk_) * T * B / tps;
          left = left < 0 ? l2 : std::min(left, l2);
        }
        if (cfg_.max_seconds > 0) {
          double l3 = cfg_.max_seconds - (tnow - session0);
          left = left < 0 ? l3 : std::min(left, l3);
        }
        char b[240];
        if (live_progress) {  // a terminal: one line redrawn in place
          double done_frac = -1;
          if (cfg_.max_steps > 0) done_frac = double(step_) / double(cfg_.max_steps);
          if (cfg_.max_epochs > 0)
            done_frac = std::max(
                done_frac, (double(epoch_ - 1) + double(chunk_) / per_epoch) / cfg_.max_epochs);
          if (cfg_.max_seconds > 0)
            done_frac = std::max(done_frac, (tnow - session0) / cfg_.max_seconds);
          done_frac = std::clamp(done_frac, 0.0, 1.0);
          const int full = int(done_frac * 24 + 0.5);
          std::snprintf(b, sizeof b,
                        "\r[%s%s] %3.0f%% | step %lld | loss %.4f | %.0f tok/s | ETA %s\033[K",
                        std::string(full, '#').c_str(), std::string(24 - full, '.').c_str(),
                        100 * done_frac, (long long)step_, window_loss / window_steps, tps,
                        left >= 0 ? fmt_time(std::max(0.0, left)).c_str() : "?");
          bar_shown_ = true;
        } else {
          std::snprintf(
              b, sizeof b,
              "step %lld | epoch %.2f | loss %.4f | lr %.2g | grad norm %.2f | %.0f tok/s | %s%s\n",
              (long long)step_, double(epoch_ - 1) + double(chunk_) / per_epoch,
              window_loss / window_steps, lr, norm, tps,
              left >= 0 ? fmt_time(std::max(0.0, left)).c_str() : "", left >= 0 ? " left" : "");
        }
        log << b << std::flush;
        record({{"kind", "step"},
                {"step", step_},
                {"epoch", double(epoch_ - 1) + double(chunk_) / per_epoch},
                {"tokens", tokens_},
                {"elapsed", tnow - t0},
                {"train_loss", window_loss / window_steps},
                {"lr", lr},
                {"grad_norm", norm},
                {"clipped", r.clipped},
                {"tokens_per_s", tps}});
        last_print = tnow, window_t = tnow, window_tokens = 0, window_loss = 0, window_steps = 0;
      }
    }                             // a finite step
    const double pause0 = now();  // evaluation and samples do not count against tokens/s
    train_seconds += pause0 - step0;
    if (cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0) {
      evaluate_and_save();
      // Rank 0 alone validates: every rank takes its count of plateau cuts, so
      // that all step with the same rate.
      if (ranks > 1) plateau_.cuts = comm.allreduce_max(plateau_.cuts);
    }
    if (cosine_by_time && cfg_.lr_total == 0) {  // rank 0's clock decides, for every rank
      const double spent = now() - session0;
      int total = 0;
      if (root && step_ >= cfg_.warmup && step_ > session_step0 && spent >= 0.1 * cfg_.max_seconds)
        total = int(std::min<double>(
            step_ + double(step_ - session_step0) * (cfg_.max_seconds - spent) / spent,
            std::numeric_limits<int>::max()));
      if (ranks > 1) total = comm.allreduce_max(total);
      if (total > 0) {
        cfg_.lr_total = sched.total = std::max<int64_t>(total, step_ + 1);
        if (root) {
          end_progress_line(log);
          log << "cosine schedule: at this pace (" << step_ - session_step0 << " steps in "
              << fmt_time(spent) << ") the --time limit ends near step " << cfg_.lr_total
              << "; the rate reaches " << cfg_.lr_min << " there\n"
              << std::flush;
          record({{"kind", "schedule"}, {"step", step_}, {"lr_total", cfg_.lr_total}});
        }
      }
    }
    if (root && cfg_.sample_every > 0 && step_ % cfg_.sample_every == 0) print_sample(log);
    window_t += now() - pause0;
    if ((interrupted_ = comm.allreduce_max(interrupt_requested())) != 0) break;
  }
  if (interrupted_) {  // Ctrl-C or SIGTERM: save where we are, without validating
    elapsed_ = now() - t0;
    // The other ranks wait until rank 0 has saved: mpirun ends a job whose
    // first rank exits with an error, rank 0 too.
    auto saved = [&]() { comm.allreduce_max(0); };
    if (!gather_state()) {
      saved();
      return events;
    }
    end_progress_line(log);
    save("latest.safetensors");
    local_state_back();
    record(
        {{"kind", "interrupt"}, {"step", step_}, {"elapsed", elapsed_}, {"signal", interrupted_}});
    write_run_report(dir_, command_line);
    log << "interrupted at step " << step_ << " ("
        << (interrupted_ == SIGINT ? "Ctrl-C" : "SIGTERM") << "): saved "
        << (fs::path(dir_) / "latest.safetensors").string()
        << "; continue with: " << resume_command() << std::endl;
    saved();
    return events;
  }
  if (cfg_.eval_every == 0 || step_ % cfg_.eval_every != 0)
    evaluate_and_save();
  else if (root)
    write_run_report(dir_, command_line);  // with the sample of the last step
  const double secs = now() - t0;
  end_progress_line(log);
  if (root && cosine_by_time && cfg_.lr_total == 0)
    log << "note: the cosine never started: its end is set once the warm-up (" << cfg_.warmup
        << " steps) is over and 10% of --time has passed; give a shorter --warmup or a longer "
           "--time\n";
  char b[200];
  std::snprintf(b, sizeof b, "done: %lld steps, %lld tokens in %s (%.0f tok/s overall)%s%s\n",
                (long long)step_, (long long)tokens_, fmt_time(secs).c_str(),
                double(tokens_) / std::max(1e-9, secs),
                has_val ? (", best val loss " + std::to_string(best_val_)).c_str() : "",
                skipped_ > 0
                    ? (", " + std::to_string(skipped_) + " batches skipped (not finite)").c_str()
                    : "");
  log << b;
  if (ranks > 1)
    log << ranks << " ranks: the gradient all-reduce took " << std::fixed << std::setprecision(1)
        << 100 * reduce_seconds / std::max(1e-9, train_seconds) << "% of the training steps' time ("
        << m.grads.size() * 4 / 1024 << " KiB a step)" << std::defaultfloat << "\n";
  log << std::flush;
  return events;
}

}  // namespace unroll

// The run loop that every task trains through (train/run.h).
#include "unroll/train/run.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>

#include "unroll/core/error.h"
#include "unroll/core/gemm.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/json.h"
#include "unroll/core/shell.h"
#include "unroll/infer/sampler.h"
#include "unroll/train/snapshots.h"

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
  require(early_stop >= 0, "early stopping needs 0 (never) or a number of validations");
  require(on_nan == "stop" || on_nan == "skip",
          "--on-nan must be 'stop' or 'skip' (got '" + on_nan + "')");
  parse_snapshot_schedule(snapshot_every);  // an error that shows the forms
  parse_snapshot_budget(snapshot_budget);
  require(snapshot_budget.empty() || !snapshot_every.empty(),
          "--snapshot-budget limits the snapshots of --snapshot-every; give that too");
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
          {"early_stop", c.early_stop},
          {"snapshot_every", c.snapshot_every},
          {"snapshot_budget", c.snapshot_budget},
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
    c.early_stop = json_field(j, "early_stop", 0);
    c.snapshot_every = j.value("snapshot_every", std::string());  // absent before snapshots
    c.snapshot_budget = j.value("snapshot_budget", std::string());
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

std::string fixed(double x, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, x);
  return b;
}

}  // namespace

std::vector<std::string> grad_groups(const ModelConfig& cfg) {
  std::vector<std::string> g;
  if (cfg.embed) g.push_back("embedding");
  for (int l = 0; l < cfg.layers; ++l) g.push_back("layer " + std::to_string(l + 1));
  g.push_back("head");
  return g;
}

namespace {
// Gradient norm of each grad_groups() entry.
std::vector<double> group_norms(Stack<float>& m) {
  const ModelConfig& cfg = m.config();
  std::vector<double> sq(grad_groups(cfg).size(), 0.0);
  for (const auto& v : m.layout().views()) {
    size_t g = sq.size() - 1;  // the head (and a conditional model's category vectors)
    if (v.part == Part::Embedding) g = 0;
    if (v.part == Part::Recurrent) g = size_t(v.layer) + (cfg.embed ? 1 : 0);
    const float* p = m.grads.data() + v.offset;
    double s = 0;
    for (size_t i = 0; i < v.size; ++i) s += double(p[i]) * p[i];
    sq[g] += s;
  }
  for (double& x : sq) x = std::sqrt(x);
  return sq;
}
}  // namespace

StepResult finish_step(Stack<float>& m, Optimizer& opt, BatchLoss& local, const TrainConfig& cfg,
                       float lr, Comm& comm) {
  // The batch's totals, over all ranks: loss, count, examples, tokens, right.
  double total[5] = {local.loss, double(local.count), double(local.examples), double(local.tokens),
                     double(local.right)};
  comm.allreduce_sum(total, 5);
  local.loss = total[0];
  local.count = int64_t(total[1]);
  local.examples = int64_t(total[2]);
  local.tokens = int64_t(total[3]);
  if (local.right >= 0) local.right = int64_t(total[4]);
  const double denominator = cfg.loss_norm == "token" ? total[1] : total[2];
  if (local.ran) m.backward(float(1.0 / std::max(denominator, 1.0)));
  StepResult r;
  const auto reduce0 = std::chrono::steady_clock::now();
  comm.allreduce_sum(m.grads.data(), m.grads.size());  // the whole batch's gradient, on every rank
  r.reduce_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - reduce0).count();
  r.loss = total[0] / std::max(total[1], 1.0);
  if (total[1] == 0) r.loss = total[0] == 0 ? 0 : std::numeric_limits<double>::quiet_NaN();
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

std::string resume_command(const std::string& task, const std::string& dir) {
  return train_command(task) + " --resume " + shell_quote(dir) + " --threads " +
         std::to_string(get_threads());
}

void require_new_run_folder(const std::string& dir) {
  require(!dir.empty(), "--out must name a folder");
  require(path_kind(dir, "--out") != PathKind::Other,
          "--out '" + dir + "' exists and is not a folder: choose another --out");
  require(path_kind((fs::path(dir) / "latest.safetensors").string(), "--out") == PathKind::None,
          "'" + dir + "' already holds a run: continue it with --resume " + shell_quote(dir) +
              ", or choose another --out");
  require(list_snapshots(dir).empty(),
          "'" + dir + "' holds the snapshots of an earlier run (" +
              (fs::path(dir) / "snapshots").string() +
              ") but no checkpoint to resume: remove that folder, or choose another --out");
}

Checkpoint load_run_checkpoint(const std::string& dir, const std::string& task) {
  const std::string path = (fs::path(dir) / "latest.safetensors").string();
  require(
      !(path_kind(dir, "--resume") == PathKind::Other &&
        fs::path(dir).extension() == ".safetensors"),
      "--resume takes the run folder, not a checkpoint: --resume " +
          shell_quote(fs::path(dir).parent_path().empty() ? "."
                                                          : fs::path(dir).parent_path().string()));
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
  if (ck.task != task &&
      (ck.task == "lm" || ck.task == "classify" || ck.task == "tag" || ck.task == "conditional")) {
    throw Error("cannot resume: '" + dir + "' holds the run of " + task_name(ck.task) + ", not " +
                task_name(task) + ": continue it with " + train_command(ck.task) + " --resume " +
                shell_quote(dir));
  }
  require_task(ck, path, task);
  require(!ck.train.is_null() && !ck.progress.is_null() && !ck.data.is_null(),
          "cannot resume from '" + path + "': it holds no training state");
  return ck;
}

RunLoop::RunLoop(Task& task, TrainConfig cfg, std::string dir)
    : task_(task), cfg_(std::move(cfg)), dir_(std::move(dir)), rng_(cfg_.seed) {
  cfg_.validate();
  opt_ = std::make_unique<Optimizer>(cfg_.optim, task_.model().params.size());
}

void RunLoop::restore(const Checkpoint& ck, const std::string& path) {
  Stack<float>& m = task_.model();
  opt_ = std::make_unique<Optimizer>(cfg_.optim, m.params.size());
  if (!opt_->m.empty()) opt_->m = ck.opt_m;
  if (!opt_->v.empty()) opt_->v = ck.opt_v;
  opt_->t = ck.opt_t;
  if (!ck.opt_avg.empty()) {
    require(ck.opt_avg_steps >= 1,
            "cannot resume: '" + path + "' has an average of no steps (optimizer.avg_steps)");
    opt_->avg = ck.opt_avg;
    opt_->avg_steps = ck.opt_avg_steps;
  }
  require(opt_->m.size() == m.params.size() || opt_->m.empty(),
          "cannot resume: '" + path + "' lacks the optimizer state");
  const auto& p = ck.progress;
  try {
    p_.step = json_field<int64_t>(p, "step");
    p_.epoch = json_field<int>(p, "epoch");
    p_.chunk = json_field<int64_t>(p, "chunk");
    p_.tokens = json_field<int64_t>(p, "tokens");
    p_.elapsed = json_field<double>(p, "elapsed");
    p_.best_val = json_field<double>(p, "best_val");
    p_.last_val = json_field<double>(p, "last_val");
    p_.skipped = json_field(p, "skipped_batches", int64_t(0));
    p_.since_best = json_field(p, "since_best", 0);
    p_.plateau.bad = json_field(p, "plateau_bad", 0);
    p_.plateau.cuts = json_field(p, "plateau_cuts", 0);
    require(p_.plateau.bad >= 0 && p_.plateau.cuts >= 0 && p_.since_best >= 0,
            "'plateau_bad', 'plateau_cuts' or 'since_best' is negative");
    p_.val_history = p.value("val_history", std::vector<double>{});
    for (int i = 0; i < 4; ++i) {
      const std::string w = p.at("rng").at(i).get<std::string>();
      require(
          !w.empty() && w.size() <= 20 && w.find_first_not_of("0123456789") == std::string::npos,
          "'rng' is malformed");
      p_.rng[i] = std::stoull(w);
    }
  } catch (const std::exception& e) {  // Error, and nlohmann's and stoull's exceptions
    throw Error("cannot resume from '" + path + "': its progress record is malformed: " + e.what());
  }
  require(p_.step >= 0 && p_.epoch >= 1 && p_.chunk >= 0 && p_.tokens >= 0,
          "cannot resume from '" + path + "': its progress record is malformed");
  rng_.set_state(p_.rng);
}

nlohmann::json RunLoop::progress_json() const {
  nlohmann::json r = nlohmann::json::array();
  for (auto w : rng_.state()) r.push_back(std::to_string(w));
  nlohmann::json j = {{"step", p_.step},
                      {"epoch", p_.epoch},
                      {"chunk", p_.chunk},
                      {"tokens", p_.tokens},
                      {"elapsed", p_.elapsed},
                      {"best_val", p_.best_val},
                      {"last_val", p_.last_val},
                      {"rng", r},
                      {"skipped_batches", p_.skipped},
                      {"since_best", p_.since_best},
                      {"plateau_bad", p_.plateau.bad},
                      {"plateau_cuts", p_.plateau.cuts}};
  if (cfg_.asgd > 0) j["val_history"] = p_.val_history;  // NT-ASGD's trigger looks back on it
  // Epochs done as a fraction, as the training log shows them (for `unroll info`).
  const int64_t per_epoch = task_.batches_per_epoch();
  if (per_epoch > 0) j["epochs_done"] = double(p_.epoch - 1) + double(p_.chunk) / double(per_epoch);
  return j;
}

void RunLoop::save(const std::string& name) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  require(!ec, "cannot create the run folder '" + dir_ + "': " + ec.message());
  task_.save((fs::path(dir_) / name).string(), progress_json(), opt_.get());
}

void RunLoop::end_progress_line(std::ostream& log) {
  if (bar_shown_) log << "\n";
  bar_shown_ = false;
}

void RunLoop::lock_run_folder() {
  if (!lock_) lock_ = std::make_unique<FolderLock>(dir_, "training", command_line);
}

// The run's settings: config.json. A resume keeps the command that started
// the run and adds its own, with the step it continued from, to "resumes".
void RunLoop::write_config(int ranks) {
  const std::string config_path = (fs::path(dir_) / "config.json").string();
  nlohmann::json first_command = command_line, resumes = nlohmann::json::array(),
                 first_ranks = ranks;
  if (p_.step > 0) {
    nlohmann::json before;
    std::ifstream in(config_path);
    try {
      if (in) before = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception&) {  // damaged: this command starts the record anew
    }
    if (before.is_object() && before.contains("command") && before["command"].is_string()) {
      first_command = before["command"];
      if (before.contains("resumes") && before["resumes"].is_array()) resumes = before["resumes"];
      if (before.contains("ranks") && before["ranks"].is_number_integer())
        first_ranks = before["ranks"];
    }
    resumes.push_back({{"command", command_line}, {"step", p_.step}, {"ranks", ranks}});
  }
  nlohmann::json j = task_.config_json();
  j["command"] = first_command;
  j["resumes"] = resumes;
  j["parameters"] = task_.model().layout().count();
  j["ranks"] = first_ranks;  // of the session that began the run; "resumes" holds the others
  write_file_atomic(config_path, {j.dump(2) + "\n"}, "run settings");
}

std::vector<TrainEvent> RunLoop::run(std::ostream& log) {
  // The run folder's lock is held until run() ends, however it ends.
  struct Unlock {
    std::unique_ptr<FolderLock>& lock;
    ~Unlock() { lock.reset(); }
  } unlock{lock_};
  Stack<float>& m = task_.model();
  const int64_t per_epoch = task_.batches_per_epoch();
  std::vector<TrainEvent> events;
  Comm& comm = *comm_;
  const int ranks = comm.size(), rank = comm.rank();
  const bool root = comm.root();
  comm.broadcast(m.params.data(), m.params.size());  // the same start on every rank
  task_.start_run(p_.epoch, rank, ranks);

  const double t0 = now() - p_.elapsed;  // the run's clock (elapsed carries across resumes)
  const double session0 = now();         // --time counts this session's training only
  double last_print = now(), window_t = now();
  int64_t window_tokens = 0, window_right = 0, window_count = 0;
  double window_loss = 0;
  int window_steps = 0;
  const bool has_val = task_.has_validation();
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
    int64_t right = 0, count = 0;
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
    remove_stale_temp_files((fs::path(dir_) / "snapshots").string(),
                            [](const std::string& name) { return name.rfind("step-", 0) == 0; });
    // The run's record: its settings and metrics.jsonl, which a resumed run
    // continues from the step of its checkpoint.
    write_config(ranks);
    metrics_ = std::make_unique<MetricsLog>((fs::path(dir_) / "metrics.jsonl").string(),
                                            p_.step > 0 ? p_.step : -1);
  }
  log << task_.describe(ranks) << std::flush;
  if (!has_val)
    log << "no validation text (--split gives it 0 characters): no validation loss, and only "
           "latest.safetensors is written, not best.safetensors\n"
        << std::flush;

  const int64_t session_step0 = p_.step;
  auto epochs_done = [&]() { return double(p_.epoch - 1) + double(p_.chunk) / per_epoch; };
  std::string val_name = "val";  // what the validation ran on
  bool stop_early = false;       // early stopping: no better validation for cfg_.early_stop of them
  auto done = [&]() {
    if (stop_early) return true;
    if (cfg_.max_steps > 0 && p_.step >= cfg_.max_steps) return true;
    if (cfg_.max_epochs > 0 && epochs_done() >= cfg_.max_epochs) return true;
    // A time limit ends a session only after its first step: however short
    // (--time 0.0001s), the run then has a checkpoint to resume from.
    if (cfg_.max_seconds > 0 && p_.step > session_step0 && now() - session0 >= cfg_.max_seconds)
      return true;
    return false;
  };
  float last_lr = 0;  // the rate of the last step taken
  // The eval record: the gradient statistics since the last one, and `extra`
  // (the validation's fields).
  auto log_gradients = [&](const nlohmann::json& extra) {
    if (gw.steps == 0 && extra.empty()) return;
    nlohmann::json rec = {{"kind", "eval"},
                          {"step", p_.step},
                          {"epoch", epochs_done()},
                          {"tokens", p_.tokens},
                          {"elapsed", now() - t0}};
    if (gw.steps > 0) {
      std::ostringstream line;
      char b[160];
      std::snprintf(b, sizeof b,
                    "gradients over %d steps: norm mean %.3g max %.3g, clipped %.0f%% |", gw.steps,
                    gw.norm_sum / gw.steps, gw.norm_max, 100.0 * gw.clipped / gw.steps);
      line << b;
      nlohmann::json per = nlohmann::json::object();
      for (size_t g = 0; g < groups.size(); ++g) {
        std::snprintf(b, sizeof b, " %s %.3g", groups[g].c_str(), gw.group_sum[g] / gw.steps);
        line << b;
        per[groups[g]] = gw.group_sum[g] / gw.steps;
      }
      end_progress_line(log);
      log << line.str() << "\n" << std::flush;
      rec.update({{"train_loss", gw.loss_sum / gw.steps},
                  {"grad_norm_mean", gw.norm_sum / gw.steps},
                  {"grad_norm_max", gw.norm_max},
                  {"clip_fraction", double(gw.clipped) / gw.steps},
                  {"lr", last_lr},
                  {"group_grad_norms", per}});
      if (gw.count > 0) rec["train_accuracy"] = double(gw.right) / double(gw.count);
    }
    rec.update(extra);
    record(rec);
    gw = GradWindow{};
    gw.group_sum.assign(groups.size(), 0.0);
  };
  auto evaluate_and_save = [&]() {
    p_.elapsed = now() - t0;
    if (!task_.gather_state(comm)) return;
    if (has_val) {
      // Averaging (NT-ASGD): validation and best.safetensors use the averaged
      // weights; latest.safetensors keeps the trained ones.
      const bool averaged = opt_->averaging();
      if (averaged) std::swap(m.params, opt_->avg);
      const Validation v = task_.validate();
      val_name = v.on;
      p_.last_val = v.loss;
      const bool best = p_.last_val < p_.best_val;
      if (best) p_.best_val = p_.last_val;
      p_.since_best = best ? 0 : p_.since_best + 1;
      p_.plateau.observe(best, cfg_.patience);
      bool starts = false;
      if (cfg_.asgd > 0 && !averaged &&
          non_monotone_trigger(p_.val_history, p_.last_val, cfg_.asgd)) {
        opt_->start_average(m.params.data());
        starts = true;
      }
      p_.val_history.push_back(p_.last_val);
      end_progress_line(log);
      char epoch[32];
      std::snprintf(epoch, sizeof epoch, ", epoch %.2f", epochs_done());
      log << "eval step " << p_.step << ": " << v.text << epoch << (best ? " (best)" : "") << "\n"
          << std::flush;
      if (starts) {
        log << "NT-ASGD: validation is worse than the best of those more than " << cfg_.asgd
            << " validations ago; averaging the weights from step " << p_.step
            << " on (validation and best.safetensors use the average)\n"
            << std::flush;
        record({{"kind", "asgd"}, {"step", p_.step}});
      }
      // Before the checkpoint: a resume from an older one drops the record.
      nlohmann::json extra = v.record;
      extra["val_loss"] = p_.last_val;
      extra["best_val_loss"] = p_.best_val;
      log_gradients(extra);
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
      if (cfg_.early_stop > 0 && p_.since_best >= cfg_.early_stop) stop_early = true;
    } else {
      log_gradients(nlohmann::json::object());
      save("latest.safetensors");
    }
    task_.local_state_back(comm);
    write_run_report(dir_, command_line);  // the curves so far, RUN_DIR/report.html
  };

  // --snapshot-every: the weights alone (no optimizer moments), at step 0 and
  // on the schedule; every rank takes part in gathering a carried state.
  // --snapshot-budget: past it, the older snapshots are thinned (never the first or last).
  const SnapshotSchedule snapshots = parse_snapshot_schedule(cfg_.snapshot_every);
  const int64_t snapshot_budget = parse_snapshot_budget(cfg_.snapshot_budget);
  bool thinned = false, too_small = false;  // each said once a session
  auto snapshot = [&](bool at_the_end = false) {
    if (!(snapshots.due(p_.step) || (at_the_end && snapshots.on())) || !task_.gather_state(comm))
      return;
    std::error_code ec;
    fs::create_directories(fs::path(dir_) / "snapshots", ec);
    require(!ec,
            "cannot create '" + (fs::path(dir_) / "snapshots").string() + "': " + ec.message());
    nlohmann::json progress = progress_json();
    progress["snapshot"] = true;
    task_.save(snapshot_path(dir_, p_.step), progress, nullptr);
    task_.local_state_back(comm);
    if (snapshot_budget <= 0) return;
    const std::vector<SnapshotFile> files = list_snapshots(dir_);
    const std::vector<size_t> thin = snapshots_to_thin(files, snapshot_budget);
    if (files.size() - thin.size() <= 2 && !too_small) {
      int64_t kept = 0;
      for (size_t i = 0; i < files.size(); ++i)
        if (std::find(thin.begin(), thin.end(), i) == thin.end()) kept += files[i].bytes;
      if (kept > snapshot_budget) {
        too_small = true;
        end_progress_line(log);
        log << "snapshots: --snapshot-budget " << cfg_.snapshot_budget
            << " is smaller than the snapshots that always stay, the first and the last (" << kept
            << " bytes now); they stay" << std::endl;
      }
    }
    for (size_t i : thin) {
      if (!thinned) {
        end_progress_line(log);
        log << "snapshots: over --snapshot-budget " << cfg_.snapshot_budget
            << ", the older ones are thinned (the first and the last stay); first removed: step "
            << files[i].step << std::endl;
      }
      thinned = true;
      fs::remove(files[i].path, ec);
    }
  };

  int nan_run = 0;  // skipped batches in a row
  // Stop conditions hold for all ranks at once (a clock may run ahead on one).
  auto done_everywhere = [&]() { return comm.allreduce_max(done() ? 1 : 0) != 0; };
  Rng dropout_rng;                               // with several ranks: each its own dropout masks
  double reduce_seconds = 0, train_seconds = 0;  // this session: all-reduce, and the steps
  if (done_everywhere()) {  // e.g. a resume whose --steps the run has already reached
    log << "nothing to train: the run is already at step " << p_.step << ", epoch " << p_.epoch
        << "; give a larger --steps or --epochs, or a --time" << std::endl;
    return events;
  }
  if (p_.step == 0) snapshot();  // the initialisation
  while (!done_everywhere()) {
    const double step0 = now();
    if (p_.chunk >= per_epoch) {  // a new epoch
      ++p_.epoch;
      p_.chunk = 0;
      task_.start_epoch(p_.epoch, rank, ranks);
    }
    // Every rank advances rng_ alike; with several, each draws its own masks.
    if (ranks > 1) dropout_rng.reseed(rng_.next() ^ (0x9E3779B97F4A7C15ull * uint64_t(rank + 1)));
    const float lr = last_lr = schedule_lr(sched, p_.step + 1, p_.epoch, p_.plateau.cuts);
    if (cfg_.on_nan == "skip") task_.keep_state();
    const bool poisoned =
        std::find(poison_steps.begin(), poison_steps.end(), p_.step + 1) != poison_steps.end();
    if (poisoned) task_.poison();
    m.zero_grad();
    BatchLoss b = task_.forward(p_.chunk, rank, ranks, ranks > 1 ? dropout_rng : rng_);
    if (poisoned) b.loss = std::numeric_limits<double>::quiet_NaN();
    StepResult r = finish_step(m, *opt_, b, cfg_, lr, comm);
    const double mean = r.loss, norm = r.grad_norm;
    if (!std::isfinite(mean) || !std::isfinite(norm)) {
      // finish_step left the parameters and the optimizer as they were.
      const std::string what = "at step " + std::to_string(p_.step + 1) + " (epoch " +
                               std::to_string(p_.epoch) + ") the loss (" + std::to_string(mean) +
                               ") or the gradient norm (" + std::to_string(norm) +
                               ") is not finite";
      const std::string kept =
          fs::exists(fs::path(dir_) / "latest.safetensors")
              ? "the last checkpoint in '" + dir_ + "' is kept"
              : "no checkpoint was written yet (a smaller --eval-every saves sooner)";
      require(cfg_.on_nan == "skip" && nan_run < kMaxSkippedInARow,
              cfg_.on_nan == "skip"
                  ? what + ", after " + std::to_string(kMaxSkippedInARow) +
                        " skipped batches in a row: stopping; lower --lr or --clip; " + kept
                  : "training diverged: " + what +
                        "; lower --lr or --clip (or --on-nan skip to drop such batches); " + kept);
      task_.restore_state();
      ++p_.skipped, ++nan_run, ++p_.step, ++p_.chunk;
      p_.tokens += b.tokens;
      end_progress_line(log);
      log << "step " << p_.step << ": loss or gradient not finite, batch skipped (" << p_.skipped
          << (p_.skipped == 1 ? " batch" : " batches") << " so far)\n"
          << std::flush;
      record({{"kind", "skip"}, {"step", p_.step}, {"skipped_batches", p_.skipped}});
    } else {
      nan_run = 0;
      if (opt_->averaging()) opt_->add_to_average(m.params.data());
      reduce_seconds += r.reduce_seconds;
      ++p_.step;
      ++p_.chunk;
      p_.tokens += b.tokens;
      events.push_back({p_.step, mean, norm});
      ++gw.steps, gw.clipped += r.clipped, gw.norm_sum += norm, gw.loss_sum += mean;
      gw.norm_max = std::max(gw.norm_max, norm);
      for (size_t g = 0; g < groups.size(); ++g) gw.group_sum[g] += r.group_norms[g];
      if (b.right >= 0) gw.right += b.right, gw.count += b.count;
      window_tokens += b.tokens;
      window_loss += mean;
      if (b.right >= 0) window_right += b.right, window_count += b.count;
      ++window_steps;

      const double tnow = now();
      const bool print_due = cfg_.print_every > 0
                                 ? p_.step % cfg_.print_every == 0
                                 : tnow - last_print >= (live_progress ? 0.5 : 2.0);
      if (print_due) {
        const double tps = window_tokens / std::max(1e-9, tnow - window_t);
        const double sps = window_steps / std::max(1e-9, tnow - window_t);  // steps/s
        double left = -1;
        if (cfg_.max_steps > 0) left = double(cfg_.max_steps - p_.step) / sps;
        if (cfg_.max_epochs > 0) {
          double l2 =
              (cfg_.max_epochs * per_epoch - double(p_.epoch - 1) * per_epoch - p_.chunk) / sps;
          left = left < 0 ? l2 : std::min(left, l2);
        }
        if (cfg_.max_seconds > 0) {
          double l3 = cfg_.max_seconds - (tnow - session0);
          left = left < 0 ? l3 : std::min(left, l3);
        }
        const std::string accuracy =
            window_count > 0
                ? " | accuracy " + fixed(100.0 * double(window_right) / double(window_count), 2) +
                      "%"
                : std::string();
        char buf[240];
        if (live_progress) {  // a terminal: one line redrawn in place
          double done_frac = -1;
          if (cfg_.max_steps > 0) done_frac = double(p_.step) / double(cfg_.max_steps);
          if (cfg_.max_epochs > 0) done_frac = std::max(done_frac, epochs_done() / cfg_.max_epochs);
          if (cfg_.max_seconds > 0)
            done_frac = std::max(done_frac, (tnow - session0) / cfg_.max_seconds);
          done_frac = std::clamp(done_frac, 0.0, 1.0);
          const int full = int(done_frac * 24 + 0.5);
          std::snprintf(buf, sizeof buf,
                        "\r[%s%s] %3.0f%% | step %lld | loss %.4f%s | %.0f tok/s | ETA %s\033[K",
                        std::string(full, '#').c_str(), std::string(24 - full, '.').c_str(),
                        100 * done_frac, (long long)p_.step, window_loss / window_steps,
                        accuracy.c_str(), tps,
                        left >= 0 ? fmt_time(std::max(0.0, left)).c_str() : "?");
          bar_shown_ = true;
        } else {
          std::snprintf(buf, sizeof buf,
                        "step %lld | epoch %.2f | loss %.4f%s | lr %.2g | grad norm %.2f | %.0f "
                        "tok/s | %s%s\n",
                        (long long)p_.step, epochs_done(), window_loss / window_steps,
                        accuracy.c_str(), lr, norm, tps,
                        left >= 0 ? fmt_time(std::max(0.0, left)).c_str() : "",
                        left >= 0 ? " left" : "");
        }
        log << buf << std::flush;
        nlohmann::json rec = {{"kind", "step"},
                              {"step", p_.step},
                              {"epoch", epochs_done()},
                              {"tokens", p_.tokens},
                              {"elapsed", tnow - t0},
                              {"train_loss", window_loss / window_steps},
                              {"lr", lr},
                              {"grad_norm", norm},
                              {"clipped", r.clipped},
                              {"tokens_per_s", tps}};
        if (window_count > 0) rec["train_accuracy"] = double(window_right) / double(window_count);
        record(rec);
        last_print = tnow, window_t = tnow, window_tokens = 0, window_loss = 0, window_steps = 0;
        window_right = 0, window_count = 0;
      }
    }                             // a finite step
    const double pause0 = now();  // evaluation and samples do not count against tokens/s
    train_seconds += pause0 - step0;
    if (cfg_.eval_every > 0 && p_.step % cfg_.eval_every == 0) {
      evaluate_and_save();
      // Rank 0 alone validates: every rank takes its count of plateau cuts, so
      // that all step with the same rate.
      if (ranks > 1) p_.plateau.cuts = comm.allreduce_max(p_.plateau.cuts);
    }
    snapshot();
    if (cosine_by_time && cfg_.lr_total == 0) {  // rank 0's clock decides, for every rank
      const double spent = now() - session0;
      int total = 0;
      if (root && p_.step >= cfg_.warmup && p_.step > session_step0 &&
          spent >= 0.1 * cfg_.max_seconds)
        total = int(std::min<double>(
            p_.step + double(p_.step - session_step0) * (cfg_.max_seconds - spent) / spent,
            std::numeric_limits<int>::max()));
      if (ranks > 1) total = comm.allreduce_max(total);
      if (total > 0) {
        cfg_.lr_total = sched.total = std::max<int64_t>(total, p_.step + 1);
        if (root) {
          end_progress_line(log);
          log << "cosine schedule: at this pace (" << p_.step - session_step0 << " steps in "
              << fmt_time(spent) << ") the --time limit ends near step " << cfg_.lr_total
              << "; the rate reaches " << cfg_.lr_min << " there\n"
              << std::flush;
          record({{"kind", "schedule"}, {"step", p_.step}, {"lr_total", cfg_.lr_total}});
        }
      }
    }
    if (root) {
      const Task::Note note = task_.after_step(p_.step);
      if (!note.log.empty()) {
        end_progress_line(log);
        log << note.log << std::flush;
      }
      if (!note.record.is_null()) record(note.record);
    }
    window_t += now() - pause0;
    if ((interrupted_ = comm.allreduce_max(interrupt_requested())) != 0) break;
  }
  if (interrupted_) {  // Ctrl-C or SIGTERM: save where we are, without validating
    p_.elapsed = now() - t0;
    // The other ranks wait until rank 0 has saved: mpirun ends a job whose
    // first rank exits with an error, rank 0 too.
    auto saved = [&]() { comm.allreduce_max(0); };
    if (!task_.gather_state(comm)) {
      saved();
      return events;
    }
    end_progress_line(log);
    save("latest.safetensors");
    task_.local_state_back(comm);
    record({{"kind", "interrupt"},
            {"step", p_.step},
            {"elapsed", p_.elapsed},
            {"signal", interrupted_}});
    write_run_report(dir_, command_line);
    log << "interrupted at step " << p_.step << " in epoch " << p_.epoch << " ("
        << (interrupted_ == SIGINT ? "Ctrl-C" : "SIGTERM") << "): saved "
        << (fs::path(dir_) / "latest.safetensors").string() << "; continue with: "
        << (ranks > 1 ? "mpirun -np " + std::to_string(ranks) + " " : std::string())
        << task_.resume_command(dir_) << std::endl;
    saved();
    return events;
  }
  if (!snapshots.due(p_.step)) snapshot(true);  // the last step's weights, off the schedule too
  if (cfg_.eval_every == 0 || p_.step % cfg_.eval_every != 0)
    evaluate_and_save();
  else if (root)
    write_run_report(dir_, command_line);  // with the sample of the last step
  const double secs = now() - t0;
  end_progress_line(log);
  if (root && cosine_by_time && cfg_.lr_total == 0)
    log << "note: the cosine never started: its end is set once the warm-up (" << cfg_.warmup
        << " steps) is over and 10% of --time has passed; give a shorter --warmup or a longer "
           "--time\n";
  if (stop_early)
    log << "stopping early: no better validation loss for " << cfg_.early_stop << " validations\n";
  char b[200];
  std::snprintf(b, sizeof b, "done: %lld steps, %lld tokens in %s (%.0f tok/s overall)%s%s\n",
                (long long)p_.step, (long long)p_.tokens, fmt_time(secs).c_str(),
                double(p_.tokens) / std::max(1e-9, secs),
                has_val && p_.best_val < 1e299
                    ? (", best " + val_name + " loss " + std::to_string(p_.best_val)).c_str()
                    : "",
                p_.skipped > 0
                    ? (", " + std::to_string(p_.skipped) + " batches skipped (not finite)").c_str()
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

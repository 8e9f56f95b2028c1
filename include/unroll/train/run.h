// unroll/train/run.h — what "a run" means, once for every task.
//
// The run loop owns: the stop conditions (--steps, --epochs, --time, Ctrl-C
// and SIGTERM, early stopping), the learning-rate schedule and weight
// averaging, the NaN policy (stop, or skip the batch), the progress line,
// RUN/metrics.jsonl and RUN/config.json, the evaluation cadence with
// best.safetensors and latest.safetensors, the report page hook, exact
// resume (the progress record below), and the data-parallel split: with N
// ranks each runs the same loop on its share of every batch, the loss and the
// gradient are summed over the ranks, and rank 0 alone validates and writes.
//
// A task (train/trainer.h: language model; train/classify.h: classifier,
// tagger, conditional model) supplies only its batches, the forward pass of
// its share of one, its validation and what its checkpoint holds.
//
// One step, for every task:
//   task.forward(batch)            → summed loss, scored count (this rank)
//   all-reduce {loss, count, ...}  → the batch's totals on every rank
//   backward(1 / count or 1 / examples, as --loss-norm says)
//   all-reduce the flat gradient   → the whole batch's gradient everywhere
//   clip (norm or value), optimizer step (unless not finite: --on-nan)
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unroll/core/comm.h"
#include "unroll/core/file.h"
#include "unroll/core/rng.h"
#include "unroll/model/model.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/metrics.h"
#include "unroll/train/optimizer.h"

namespace unroll {

// What a task's forward pass over its share of one batch gave; the loop sums
// it over the ranks.
struct BatchLoss {
  double loss = 0;       // summed loss, nats
  int64_t count = 0;     // scored positions: tokens, or sequences
  int64_t examples = 0;  // sequences (streams) in the share
  int64_t tokens = 0;    // positions the model read (for tokens/s)
  int64_t right = -1;    // argmax predictions that were right; -1: not counted
  bool ran = true;       // false: the share was empty, no forward to go backward through
};

// --on-nan skip: this many skipped batches in a row stop the training anyway.
inline constexpr int kMaxSkippedInARow = 100;

// A run's settings. The loop reads the optimisation, schedule, stop, cadence
// and NaN fields; batch, seq, the sample and split fields and the files are
// the language model's (a supervised task builds its TrainConfig from its
// ClassifyConfig, run_config in src/train/sequence_task.cpp).
struct TrainConfig {
  int batch = 50, seq = 50;
  OptimConfig optim;
  std::string clip_mode = "norm";  // "norm" (global L2 norm) or "value" (element-wise)
  double clip = 5.0;               // 0 = no clipping
  // The learning-rate schedule (optimizer.h, Schedule): step (lr × lr_decay
  // each epoch after lr_decay_after), cosine (to lr_min at the last step) or
  // plateau (lr × lr_decay after `patience` validations without a new best),
  // after a linear warm-up of `warmup` steps.
  std::string lr_schedule = "step";
  float lr_decay = 1.0f;
  int lr_decay_after = 0;
  int64_t warmup = 0;
  float lr_min = 0;
  int64_t lr_total = 0;  // cosine: the step where the rate reaches lr_min; set from --steps or
                         // --epochs when the run starts (with --time alone: estimated once
                         // 10% of the time has passed), and kept by every resume
  int patience = 1;
  // NT-ASGD (Merity et al. 2017): 0 = off; n > 0: once a validation loss is
  // worse than the best of those more than n validations before it, the
  // weights are averaged from then on (optimizer.h), and validation and
  // best.safetensors use the average.
  int asgd = 0;
  std::string loss_norm =
      "token";              // "token": mean per token; "batch": sum over steps, mean over batch
  int64_t max_steps = 0;    // 0 = no limit
  double max_epochs = 0;    // 0 = no limit
  double max_seconds = 0;   // 0 = no limit
  int eval_every = 500;     // steps; 0 = only at the end
  int sample_every = 1000;  // steps; 0 = never
  int sample_len = 300;
  float sample_temperature = 0.8f;
  int print_every = 0;  // steps; 0 = about every 2 seconds
  uint64_t seed = 1234;
  double train_frac = 0.9, val_frac = 0.05;
  std::vector<std::string> val_files;  // validation text from these files instead of the split
  std::vector<std::string>
      test_files;  // also evaluated at every validation (reported, never used to pick)
  // A step whose loss or gradient is not finite: "stop" (an error naming the
  // step; the last checkpoint stays) or "skip" (the batch is dropped, the
  // parameters, optimizer and carried state stay as before it, and it is
  // counted; 100 in a row still stop).
  std::string on_nan = "stop";
  // Snapshots of the weights along the way (train/snapshots.h): "" = none,
  // "500", "100x2" or "10,50,300"; step 0 is always kept. A resume keeps it.
  std::string snapshot_every;
  // At most this much in RUN/snapshots ("500M", "2G"; "" = no limit): older
  // snapshots are thinned first, never the first or the last (train/snapshots.h).
  std::string snapshot_budget;
  // Stop after this many validations in a row without a better validation
  // loss (0 = never stop early).
  int early_stop = 0;
  // The checkpoint whose weights this run started from (train --init-from; "" = initialised
  // as ModelConfig::init says). Recorded for the reader; resume starts from the run's own.
  std::string init_from;
  void validate() const;
};
nlohmann::json to_json(const TrainConfig& c);
TrainConfig train_config_from_json(const nlohmann::json& j);

// Parses a duration: "90", "90s", "5m", "1h30m", "2.5h" → seconds. Each
// unit at most once, largest first; plain decimals (no sign, exponent, inf or
// nan). Throws Error with examples otherwise.
double parse_duration(const std::string& s);

struct TrainEvent {  // what the trainer reports, for logs and tests
  int64_t step;
  double train_loss;  // mean nats per token of this step's chunk
  double grad_norm;   // before clipping
};

struct StepResult {
  double loss = 0;                  // mean nats per token of the chunk
  double grad_norm = 0;             // global norm before clipping
  bool clipped = false;             // clipping changed the gradient
  std::vector<double> group_norms;  // before clipping, per grad_groups() entry
  double reduce_seconds = 0;        // spent in the gradient all-reduce (several ranks)
};

// The parameter groups whose gradient norms the trainer reports: "embedding"
// (if any), "layer 1" .. "layer L", "head".
std::vector<std::string> grad_groups(const ModelConfig& cfg);

// The second half of every task's step, after its forward pass: the batch's
// totals summed over the ranks, the backward normalised as cfg.loss_norm
// says ("token": by the scored count; "batch": by the examples), the
// gradient summed over the ranks, clipped, and the optimizer step with rate
// lr — unless the loss or the gradient is not finite, when the parameters
// stay untouched. `local` is this rank's forward; its `ran` false means an
// empty share (no backward, a zero gradient). Returns the totals in `local`.
StepResult finish_step(Stack<float>& m, Optimizer& opt, BatchLoss& local, const TrainConfig& cfg,
                       float lr, Comm& comm);

// A validation: the loss picks best.safetensors.
struct Validation {
  double loss = 0;         // mean nats per scored item
  std::string text;        // for the log, after "eval step N: " (the loop adds " (best)")
  std::string on = "val";  // what it ran on, for the last line: "val" or "training-data"
  nlohmann::json record;   // fields added to metrics.jsonl's eval record
};

class Task {
 public:
  virtual ~Task() = default;
  virtual Stack<float>& model() = 0;
  virtual int64_t batches_per_epoch() const = 0;
  // The lines that open the log: what is trained on what.
  virtual std::string describe(int ranks) const = 0;
  // Called before the first batch of every epoch after the first of this
  // process; start_run() before the first of all (a fresh run, or a resumed
  // one in the middle of an epoch: a carried state goes on from the checkpoint's).
  virtual void start_epoch(int epoch, int rank, int ranks) = 0;
  virtual void start_run(int epoch, int rank, int ranks) { start_epoch(epoch, rank, ranks); }
  // Forward (Mode::Train) over this rank's share of batch `index` of the epoch.
  virtual BatchLoss forward(int64_t index, int rank, int ranks, Rng& rng) = 0;
  // Whether validate() has data; without it no best.safetensors is written.
  virtual bool has_validation() const = 0;
  virtual Validation validate() = 0;  // rank 0
  // The checkpoint at `path`: weights, and what the task needs to go on.
  virtual void save(const std::string& path, const nlohmann::json& progress,
                    const Optimizer* opt) = 0;
  // config.json: {"model", "train", "data", ...} as the task records them.
  virtual nlohmann::json config_json() const = 0;
  // The command that continues this run, for the interrupt message.
  virtual std::string resume_command(const std::string& dir) const = 0;

  // A state carried from batch to batch (the language model's streams):
  // kept before a step the NaN policy may skip, and put back if it is.
  virtual void keep_state() {}
  virtual void restore_state() {}
  // Tests: make this step's arithmetic non-finite.
  virtual void poison() {}
  // Several ranks: the carried state of every stream on rank 0 for a
  // checkpoint (collective; false on the other ranks), and back after it.
  virtual bool gather_state(Comm& comm) { return comm.root(); }
  virtual void local_state_back(Comm&) {}
  // After every step, on rank 0: something to show (a sample), as lines for
  // the log and a metrics.jsonl record; both empty for nothing.
  struct Note {
    std::string log;
    nlohmann::json record;
  };
  virtual Note after_step(int64_t /*step*/) { return {}; }
};

// Where a run is: all a resume needs besides the weights and the optimizer.
struct RunProgress {
  int64_t step = 0, chunk = 0, tokens = 0, skipped = 0;
  int epoch = 1;
  double elapsed = 0;  // seconds of training before this process
  double best_val = 1e300, last_val = 0;
  int since_best = 0;  // validations since the best (early stopping)
  Plateau plateau;     // --lr-schedule plateau: validations without a new best, and cuts
  std::vector<double> val_history;  // every validation loss (NT-ASGD's trigger)
  std::array<uint64_t, 4> rng{};
};

// The command that continues a run of `task` in `dir` exactly: --resume, and
// the thread count (which the order of float sums depends on).
std::string resume_command(const std::string& task, const std::string& dir);

// A new run's folder: Error if it is a file, or holds a run already (its
// latest.safetensors), saying how to continue that one instead.
void require_new_run_folder(const std::string& dir);

// RUN/latest.safetensors of a run of `task`, to resume: errors say what is
// wrong (a missing folder, a damaged file: how to go on from best instead).
Checkpoint load_run_checkpoint(const std::string& dir, const std::string& task);

class RunLoop {
 public:
  // A fresh run of `task` into `dir` (created, and locked, when run() starts).
  RunLoop(Task& task, TrainConfig cfg, std::string dir);
  // Continues from a checkpoint of this run: optimizer state and progress.
  void restore(const Checkpoint& ck, const std::string& path);

  // Trains until a stop condition; logs to `log`; writes the run folder on rank 0.
  std::vector<TrainEvent> run(std::ostream& log);

  void set_comm(Comm& comm) { comm_ = &comm; }
  Comm& comm() { return *comm_; }
  // Takes the run folder's lock (core/file.h) unless held: Error naming the
  // process that holds it. run() takes it on rank 0; a resume takes it before
  // it says anything.
  void lock_run_folder();

  std::string command_line;           // recorded in config.json and the report page
  bool live_progress = false;         // the log is a terminal: a progress bar redrawn in place
  std::vector<int64_t> poison_steps;  // tests: these steps (1-based) are made non-finite

  TrainConfig& config() { return cfg_; }
  const TrainConfig& config() const { return cfg_; }
  const RunProgress& progress() const { return p_; }
  nlohmann::json progress_json() const;
  Optimizer& optimizer() { return *opt_; }
  Rng& rng() { return rng_; }
  const std::string& dir() const { return dir_; }
  int interrupted() const { return interrupted_; }

 private:
  Task& task_;
  TrainConfig cfg_;
  std::string dir_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<FolderLock> lock_;
  Comm* comm_ = &single_process();
  Rng rng_;
  RunProgress p_;
  int interrupted_ = 0;
  bool bar_shown_ = false;
  void save(const std::string& name);
  void end_progress_line(std::ostream& log);
  void record(const nlohmann::json& j) {
    if (metrics_) metrics_->append(j);
  }
  void write_config(int ranks);
};

}  // namespace unroll

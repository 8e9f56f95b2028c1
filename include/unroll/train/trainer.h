// unroll/train/trainer.h — truncated-BPTT training of a language model.
// B parallel streams through the training text, chunks of T steps, the hidden
// state carried from chunk to chunk (reset at each epoch), periodic
// validation, samples and checkpoints (latest and best), exact resume.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unroll/core/comm.h"
#include "unroll/core/file.h"
#include "unroll/core/rng.h"
#include "unroll/model/model.h"
#include "unroll/text/corpus.h"
#include "unroll/text/text_corpus.h"
#include "unroll/train/metrics.h"
#include "unroll/train/optimizer.h"

namespace unroll {

// --on-nan skip: this many skipped batches in a row stop the training anyway.
inline constexpr int kMaxSkippedInARow = 100;

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

// One optimisation step on one chunk: forward, backward (loss normalised as
// cfg.loss_norm says), clipping, optimizer update with learning rate lr.
// When the loss or gradient is not finite the parameters are left untouched.
// Data-parallel: each rank passes its B of the streams; the loss and the
// gradient are summed over the ranks (one all-reduce of the flat gradient)
// before clipping, so every rank takes the same step.
StepResult train_step(Model<float>& m, Optimizer& opt, const int32_t* in, const int32_t* tg, int T,
                      int B, const TrainConfig& cfg, float lr, Rng& rng,
                      Comm& comm = single_process());

class Trainer {
 public:
  // A fresh run. Nothing is written until train() starts.
  Trainer(const ModelConfig& model, const TrainConfig& train, TextCorpus corpus,
          std::string out_dir);
  // Continues the run saved in out_dir/latest.safetensors with the options
  // stored there; `adjust` may change what is safe to change (stop
  // conditions, print/eval/sample frequencies) before training goes on.
  static std::unique_ptr<Trainer> resume(const std::string& out_dir,
                                         const std::function<void(TrainConfig&)>& adjust);

  // Trains until a stop condition; logs to `log`; writes checkpoints.
  // Returns the losses of every step taken (for tests and reports).
  std::vector<TrainEvent> train(std::ostream& log);

  // Data-parallel training: every rank runs train() on the same options;
  // rank r takes streams [r·B/N, (r+1)·B/N) of the B (B must divide by N),
  // the gradients are summed over the ranks at every step, and rank 0 alone
  // validates, samples and writes the run folder. Call before train().
  void set_comm(Comm& comm) { comm_ = &comm; }

  Model<float>& model() { return *model_; }
  std::string command_line;    // recorded in config.json and the report page
  bool live_progress = false;  // the log is a terminal: a progress bar redrawn in place
  const TrainConfig& config() const { return cfg_; }
  int64_t step() const { return step_; }
  int64_t skipped_batches() const { return skipped_; }
  // The signal (SIGINT, SIGTERM) that stopped train() early, or 0. train()
  // then saved latest.safetensors at the step it had reached.
  int interrupted() const { return interrupted_; }
  const std::string& run_dir() const { return dir_; }
  // Takes the run folder's lock (core/file.h, FolderLock) unless this trainer holds it:
  // Error naming the process that does. train() takes it on rank 0; a resume takes it
  // before it says anything, so a second writer is refused before it starts.
  void lock_run_folder();
  // The command that continues this run exactly: --resume, and the thread
  // count (which the order of float sums depends on).
  std::string resume_command() const;
  // Fault injection for tests: before each of these steps (1-based) the
  // carried state is set to NaN, as if the batch's arithmetic had overflowed.
  std::vector<int64_t> poison_steps;
  double best_val() const { return best_val_; }

 private:
  Trainer() = default;
  void prepare();
  nlohmann::json progress_json() const;
  void save(const std::string& name);
  double validate_now();
  void print_sample(std::ostream& log);
  void end_progress_line(std::ostream& log);  // ends the progress bar's line before other output
  bool bar_shown_ = false;

  TrainConfig cfg_;
  TextCorpus corpus_;
  std::vector<int32_t> train_ids_, val_ids_, test_ids_;
  std::unique_ptr<BatchStream> stream_;  // chunks of the training part, built once
  std::string dir_;
  std::unique_ptr<Model<float>> model_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<FolderLock> lock_;  // the run folder's one writer (rank 0)  //
                                      // RUN_DIR/metrics.jsonl, opened by train() on rank 0
  Comm* comm_ = &single_process();
  void record(const nlohmann::json& j) {  // a metrics.jsonl line (rank 0 holds the log)
    if (metrics_) metrics_->append(j);
  }
  Rng rng_;
  int64_t step_ = 0, chunk_ = 0, tokens_ = 0, skipped_ = 0;
  int interrupted_ = 0;
  int epoch_ = 1;
  double elapsed_ = 0;  // seconds of training before this process
  double best_val_ = 1e300, last_val_ = 0, last_test_ = 0;
  Plateau plateau_;  // --lr-schedule plateau: validations without a new best, and cuts
  std::vector<double> val_history_;  // every validation loss so far (NT-ASGD's trigger)
};

}  // namespace unroll

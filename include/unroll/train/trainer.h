// unroll/train/trainer.h — truncated-BPTT training of a language model: the
// language-model task of the run loop (train/run.h). B parallel streams
// through the training text, chunks of T steps, the hidden state carried
// from chunk to chunk (reset at each epoch), validation on held-out text (and
// a test text), samples during training.
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
#include "unroll/train/run.h"

namespace unroll {

// One optimisation step on one chunk: forward, then finish_step (run.h).
// Data-parallel: each rank passes its B of the streams.
StepResult train_step(LanguageModel<float>& m, Optimizer& opt, const int32_t* in, const int32_t* tg,
                      int T, int B, const TrainConfig& cfg, float lr, Rng& rng,
                      Comm& comm = single_process());

class LmTask;

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
  ~Trainer();

  // Trains until a stop condition; logs to `log`; writes checkpoints.
  // Returns the losses of every step taken (for tests and reports).
  std::vector<TrainEvent> train(std::ostream& log);

  // Data-parallel training: every rank runs train() on the same options;
  // rank r takes streams [r·B/N, (r+1)·B/N) of the B (B must divide by N),
  // the gradients are summed over the ranks at every step, and rank 0 alone
  // validates, samples and writes the run folder. Call before train().
  void set_comm(Comm& comm) { loop_->set_comm(comm); }

  LanguageModel<float>& model();
  std::string command_line;    // recorded in config.json and the report page
  bool live_progress = false;  // the log is a terminal: a progress bar redrawn in place
  const TrainConfig& config() const { return loop_->config(); }
  int64_t step() const { return loop_->progress().step; }
  int64_t skipped_batches() const { return loop_->progress().skipped; }
  // The signal (SIGINT, SIGTERM) that stopped train() early, or 0. train()
  // then saved latest.safetensors at the step it had reached.
  int interrupted() const { return loop_->interrupted(); }
  const std::string& run_dir() const { return loop_->dir(); }
  // Takes the run folder's lock (core/file.h, FolderLock) unless this trainer holds it:
  // Error naming the process that does. train() takes it on rank 0; a resume takes it
  // before it says anything, so a second writer is refused before it starts.
  void lock_run_folder() { loop_->lock_run_folder(); }
  // The command that continues this run exactly: --resume, and the thread
  // count (which the order of float sums depends on).
  std::string resume_command() const;
  // Fault injection for tests: before each of these steps (1-based) the
  // carried state is set to NaN, as if the batch's arithmetic had overflowed.
  std::vector<int64_t> poison_steps;
  double best_val() const { return loop_->progress().best_val; }

 private:
  Trainer();
  std::unique_ptr<LmTask> task_;
  std::unique_ptr<RunLoop> loop_;
};

}  // namespace unroll

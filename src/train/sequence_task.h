// src/train/sequence_task.h (internal) — what the supervised tasks share:
// whole sequences in shuffled, length-bucketed batches through the run loop
// (train/run.h). A task (classify.cpp, tag.cpp, conditional.cpp) derives
// from SequenceTask and writes its batch's forward pass and its report; its
// set-up reads the data, builds the vocabulary and the model.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "unroll/core/gemm.h"
#include "unroll/core/rng.h"
#include "unroll/core/shell.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/classify.h"
#include "unroll/train/run.h"

namespace unroll {

// What one batch of a supervised task gave: summed loss, scored positions
// (sequences or tokens) and how many of them the model got right.
struct BatchStats {
  double loss = 0;
  int64_t count = 0, right = 0;
};

// The index of the largest of z[0..n).
inline int argmax(const float* z, int n) { return int(std::max_element(z, z + n) - z); }

// A padded time-major [T, n] matrix (row t·n + i): value(i, t) for t < len(i),
// pad after each sequence's end.
template <class Len, class Value>
std::vector<int32_t> time_major(int T, size_t n, int32_t pad, Len len, Value value) {
  std::vector<int32_t> out(size_t(T) * n, pad);
  for (size_t i = 0; i < n; ++i)
    for (size_t t = 0; t < len(i); ++t) out[t * n + i] = value(i, t);
  return out;
}

// The longest of the sequences idx[0..n), less `shorter`.
inline int longest(const std::vector<std::vector<int32_t>>& seqs, const size_t* idx, size_t n,
                   int shorter = 0) {
  int T = 0;
  for (size_t i = 0; i < n; ++i) T = std::max(T, int(seqs[idx[i]].size()) - shorter);
  return T;
}

// Indices in length order, so that a batch holds sequences of similar lengths.
std::vector<size_t> by_length(const std::vector<std::vector<int32_t>>& seqs);
std::vector<size_t> lengths_of(const std::vector<std::vector<int32_t>>& seqs);

template <class V>
void shuffle(V& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// A path made absolute, as checkpoints store them.
std::string absolute(const std::string& p);

// The report of predictions: for each scored item its true class and the
// model's probabilities over the classes.
class ReportBuilder {
 public:
  explicit ReportBuilder(const std::vector<std::string>& classes) {
    r_.classes = classes;
    r_.confusion.assign(classes.size(), std::vector<int64_t>(classes.size(), 0));
  }
  void add(int y, const std::vector<float>& p) {
    require(y >= 0 && size_t(y) < r_.classes.size(), "internal: evaluation needs labels");
    const int pred = int(std::max_element(p.begin(), p.end()) - p.begin());
    r_.confusion[y][pred] += 1;
    right_ += pred == y;
    r_.loss -= std::log(std::max(double(p[y]), 1e-30));
    ++r_.examples;
  }
  ClassReport finish() {
    ClassReport r = r_;
    const size_t C = r.classes.size();
    r.precision.assign(C, 0), r.recall.assign(C, 0), r.f1.assign(C, 0), r.support.assign(C, 0);
    if (!r.examples) return r;
    r.loss /= double(r.examples);
    r.accuracy = double(right_) / double(r.examples);
    for (size_t c = 0; c < C; ++c) {
      int64_t predicted = 0;
      for (size_t k = 0; k < C; ++k)
        r.support[c] += r.confusion[c][k], predicted += r.confusion[k][c];
      const double tp = double(r.confusion[c][c]);
      r.precision[c] = predicted ? tp / double(predicted) : 0;
      r.recall[c] = r.support[c] ? tp / double(r.support[c]) : 0;
      const double pr = r.precision[c] + r.recall[c];
      r.f1[c] = pr > 0 ? 2 * r.precision[c] * r.recall[c] / pr : 0;
      r.macro_f1 += r.f1[c] / double(C);
    }
    return r;
  }

 private:
  ClassReport r_;
  size_t right_ = 0;
};

// Splits train_path (or takes --val) into training and validation examples:
// --val FILE, or a seeded --val-fraction of the (--dedupe'd) examples.
void split_data(const ClassifyConfig& cfg, const std::string& train_path, LabelledExamples& train,
                LabelledExamples& val);
void split_data(const ClassifyConfig& cfg, const std::string& train_path, TaggedSequences& train,
                TaggedSequences& val);

// Whole sequences, each from a zero (or its category's) state, in shuffled
// batches of similar lengths: classification, tagging and conditional
// language models. Each supplies its batch's forward pass and its report.
class SequenceTask : public Task {
 public:
  std::string kind;  // the checkpoint's task: "classify", "tag" or "conditional"
  ClassifyConfig cfg;
  Vocab vocab;
  nlohmann::json model_json, train_json, data;
  std::unique_ptr<Stack<float>> model_;
  std::vector<size_t> lengths;  // of every training example
  std::string intro;            // the log's first lines
  bool has_val = false;         // else the report is on the training examples
  double best_loss = 1e300, best_accuracy = 0, last_accuracy = 0;

  // Forward (Mode::Train) over training examples idx[0..n).
  virtual BatchStats forward_examples(const size_t* idx, size_t n, Rng& rng) = 0;
  virtual ClassReport report() = 0;  // on the validation examples (or the training ones)

  Stack<float>& model() override { return *model_; }
  int64_t batches_per_epoch() const override {
    return int64_t((lengths.size() + cfg.batch - 1) / cfg.batch);
  }
  std::string describe(int ranks) const override {
    return intro + (ranks > 1 ? std::to_string(ranks) + " ranks share every batch\n" : "");
  }
  // Every rank takes a share of every batch: a batch smaller than the ranks
  // would leave some of them idle at every step.
  void start_run(int epoch, int rank, int ranks) override {
    require(cfg.batch >= ranks, "--batch " + std::to_string(cfg.batch) + " is smaller than the " +
                                    std::to_string(ranks) +
                                    " ranks, which share every batch: some would idle at every "
                                    "step; give --batch " +
                                    std::to_string(ranks) + " or more, or run fewer ranks");
    start_epoch(epoch, rank, ranks);
  }
  // The epoch's batches: shuffle, sort windows of 50 batches by length, cut,
  // then shuffle the batches' order; drawn from the seed and the epoch alone,
  // so that a resume in the middle of an epoch goes on with the same batches.
  void start_epoch(int epoch, int, int) override {
    Rng rng(cfg.seed ^ (0xD1B54A32D192ED03ull * uint64_t(epoch)));
    order.resize(lengths.size());
    std::iota(order.begin(), order.end(), 0);
    shuffle(order, rng);
    const size_t window = size_t(cfg.batch) * 50;
    for (size_t w = 0; w < order.size(); w += window)
      std::stable_sort(order.begin() + w, order.begin() + std::min(order.size(), w + window),
                       [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
    starts.clear();
    for (size_t s = 0; s < order.size(); s += cfg.batch) starts.push_back(s);
    shuffle(starts, rng);
  }
  // Several ranks: rank r takes examples [r·n/N, (r+1)·n/N) of the batch's n.
  BatchLoss forward(int64_t index, int rank, int ranks, Rng& rng) override {
    const size_t from = starts[size_t(index)], n = std::min(order.size() - from, size_t(cfg.batch));
    const size_t a = n * size_t(rank) / size_t(ranks), b = n * size_t(rank + 1) / size_t(ranks);
    if (a == b) return {0, 0, 0, 0, 0, false};
    const BatchStats s = forward_examples(order.data() + from + a, b - a, rng);
    int64_t tokens = 0;
    for (size_t i = a; i < b; ++i) tokens += int64_t(lengths[order[from + i]]);
    return {s.loss, s.count, int64_t(b - a), tokens, s.right, true};
  }
  bool has_validation() const override { return true; }
  Validation validate() override {
    const ClassReport r = report();
    if (r.loss < best_loss) best_loss = r.loss, best_accuracy = r.accuracy;
    last_accuracy = r.accuracy;
    char b[160];
    std::snprintf(b, sizeof b, "%s loss %.4f nats, accuracy %.2f%%",
                  has_val ? "val" : "training-data", r.loss, 100 * r.accuracy);
    Validation v;
    v.loss = r.loss;
    v.text = b;
    v.record = {{"val_accuracy", r.accuracy}, {"on", has_val ? "validation" : "training"}};
    v.on = has_val ? "val" : "training-data";
    return v;
  }
  void save(const std::string& path, const nlohmann::json& progress,
            const Optimizer* opt) override {
    nlohmann::json p = progress;
    p["val_accuracy"] = last_accuracy;
    p["best_accuracy"] = best_accuracy;
    if (auto* lm = dynamic_cast<LanguageModel<float>*>(model_.get()))
      lm->clear_state();  // tagger, conditional: nothing is carried between sequences
    save_checkpoint(path, *model_, vocab, train_json, p, data, opt);
  }
  nlohmann::json config_json() const override {
    return {{"model", model_json}, {"train", train_json}, {"data", data}};
  }
  std::string resume_command(const std::string& dir) const override {
    return unroll::resume_command(kind, dir);
  }

 private:
  std::vector<size_t> order, starts;  // this epoch's examples, and where each batch starts
};

// A fresh run (ck null) or a resume of one: trains `task` through the run
// loop, then reports on the best checkpoint (validation, or training data).
ClassReport run_sequence_task(SequenceTask& task, const std::string& out_dir, std::ostream& log,
                              const std::string& command_line, Comm& comm, const Checkpoint* ck,
                              const std::vector<int64_t>& poison_steps);

// The hash of the training examples as token ids (and their labels), so
// that a resume recognises its data.
std::string examples_hash(const std::vector<std::vector<int32_t>>& seqs,
                          const std::vector<int32_t>& labels);
std::string examples_hash(const EncodedExamples& ex);
std::string examples_hash(const EncodedTags& ex);  // the tags of every sequence, in order

// Where a run's validation examples come from, for messages: "'val.tsv'", or
// "the split of 'train.tsv'".
std::string validation_source(const ClassifyConfig& c, const std::string& train_path);

// The model of a fresh run (from mc), or of the checkpoint it resumes (which
// must have been trained on these examples, with this vocabulary).
void take_model(SequenceTask& t, const ModelConfig& mc, Checkpoint* ck, const std::string& hash,
                const std::string& val_hash, const std::string& train_path);

// The three tasks' set-ups: the data read and split, the vocabulary, the
// model (fresh, or the checkpoint's when ck is given).
std::unique_ptr<SequenceTask> classify_task(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                                            const std::string& train_path,
                                            const std::string& command_line, Checkpoint* ck);
std::unique_ptr<SequenceTask> tag_task(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                                       const std::string& train_path,
                                       const std::string& command_line, Checkpoint* ck);
std::unique_ptr<SequenceTask> conditional_task(const ModelConfig& model_cfg,
                                               const ClassifyConfig& cfg,
                                               const std::string& train_path,
                                               const std::string& command_line, Checkpoint* ck);

}  // namespace unroll

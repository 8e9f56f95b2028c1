#include "unroll/train/classify.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <ostream>
#include <set>
#include <sstream>

#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/core/gemm.h"
#include "unroll/core/hash.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/json.h"
#include "unroll/core/rng.h"
#include "unroll/core/shell.h"
#include "unroll/text/utf8.h"
#include "unroll/text/words.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/metrics.h"
#include "unroll/train/trainer.h"

namespace unroll {

void ClassifyConfig::validate() const {
  format.validate();
  require(batch >= 1 && batch <= 100000, "--batch must be in 1..100000");
  require(optim.lr > 0 && std::isfinite(optim.lr), "--lr must be a positive number");
  require(clip >= 0 && std::isfinite(clip), "--clip must be 0 (off) or a positive number");
  require(clip_mode == "norm" || clip_mode == "value",
          "--clip-mode must be 'norm' or 'value' (got '" + clip_mode + "')");
  require(max_epochs >= 1, "--epochs must be at least 1");
  require(max_steps >= 0, "--steps must be 0 (no limit) or more");
  require(patience >= 0, "--patience must be 0 (never stop early) or more");
  require(max_seconds >= 0, "--time must not be negative");
  require(val_fraction >= 0 && val_fraction < 1, "--val-fraction must be in [0, 1)");
  require(class_weights == "none" || class_weights == "balanced",
          "--class-weights must be none or balanced");
  require(max_len >= 0, "--max-len must be 0 (no limit) or more");
  require(separator == '\t' || separator == ' ', "the separator must be tab or space");
  require(on_nan == "stop" || on_nan == "skip",
          "--on-nan must be 'stop' or 'skip' (got '" + on_nan + "')");
}

nlohmann::json to_json(const ClassifyConfig& c) {
  return {{"task", "classify"},
          {"format", c.format.to_json()},
          {"separator", c.separator == '\t' ? "tab" : "space"},
          {"batch", c.batch},
          {"optim", to_json(c.optim)},
          {"clip", c.clip},
          {"clip_mode", c.clip_mode},
          {"max_steps", c.max_steps},
          {"max_epochs", c.max_epochs},
          {"patience", c.patience},
          {"max_seconds", c.max_seconds},
          {"val_file", c.val_file},
          {"val_fraction", c.val_fraction},
          {"class_weights", c.class_weights},
          {"max_len", c.max_len},
          {"dedupe", c.dedupe},
          {"seed", c.seed},
          {"on_nan", c.on_nan}};
}

ClassifyConfig classify_config_from_json(const nlohmann::json& j) {
  try {
    ClassifyConfig c;
    c.format = TextFormat::from_json(j.value("format", nlohmann::json()));
    c.separator = j.value("separator", "tab") == "space" ? ' ' : '\t';
    c.batch = json_field(j, "batch", c.batch);
    if (j.contains("optim")) c.optim = optim_config_from_json(j["optim"]);
    c.clip = json_field(j, "clip", c.clip);
    c.clip_mode = j.value("clip_mode", c.clip_mode);  // absent before it existed
    c.max_epochs = json_field(j, "max_epochs", c.max_epochs);
    c.max_steps = json_field(j, "max_steps", c.max_steps);
    c.patience = json_field(j, "patience", c.patience);
    c.max_seconds = json_field(j, "max_seconds", c.max_seconds);
    c.val_file = j.value("val_file", "");
    c.val_fraction = json_field(j, "val_fraction", c.val_fraction);
    c.class_weights = j.value("class_weights", c.class_weights);
    c.max_len = json_field(j, "max_len", c.max_len);
    c.dedupe = j.value("dedupe", false);
    c.seed = json_field(j, "seed", c.seed);
    c.on_nan = j.value("on_nan", c.on_nan);
    c.validate();
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("the classification settings are malformed: ") + e.what());
  }
}

Vocab classify_vocab(const LabelledExamples& ex, const TextFormat& f) {
  std::vector<std::string> all;
  for (size_t i = 0; i < ex.size(); ++i) {
    auto t = tokenize(ex.texts[i], f, ex.where[i]);
    all.insert(all.end(), t.begin(), t.end());
  }
  return Vocab::from_words(all, f.min_count, f.max_vocab);
}

EncodedExamples encode_examples(const LabelledExamples& ex, const Vocab& vocab, const TextFormat& f,
                                const std::vector<std::string>& classes, int max_len) {
  EncodedExamples out;
  out.where = ex.where;
  for (size_t i = 0; i < ex.size(); ++i) {
    auto tokens = tokenize(ex.texts[i], f, ex.where[i]);
    require(!tokens.empty(), ex.where[i] + ": the text has no tokens");
    if (max_len > 0 && int(tokens.size()) > max_len) tokens.resize(max_len);
    out.seqs.push_back(vocab.encode_words(tokens));
  }
  if (classes.empty())
    out.labels.assign(ex.size(), -1);
  else {
    auto ids = label_ids(ex.labels, ex.where, classes);
    out.labels.assign(ids.begin(), ids.end());
  }
  return out;
}

namespace {

// A padded, time-major batch of the examples idx[0 .. n).
struct Batch {
  std::vector<int32_t> ids, lengths, labels;
  std::vector<float> weights;
  int T = 0, B = 0;
};

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
int longest(const std::vector<std::vector<int32_t>>& seqs, const size_t* idx, size_t n,
            int shorter = 0) {
  int T = 0;
  for (size_t i = 0; i < n; ++i) T = std::max(T, int(seqs[idx[i]].size()) - shorter);
  return T;
}

Batch make_batch(const EncodedExamples& ex, const size_t* idx, size_t n,
                 const std::vector<float>* class_weight) {
  Batch b;
  b.B = int(n);
  b.T = longest(ex.seqs, idx, n);
  b.ids = time_major(
      b.T, n, 0, [&](size_t i) { return ex.seqs[idx[i]].size(); },
      [&](size_t i, size_t t) { return ex.seqs[idx[i]][t]; });
  for (size_t i = 0; i < n; ++i) {
    const size_t e = idx[i];
    b.lengths.push_back(int32_t(ex.seqs[e].size()));
    b.labels.push_back(ex.labels[e]);
    if (class_weight) b.weights.push_back(ex.labels[e] >= 0 ? (*class_weight)[ex.labels[e]] : 0.f);
  }
  return b;
}

// Indices in length order, so that a batch holds sequences of similar lengths.
std::vector<size_t> by_length(const std::vector<std::vector<int32_t>>& seqs) {
  std::vector<size_t> idx(seqs.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](size_t a, size_t b) { return seqs[a].size() < seqs[b].size(); });
  return idx;
}

std::vector<size_t> lengths_of(const std::vector<std::vector<int32_t>>& seqs) {
  std::vector<size_t> out;
  for (auto& s : seqs) out.push_back(s.size());
  return out;
}

template <class V>
void shuffle(V& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// The validation part of n examples: a seeded shuffle, its first
// round(fraction · n) positions. The rest is for training.
std::vector<bool> validation_mask(size_t n, double fraction, uint64_t seed) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  Rng rng(seed ^ 0x5eed5011ull);
  shuffle(idx, rng);
  std::vector<bool> val(n, false);
  const size_t k = size_t(std::llround(fraction * double(n)));
  for (size_t i = 0; i < k; ++i) val[idx[i]] = true;
  return val;
}

// The examples whose mask entry equals keep, every field of each.
template <class Examples, class... Field>
Examples select_fields(const Examples& ex, const std::vector<bool>& mask, bool keep,
                       Field Examples::*... field) {
  Examples out;
  for (size_t i = 0; i < ex.size(); ++i)
    if (mask[i] == keep) ((out.*field).push_back((ex.*field)[i]), ...);
  return out;
}
LabelledExamples select(const LabelledExamples& ex, const std::vector<bool>& mask, bool keep) {
  return select_fields(ex, mask, keep, &LabelledExamples::texts, &LabelledExamples::labels,
                       &LabelledExamples::where);
}
TaggedSequences select(const TaggedSequences& ex, const std::vector<bool>& mask, bool keep) {
  return select_fields(ex, mask, keep, &TaggedSequences::tokens, &TaggedSequences::labels,
                       &TaggedSequences::where);
}

// The examples with repeats of an earlier (label, text) pair dropped (when on).
LabelledExamples unique_examples(LabelledExamples ex, bool on) {
  if (!on) return ex;
  std::set<std::pair<std::string, std::string>> seen;
  std::vector<bool> keep(ex.size());
  for (size_t i = 0; i < ex.size(); ++i) keep[i] = seen.emplace(ex.labels[i], ex.texts[i]).second;
  return select(ex, keep, true);
}
TaggedSequences unique_examples(TaggedSequences ex, bool) { return ex; }

// The labels of example i (one for a sequence, one per token when tagged).
std::vector<std::string> labels_of(const LabelledExamples& ex, size_t i) { return {ex.labels[i]}; }
std::vector<std::string> labels_of(const TaggedSequences& ex, size_t i) { return ex.labels[i]; }

// The seeded split, then every validation example with a label that no
// training example has goes back to training (a class of one example would
// otherwise be unknown to the model it validates).
template <class Examples>
std::vector<bool> validation_mask(const Examples& ex, double fraction, uint64_t seed) {
  std::vector<bool> val = validation_mask(ex.size(), fraction, seed);
  std::set<std::string> known;
  for (size_t i = 0; i < ex.size(); ++i)
    if (!val[i])
      for (auto& l : labels_of(ex, i)) known.insert(l);
  for (size_t i = 0; i < ex.size(); ++i)
    if (val[i])
      for (auto& l : labels_of(ex, i))
        if (!known.count(l)) {
          val[i] = false;
          break;
        }
  return val;
}

int classes_of(const ModelConfig& c) { return c.head == HeadKind::Sigmoid ? 2 : c.outputs; }

std::string absolute(const std::string& p) {
  return std::filesystem::absolute(p).lexically_normal().string();
}

void prepare_out_dir(const std::string& out_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  require(!ec, "cannot create the run folder '" + out_dir + "': " + ec.message());
  for (const char* name : {"best.safetensors", "latest.safetensors"})
    check_output_path((fs::path(out_dir) / name).string(), "checkpoint");
}

}  // namespace

std::vector<std::vector<float>> class_probabilities(Model<float>& m, const EncodedExamples& ex,
                                                    int batch) {
  const int C = classes_of(m.config());
  std::vector<std::vector<float>> out(ex.size(), std::vector<float>(C));
  const std::vector<size_t> idx = by_length(ex.seqs);
  for (size_t from = 0; from < idx.size(); from += batch) {
    const size_t n = std::min(idx.size() - from, size_t(batch));
    Batch b = make_batch(ex, idx.data() + from, n, nullptr);
    m.classify(b.ids.data(), b.lengths.data(), nullptr, nullptr, b.T, b.B, Mode::Eval);
    const float* z = m.logits();
    for (size_t i = 0; i < n; ++i) {
      auto& p = out[idx[from + i]];
      if (m.config().head == HeadKind::Sigmoid) {
        p[1] = sigmoid(z[i]);
        p[0] = 1 - p[1];
      } else {
        const float* zi = z + i * C;
        const float mx = *std::max_element(zi, zi + C);
        double s = 0;
        for (int k = 0; k < C; ++k) s += (p[k] = std::exp(zi[k] - mx));
        for (int k = 0; k < C; ++k) p[k] = float(p[k] / s);
      }
    }
  }
  return out;
}

namespace {

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

}  // namespace

ClassReport evaluate_classes(Model<float>& m, const EncodedExamples& ex,
                             const std::vector<std::string>& classes, int batch) {
  require(int(classes.size()) == classes_of(m.config()), "internal: class list and model disagree");
  ReportBuilder rb(classes);
  const auto probs = class_probabilities(m, ex, batch);
  for (size_t i = 0; i < ex.size(); ++i) rb.add(ex.labels[i], probs[i]);
  return rb.finish();
}

std::string ClassReport::text() const {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "accuracy %.2f%% (%zu %s), loss %.4f nats, macro F1 %.4f\n\n",
                100 * accuracy, examples, unit.c_str(), loss, macro_f1);
  s += buf;
  size_t w = 5;
  // Labels come from the user's files: shown with their control characters
  // visible (an ESC would recolour the terminal and skew the columns).
  for (auto& c : classes) w = std::max(w, display_width(escape_controls(c)));
  auto name = [&](const std::string& c) {
    const std::string shown = escape_controls(c);
    return shown + std::string(w - std::min(w, display_width(shown)), ' ');
  };
  std::snprintf(buf, sizeof buf, "  %9s  %9s  %9s  %7s\n", "precision", "recall", "F1", "support");
  s += name("class") + buf;
  for (size_t c = 0; c < classes.size() && c < precision.size(); ++c) {
    std::snprintf(buf, sizeof buf, "  %9.4f  %9.4f  %9.4f  %7lld\n", precision[c], recall[c], f1[c],
                  (long long)support[c]);
    s += name(classes[c]) + buf;
  }
  s += "\nconfusion matrix (rows: true class, columns: predicted, in class order above)\n";
  for (size_t c = 0; c < confusion.size(); ++c) {
    s += name(classes[c]) + " ";
    for (auto v : confusion[c]) {
      std::snprintf(buf, sizeof buf, " %5lld", (long long)v);
      s += buf;
    }
    s += "\n";
  }
  return s;
}

nlohmann::json ClassReport::to_json() const {
  return {{"classes", classes},     {"examples", examples},  {"unit", unit},
          {"loss", loss},           {"accuracy", accuracy},  {"macro_f1", macro_f1},
          {"precision", precision}, {"recall", recall},      {"f1", f1},
          {"support", support},     {"confusion", confusion}};
}

namespace {
template <class Examples, class Read>
Examples validation_part(const nlohmann::json& train, const nlohmann::json& data, Read read) {
  const ClassifyConfig c = classify_config_from_json(train);
  if (!c.val_file.empty()) return read(c.val_file, c);
  require(c.val_fraction > 0, "this model was trained without validation data");
  const std::string path = data.value("train_path", "");
  Examples all = unique_examples(read(path, c), c.dedupe);
  require(all.size() == data.value("examples", size_t(0)),
          "'" + path + "' has changed since training (" + std::to_string(all.size()) +
              " examples, was " + std::to_string(data.value("examples", size_t(0))) +
              "): its validation split cannot be rebuilt");
  return select(all, validation_mask(all, c.val_fraction, c.seed), true);
}
}  // namespace

LabelledExamples validation_examples(const nlohmann::json& train, const nlohmann::json& data) {
  return validation_part<LabelledExamples>(
      train, data,
      [](const std::string& p, const ClassifyConfig& c) { return read_labelled(p, c.separator); });
}

TaggedSequences validation_sequences(const nlohmann::json& train, const nlohmann::json& data) {
  return validation_part<TaggedSequences>(
      train, data, [](const std::string& p, const ClassifyConfig&) { return read_tagged(p); });
}

namespace {

// What one batch of a supervised task gave: summed loss, scored positions
// (sequences or tokens) and how many of them the model got right.
struct BatchStats {
  double loss = 0;
  int64_t count = 0, right = 0;
};

// The index of the largest of z[0..n).
int argmax(const float* z, int n) { return int(std::max_element(z, z + n) - z); }

// The run loop's settings for a supervised task: one validation per epoch
// (early stopping counts them), every other choice the task's options.
TrainConfig run_config(const ClassifyConfig& c, int64_t batches_per_epoch, bool has_val) {
  TrainConfig t;
  t.batch = c.batch;
  t.optim = c.optim;
  t.clip = c.clip;
  t.clip_mode = c.clip_mode;
  t.max_steps = c.max_steps;
  t.max_epochs = c.max_epochs;
  t.max_seconds = c.max_seconds;
  t.eval_every = int(std::min<int64_t>(batches_per_epoch, std::numeric_limits<int>::max()));
  t.sample_every = 0;
  t.seed = c.seed;
  t.on_nan = c.on_nan;
  t.early_stop = has_val ? c.patience : 0;  // no early stopping on the training loss
  t.loss_norm = "token";                    // the mean over the scored sequences or tokens
  return t;
}

// Whole sequences, each from a zero (or its category's) state, in shuffled
// batches of similar lengths: classification, tagging and conditional
// language models. Each supplies its batch's forward pass and its report.
class SequenceTask : public Task {
 public:
  std::string kind;  // the checkpoint's task: "classify", "tag" or "conditional"
  ClassifyConfig cfg;
  Vocab vocab;
  nlohmann::json model_json, train_json, data;
  std::unique_ptr<Model<float>> model_;
  std::vector<size_t> lengths;  // of every training example
  std::string intro;            // the log's first lines
  bool has_val = false;         // else the report is on the training examples
  double best_loss = 1e300, best_accuracy = 0, last_accuracy = 0;

  // Forward (Mode::Train) over training examples idx[0..n).
  virtual BatchStats forward_examples(const size_t* idx, size_t n, Rng& rng) = 0;
  virtual ClassReport report() = 0;  // on the validation examples (or the training ones)

  Model<float>& model() override { return *model_; }
  int64_t batches_per_epoch() const override {
    return int64_t((lengths.size() + cfg.batch - 1) / cfg.batch);
  }
  std::string describe(int ranks) const override {
    return intro + (ranks > 1 ? std::to_string(ranks) + " ranks share every batch\n" : "");
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
                  has_val ? "val" : "loss on the training data", r.loss, 100 * r.accuracy);
    return {r.loss, b, {{"val_accuracy", r.accuracy}, {"on", has_val ? "validation" : "training"}}};
  }
  void save(const std::string& path, const nlohmann::json& progress,
            const Optimizer* opt) override {
    nlohmann::json p = progress;
    p["val_accuracy"] = last_accuracy;
    p["best_accuracy"] = best_accuracy;
    model_->clear_state();  // nothing is carried between sequences
    save_checkpoint(path, *model_, vocab, train_json, p, data, opt);
  }
  nlohmann::json config_json() const override {
    return {{"model", model_json}, {"train", train_json}, {"data", data}};
  }
  std::string resume_command(const std::string& dir) const override {
    return "unroll " +
           std::string(kind == "classify" ? "classify train"
                       : kind == "tag"    ? "tag train"
                                          : "conditional") +
           " --resume " + shell_quote(dir) + " --threads " + std::to_string(get_threads());
  }

 private:
  std::vector<size_t> order, starts;  // this epoch's examples, and where each batch starts
};

// A fresh run (ck null) or a resume of one: trains `task` through the run
// loop, then reports on the best checkpoint (validation, or training data).
ClassReport run_sequence_task(SequenceTask& task, const std::string& out_dir, std::ostream& log,
                              const std::string& command_line, Comm& comm, const Checkpoint* ck,
                              const std::vector<int64_t>& poison_steps) {
  namespace fs = std::filesystem;
  if (comm.root() && !ck) prepare_out_dir(out_dir);
  RunLoop loop(task, run_config(task.cfg, task.batches_per_epoch(), task.has_val), out_dir);
  loop.command_line = command_line;
  if (ck) {
    loop.restore(*ck, (fs::path(out_dir) / "latest.safetensors").string());
    if (comm.root()) {
      loop.lock_run_folder();  // before anything is said: a second writer is refused at once
      log << "resuming '" << out_dir << "' at step " << loop.progress().step << "\n";
    }
    task.best_loss = loop.progress().best_val;
    task.best_accuracy = json_field(ck->progress, "best_accuracy", 0.0);
  } else {
    task.model_->init(loop.rng());  // the run's generator goes on to dropout
  }
  loop.set_comm(comm);
  loop.poison_steps = poison_steps;
  loop.run(log);
  if (loop.interrupted() || !comm.root()) return {};
  const std::string best = (fs::path(out_dir) / "best.safetensors").string();
  Checkpoint b = load_checkpoint(best);
  std::swap(task.model_, b.model);
  ClassReport r = task.report();
  std::swap(task.model_, b.model);
  r.on_training_data = !task.has_val;
  log << "best checkpoint: " << best << "\n";
  return r;
}

// Splits train_path (or takes --val) into training and validation examples.
template <class Examples, class Read>
void split_data(const ClassifyConfig& cfg, const std::string& train_path, Read read,
                Examples& train, Examples& val) {
  Examples all = unique_examples(read(train_path), cfg.dedupe);
  if (!cfg.val_file.empty()) {
    train = std::move(all);
    val = read(cfg.val_file);
  } else if (cfg.val_fraction > 0) {
    const auto mask = validation_mask(all, cfg.val_fraction, cfg.seed);
    train = select(all, mask, false);
    val = select(all, mask, true);
    require(train.size() > 0 && val.size() > 0,
            "'" + train_path + "': too few examples (" + std::to_string(all.size()) +
                ") to split off a validation part; give --val FILE or --val-fraction 0");
  } else {
    train = std::move(all);
  }
}

// The hash of the training examples as token ids (and their labels), so
// that a resume recognises its data.
std::string examples_hash(const std::vector<std::vector<int32_t>>& seqs,
                          const std::vector<int32_t>& labels) {
  uint64_t h = fnv1a64(labels.data(), labels.size() * sizeof(int32_t));
  for (const auto& s : seqs) {
    const uint64_t n = s.size();
    h = fnv1a64(&n, sizeof n, h);
    h = fnv1a64(s.data(), s.size() * sizeof(int32_t), h);
  }
  return std::to_string(h);
}

// The model of a fresh run (from mc), or of the checkpoint it resumes (which
// must have been trained on these examples, with this vocabulary).
void take_model(SequenceTask& t, const ModelConfig& mc, Checkpoint* ck, const std::string& hash,
                const std::string& train_path) {
  t.data["examples_hash"] = hash;
  if (ck) {
    bool same = ck->vocab.size() == t.vocab.size() && ck->data.value("examples_hash", "") == hash;
    for (int i = 0; same && i < t.vocab.size(); ++i) same = ck->vocab.token(i) == t.vocab.token(i);
    require(same, "cannot resume: the training examples in '" + train_path +
                      "' changed since the run began (their tokens or labels differ)");
    t.data = ck->data;  // with the command that began the run
    t.model_ = std::move(ck->model);
  } else {
    t.model_ = std::make_unique<Model<float>>(mc);
  }
  t.model_json = to_json(t.model_->config());
}

class ClassifyTask : public SequenceTask {
 public:
  EncodedExamples train, val;
  std::vector<std::string> classes;
  std::vector<float> weight;  // per class (--class-weights)
  Batch batch;
  BatchStats forward_examples(const size_t* idx, size_t n, Rng& rng) override {
    Model<float>& m = *model_;
    Batch& b = batch = make_batch(train, idx, n, &weight);  // the backward reads it
    LossSum l = m.classify(b.ids.data(), b.lengths.data(), b.labels.data(), b.weights.data(), b.T,
                           b.B, Mode::Train, &rng);
    BatchStats s{l.sum, int64_t(n), 0};
    const float* z = m.logits();
    const int K = m.config().outputs;
    for (size_t i = 0; i < n; ++i)
      s.right += (K == 1 ? int(z[i] > 0) : argmax(z + i * K, K)) == b.labels[i];
    return s;
  }
  ClassReport report() override {
    return evaluate_classes(*model_, has_val ? val : train, classes);
  }
};

std::unique_ptr<SequenceTask> classify_task(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                                            const std::string& train_path,
                                            const std::string& command_line, Checkpoint* ck) {
  cfg.validate();
  auto t = std::make_unique<ClassifyTask>();
  LabelledExamples train_ex, val_ex;
  split_data(
      cfg, train_path, [&](const std::string& p) { return read_labelled(p, cfg.separator); },
      train_ex, val_ex);
  t->classes = label_set(train_ex.labels);
  const auto& classes = t->classes;
  require(classes.size() >= 2, "'" + train_path +
                                   "': the training examples have only one label ('" + classes[0] +
                                   "'); a classifier needs at least two");
  t->vocab = classify_vocab(train_ex, cfg.format);
  t->train = encode_examples(train_ex, t->vocab, cfg.format, classes, cfg.max_len);
  t->val = encode_examples(val_ex, t->vocab, cfg.format, classes, cfg.max_len);

  ModelConfig mc = model_cfg;
  mc.vocab = t->vocab.size();
  mc.head = classes.size() == 2 ? HeadKind::Sigmoid : HeadKind::Softmax;
  mc.outputs = classes.size() == 2 ? 1 : int(classes.size());
  if (mc.summary == Summary::Steps) mc.summary = Summary::Last;
  mc.validate();

  t->weight.assign(classes.size(), 1.0f);
  std::vector<int64_t> count(classes.size(), 0);
  for (int y : t->train.labels) ++count[y];
  if (cfg.class_weights == "balanced")
    for (size_t c = 0; c < classes.size(); ++c)
      t->weight[c] =
          count[c] ? float(double(t->train.size()) / (double(classes.size()) * double(count[c])))
                   : 0.f;
  t->kind = "classify";
  t->cfg = cfg;
  t->train_json = to_json(cfg);
  if (!cfg.val_file.empty()) t->train_json["val_file"] = absolute(cfg.val_file);
  nlohmann::json counts = nlohmann::json::object();
  for (size_t c = 0; c < classes.size(); ++c) counts[classes[c]] = count[c];
  t->data = {{"task", "classify"},
             {"classes", classes},
             {"format", cfg.format.to_json()},
             {"train_path", absolute(train_path)},
             {"examples", train_ex.size() + (cfg.val_file.empty() ? val_ex.size() : 0)},
             {"train_examples", t->train.size()},
             {"val_examples", t->val.size()},
             {"train_counts", counts},
             {"command", command_line}};
  take_model(*t, mc, ck, examples_hash(t->train.seqs, t->train.labels), train_path);
  const ModelConfig& c = t->model_->config();
  std::ostringstream intro;
  intro << "classify: " << t->train.size() << " training and " << t->val.size()
        << " validation examples, " << classes.size() << " classes, vocabulary " << t->vocab.size()
        << " " << cfg.format.unit() << "\n"
        << "model: " << cell_name(c.cell) << " " << c.layers << "x" << c.hidden
        << (c.bidirectional ? " bidirectional" : "") << ", summary " << summary_name(c.summary)
        << ", " << (c.head == HeadKind::Sigmoid ? "sigmoid" : "softmax") << " head, "
        << t->model_->layout().count() << " parameters\n";
  t->intro = intro.str();
  t->lengths = lengths_of(t->train.seqs);
  t->has_val = t->val.size() > 0;
  return t;
}

}  // namespace

ClassReport train_classifier(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                             const std::string& train_path, const std::string& out_dir,
                             std::ostream& log, const std::string& command_line, Comm& comm) {
  auto t = classify_task(model_cfg, cfg, train_path, command_line, nullptr);
  return run_sequence_task(*t, out_dir, log, command_line, comm, nullptr, cfg.poison_steps);
}

// ---- tagging ----

Vocab tag_vocab(const TaggedSequences& t, int64_t min_count) {
  std::vector<std::string> all;
  for (auto& seq : t.tokens) all.insert(all.end(), seq.begin(), seq.end());
  return Vocab::from_words(all, min_count);
}

EncodedTags encode_tagged(const TaggedSequences& t, const Vocab& vocab,
                          const std::vector<std::string>& tagset) {
  EncodedTags out;
  out.where = t.where;
  for (size_t i = 0; i < t.size(); ++i) {
    out.seqs.push_back(vocab.encode_words(t.tokens[i]));
    if (tagset.empty()) {
      out.tags.emplace_back(t.tokens[i].size(), -1);
    } else {
      // Name the line of an unknown tag: sequence start + position.
      std::vector<std::string> where(t.tokens[i].size());
      const size_t colon = t.where[i].rfind(':');
      const std::string file = t.where[i].substr(0, colon);
      const size_t line0 = std::stoul(t.where[i].substr(colon + 1));
      for (size_t k = 0; k < where.size(); ++k) where[k] = file + ":" + std::to_string(line0 + k);
      auto ids = label_ids(t.labels[i], where, tagset);
      out.tags.emplace_back(ids.begin(), ids.end());
    }
  }
  return out;
}

namespace {

// A padded, time-major batch of tagged sequences idx[0..n): ids and per-step
// targets (-1 after each sequence's end).
struct TagBatch {
  std::vector<int32_t> ids, targets;
  int T = 0, B = 0;
};

TagBatch make_tag_batch(const EncodedTags& ex, const size_t* idx, size_t n) {
  TagBatch b;
  b.B = int(n);
  b.T = longest(ex.seqs, idx, n);
  auto len = [&](size_t i) { return ex.seqs[idx[i]].size(); };
  b.ids = time_major(b.T, n, 0, len, [&](size_t i, size_t t) { return ex.seqs[idx[i]][t]; });
  b.targets = time_major(b.T, n, -1, len, [&](size_t i, size_t t) { return ex.tags[idx[i]][t]; });
  return b;
}

}  // namespace

std::vector<std::vector<std::vector<float>>> tag_probabilities(Model<float>& m,
                                                               const EncodedTags& ex, int batch) {
  const int O = m.config().outputs;
  std::vector<std::vector<std::vector<float>>> out(ex.size());
  const std::vector<size_t> idx = by_length(ex.seqs);
  for (size_t from = 0; from < idx.size(); from += batch) {
    const size_t n = std::min(idx.size() - from, size_t(batch));
    TagBatch b = make_tag_batch(ex, idx.data() + from, n);
    m.reset_state(b.B);  // every sequence starts from zeros
    m.forward(b.ids.data(), nullptr, b.T, b.B, Mode::Eval);
    const float* z = m.logits();
    for (size_t i = 0; i < n; ++i) {
      auto& seq = out[idx[from + i]];
      seq.assign(ex.seqs[idx[from + i]].size(), std::vector<float>(O));
      for (size_t t = 0; t < seq.size(); ++t) {
        const float* zi = z + (t * b.B + i) * O;
        const float mx = *std::max_element(zi, zi + O);
        double sum = 0;
        for (int k = 0; k < O; ++k) sum += (seq[t][k] = std::exp(zi[k] - mx));
        for (int k = 0; k < O; ++k) seq[t][k] = float(seq[t][k] / sum);
      }
    }
  }
  m.clear_state();
  return out;
}

ClassReport evaluate_tags(Model<float>& m, const EncodedTags& ex,
                          const std::vector<std::string>& tags, int batch) {
  require(int(tags.size()) == m.config().outputs, "internal: tag list and model disagree");
  ReportBuilder rb(tags);
  const auto probs = tag_probabilities(m, ex, batch);
  for (size_t i = 0; i < ex.size(); ++i)
    for (size_t t = 0; t < probs[i].size(); ++t) rb.add(ex.tags[i][t], probs[i][t]);
  ClassReport r = rb.finish();
  r.unit = "tokens";
  return r;
}

namespace {

class TagTask : public SequenceTask {
 public:
  EncodedTags train, val;
  std::vector<std::string> tags;
  TagBatch batch;
  BatchStats forward_examples(const size_t* idx, size_t n, Rng& rng) override {
    Model<float>& m = *model_;
    TagBatch& b = batch = make_tag_batch(train, idx, n);  // the backward reads it
    m.reset_state(b.B);
    LossSum l = m.forward(b.ids.data(), b.targets.data(), b.T, b.B, Mode::Train, &rng);
    BatchStats s{l.sum, l.count, 0};
    const int K = m.config().outputs;
    const float* z = m.logits();
    for (size_t r = 0; r < b.targets.size(); ++r)
      if (b.targets[r] >= 0) s.right += argmax(z + r * K, K) == b.targets[r];
    return s;
  }
  ClassReport report() override { return evaluate_tags(*model_, has_val ? val : train, tags); }
};

std::unique_ptr<SequenceTask> tag_task(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                                       const std::string& train_path,
                                       const std::string& command_line, Checkpoint* ck) {
  cfg.validate();
  auto t = std::make_unique<TagTask>();
  TaggedSequences train_ex, val_ex;
  split_data(
      cfg, train_path, [](const std::string& p) { return read_tagged(p); }, train_ex, val_ex);
  std::vector<std::string> all_tags;
  for (auto& l : train_ex.labels) all_tags.insert(all_tags.end(), l.begin(), l.end());
  t->tags = label_set(all_tags);
  const auto& tags = t->tags;
  require(tags.size() >= 2, "'" + train_path + "': the training tokens have only one tag ('" +
                                tags[0] + "'); a tagger needs at least two");
  t->vocab = tag_vocab(train_ex, cfg.format.min_count);
  t->train = encode_tagged(train_ex, t->vocab, tags);
  t->val = encode_tagged(val_ex, t->vocab, tags);

  ModelConfig mc = model_cfg;
  mc.vocab = t->vocab.size();
  mc.head = HeadKind::Softmax;
  mc.outputs = int(tags.size());
  mc.summary = Summary::Steps;
  mc.bidirectional = false;
  mc.validate();
  t->kind = "tag";
  t->cfg = cfg;
  t->train_json = to_json(cfg);
  t->train_json["task"] = "tag";
  if (!cfg.val_file.empty()) t->train_json["val_file"] = absolute(cfg.val_file);
  size_t tokens = 0;
  std::vector<int32_t> flat_tags;
  for (auto& s : t->train.seqs) tokens += s.size();
  for (auto& g : t->train.tags) flat_tags.insert(flat_tags.end(), g.begin(), g.end());
  t->data = {{"task", "tag"},
             {"classes", tags},
             {"train_path", absolute(train_path)},
             {"examples", train_ex.size() + (cfg.val_file.empty() ? val_ex.size() : 0)},
             {"train_examples", t->train.size()},
             {"val_examples", t->val.size()},
             {"train_tokens", tokens},
             {"command", command_line}};
  take_model(*t, mc, ck, examples_hash(t->train.seqs, flat_tags), train_path);
  const ModelConfig& c = t->model_->config();
  std::ostringstream intro;
  intro << "tag: " << t->train.size() << " training and " << t->val.size()
        << " validation sequences (" << tokens << " training tokens), " << tags.size()
        << " tags, vocabulary " << t->vocab.size() << " tokens\n"
        << "model: " << cell_name(c.cell) << " " << c.layers << "x" << c.hidden
        << ", softmax over tags at every step, " << t->model_->layout().count() << " parameters\n";
  t->intro = intro.str();
  t->lengths = lengths_of(t->train.seqs);
  t->has_val = t->val.size() > 0;
  return t;
}

}  // namespace

ClassReport train_tagger(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                         const std::string& train_path, const std::string& out_dir,
                         std::ostream& log, const std::string& command_line, Comm& comm) {
  auto t = tag_task(model_cfg, cfg, train_path, command_line, nullptr);
  return run_sequence_task(*t, out_dir, log, command_line, comm, nullptr, cfg.poison_steps);
}

// ---- conditional language model ----

namespace {

// Texts as start + tokens + end, with their category ids.
struct CategoryTexts {
  std::vector<std::vector<int32_t>> seqs;  // including start and end
  std::vector<int32_t> cats;
};

CategoryTexts encode_category_texts(const LabelledExamples& ex, const Vocab& vocab,
                                    const TextFormat& f,
                                    const std::vector<std::string>& categories) {
  CategoryTexts out;
  const int32_t edge = vocab.start_id();
  auto ids = label_ids(ex.labels, ex.where, categories);
  for (size_t i = 0; i < ex.size(); ++i) {
    std::vector<int32_t> s = {edge};
    if (f.level == "char") {
      auto t = vocab.encode_chars(decode_utf8(ex.texts[i], ex.where[i]));
      s.insert(s.end(), t.begin(), t.end());
    } else {
      auto t = vocab.encode_words(tokenize(ex.texts[i], f, ex.where[i]));
      s.insert(s.end(), t.begin(), t.end());
    }
    s.push_back(edge);
    out.seqs.push_back(std::move(s));
    out.cats.push_back(ids[i]);
  }
  return out;
}

// A padded batch: inputs are seq[0..n-2], targets seq[1..n-1] (-1 after the end).
struct LmBatch {
  std::vector<int32_t> ids, targets, cats;
  int T = 0, B = 0;
};

LmBatch make_lm_batch(const CategoryTexts& ex, const size_t* idx, size_t n) {
  LmBatch b;
  b.B = int(n);
  b.T = longest(ex.seqs, idx, n, 1);
  auto len = [&](size_t i) { return ex.seqs[idx[i]].size() - 1; };
  b.ids = time_major(b.T, n, 0, len, [&](size_t i, size_t t) { return ex.seqs[idx[i]][t]; });
  b.targets =
      time_major(b.T, n, -1, len, [&](size_t i, size_t t) { return ex.seqs[idx[i]][t + 1]; });
  for (size_t i = 0; i < n; ++i) b.cats.push_back(ex.cats[idx[i]]);
  return b;
}

// Loss and next-token accuracy of one batch (forward only, or with backward).
BatchStats lm_batch_stats(Model<float>& m, const LmBatch& b, const LossSum& l) {
  BatchStats s{l.sum, l.count, 0};
  const int V = m.config().outputs;
  const float* z = m.logits();
  for (size_t r = 0; r < b.targets.size(); ++r)
    if (b.targets[r] >= 0)
      s.right += int(std::max_element(z + r * V, z + (r + 1) * V) - (z + r * V)) == b.targets[r];
  return s;
}

}  // namespace

namespace {

class ConditionalTask : public SequenceTask {
 public:
  CategoryTexts train, val;
  LmBatch batch;
  BatchStats forward_examples(const size_t* idx, size_t n, Rng& rng) override {
    Model<float>& m = *model_;
    LmBatch& b = batch = make_lm_batch(train, idx, n);  // the backward reads it
    m.start_state(b.cats.data(), b.B);
    return lm_batch_stats(m, b,
                          m.forward(b.ids.data(), b.targets.data(), b.T, b.B, Mode::Train, &rng));
  }
  // Loss per token and next-token accuracy.
  ClassReport report() override {
    Model<float>& m = *model_;
    const CategoryTexts& ex = has_val ? val : train;
    std::vector<size_t> idx(ex.seqs.size());
    std::iota(idx.begin(), idx.end(), 0);
    BatchStats total;
    for (size_t from = 0; from < idx.size(); from += 64) {
      LmBatch b = make_lm_batch(ex, idx.data() + from, std::min<size_t>(64, idx.size() - from));
      m.start_state(b.cats.data(), b.B);
      BatchStats s =
          lm_batch_stats(m, b, m.forward(b.ids.data(), b.targets.data(), b.T, b.B, Mode::Eval));
      total.loss += s.loss, total.count += s.count, total.right += s.right;
    }
    ClassReport r;
    r.examples = size_t(total.count);
    r.loss = total.loss / double(std::max<int64_t>(total.count, 1));
    r.accuracy = double(total.right) / double(std::max<int64_t>(total.count, 1));
    return r;
  }
};

std::unique_ptr<SequenceTask> conditional_task(const ModelConfig& model_cfg,
                                               const ClassifyConfig& cfg,
                                               const std::string& train_path,
                                               const std::string& command_line, Checkpoint* ck) {
  cfg.validate();
  auto t = std::make_unique<ConditionalTask>();
  LabelledExamples train_ex, val_ex;
  split_data(
      cfg, train_path, [&](const std::string& p) { return read_labelled(p, cfg.separator); },
      train_ex, val_ex);
  const std::vector<std::string> categories = label_set(train_ex.labels);
  if (cfg.format.level == "char") {
    // Characters of the validation texts too: a character vocabulary has no
    // <unk>, and a name with a rare accent should not stop the run.
    std::u32string all = U"\n";
    for (const LabelledExamples* ex : {&train_ex, &val_ex})
      for (size_t i = 0; i < ex->size(); ++i) all += decode_utf8(ex->texts[i], ex->where[i]);
    t->vocab = Vocab::from_chars(all);
  } else {
    std::vector<std::string> all = {kEos};
    for (size_t i = 0; i < train_ex.size(); ++i) {
      auto w = tokenize(train_ex.texts[i], cfg.format, train_ex.where[i]);
      all.insert(all.end(), w.begin(), w.end());
    }
    t->vocab = Vocab::from_words(all, cfg.format.min_count, cfg.format.max_vocab);
  }
  t->train = encode_category_texts(train_ex, t->vocab, cfg.format, categories);
  t->val = encode_category_texts(val_ex, t->vocab, cfg.format, categories);

  ModelConfig mc = model_cfg;
  mc.vocab = mc.outputs = t->vocab.size();
  mc.head = HeadKind::Softmax;
  mc.summary = Summary::Steps;
  mc.bidirectional = false;
  mc.categories = int(categories.size());
  mc.validate();
  t->kind = "conditional";
  t->cfg = cfg;
  t->train_json = to_json(cfg);
  t->train_json["task"] = "conditional";
  if (!cfg.val_file.empty()) t->train_json["val_file"] = absolute(cfg.val_file);
  t->data = {{"task", "conditional"},
             {"categories", categories},
             {"format", cfg.format.to_json()},
             {"train_path", absolute(train_path)},
             {"examples", train_ex.size() + (cfg.val_file.empty() ? val_ex.size() : 0)},
             {"train_examples", t->train.seqs.size()},
             {"val_examples", t->val.seqs.size()},
             {"command", command_line}};
  take_model(*t, mc, ck, examples_hash(t->train.seqs, t->train.cats), train_path);
  const ModelConfig& c = t->model_->config();
  std::ostringstream intro;
  intro << "conditional language model: " << t->train.seqs.size() << " training and "
        << t->val.seqs.size() << " validation texts, " << categories.size()
        << " categories, vocabulary " << t->vocab.size() << " " << cfg.format.unit() << "\n"
        << "model: " << cell_name(c.cell) << " " << c.layers << "x" << c.hidden << ", "
        << t->model_->layout().count() << " parameters\n";
  t->intro = intro.str();
  t->lengths = lengths_of(t->train.seqs);
  t->has_val = !t->val.seqs.empty();
  return t;
}

}  // namespace

ClassReport train_conditional(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                              const std::string& train_path, const std::string& out_dir,
                              std::ostream& log, const std::string& command_line, Comm& comm) {
  auto t = conditional_task(model_cfg, cfg, train_path, command_line, nullptr);
  return run_sequence_task(*t, out_dir, log, command_line, comm, nullptr, cfg.poison_steps);
}

ClassReport resume_sequence_run(const std::string& task, const std::string& out_dir,
                                const std::function<void(ClassifyConfig&)>& adjust,
                                std::ostream& log, const std::string& command_line, Comm& comm,
                                const std::vector<int64_t>& poison_steps) {
  Checkpoint ck = load_run_checkpoint(out_dir, task);
  ClassifyConfig cfg = classify_config_from_json(ck.train);
  if (adjust) adjust(cfg);
  cfg.validate();
  const std::string train_path = ck.data.value("train_path", "");
  std::unique_ptr<SequenceTask> t =
      ck.task == "classify" ? classify_task(ck.model_config, cfg, train_path, command_line, &ck)
      : ck.task == "tag"    ? tag_task(ck.model_config, cfg, train_path, command_line, &ck)
                            : conditional_task(ck.model_config, cfg, train_path, command_line, &ck);
  return run_sequence_task(*t, out_dir, log, command_line, comm, &ck, poison_steps);
}

}  // namespace unroll

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

#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/json.h"
#include "unroll/core/rng.h"
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

// The epoch loop that classification and tagging share: length-bucketed
// batches in shuffled order, Adam with global-norm clipping, a validation
// report after each epoch, best and latest checkpoints, early stopping on
// the validation loss and a time limit.
//   lengths: of every training example (for bucketing)
//   step(idx, n): forward (Mode::Train) and backward of examples idx[0..n)
//   validate(): the report on the validation (or training) examples
//   save(path, progress, opt): writes a checkpoint
ClassReport train_epochs(
    Model<float>& m, const ClassifyConfig& cfg, Rng& rng, const std::vector<size_t>& lengths,
    const std::function<BatchStats(const size_t*, size_t)>& step,
    const std::function<ClassReport()>& validate, const char* val_name, const std::string& out_dir,
    const std::function<void(const std::string&, const nlohmann::json&, const Optimizer*)>& save,
    const nlohmann::json& config, std::ostream& log) {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::string best_path = (fs::path(out_dir) / "best.safetensors").string();
  const std::string latest_path = (fs::path(out_dir) / "latest.safetensors").string();
  // The run's record, as for language models (train/metrics.h).
  const FolderLock lock(out_dir, "training",
                        config.value("command", ""));  // one writer per run folder
  const std::string settings = config.dump(2) + "\n";
  write_file_atomic((fs::path(out_dir) / "config.json").string(), {settings}, "run settings");
  MetricsLog metrics((fs::path(out_dir) / "metrics.jsonl").string(), -1);
  Optimizer opt(cfg.optim, m.params.size());
  double best_loss = 1e300;
  int since_best = 0;
  bool interrupted = false;  // the first Ctrl-C / SIGTERM (core/interrupt.h)
  int64_t steps = 0, skipped = 0;
  ClassReport best_report;
  for (int epoch = 1; epoch <= cfg.max_epochs; ++epoch) {
    // Batches of similar lengths: shuffle, sort windows of 50 batches by
    // length, cut, then shuffle the batches' order.
    std::vector<size_t> idx(lengths.size());
    std::iota(idx.begin(), idx.end(), 0);
    shuffle(idx, rng);
    const size_t window = size_t(cfg.batch) * 50;
    for (size_t w = 0; w < idx.size(); w += window)
      std::stable_sort(idx.begin() + w, idx.begin() + std::min(idx.size(), w + window),
                       [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
    std::vector<size_t> starts;
    for (size_t s = 0; s < idx.size(); s += cfg.batch) starts.push_back(s);
    shuffle(starts, rng);
    BatchStats total;
    const double epoch_start = seconds();
    double last_print = epoch_start;
    bool out_of_time = false;
    int skipped_in_a_row = 0;
    // After each batch, skipped or not: the time limit and Ctrl-C.
    auto next = [&](size_t& bi) {
      ++bi;
      out_of_time = cfg.max_seconds > 0 && seconds() > cfg.max_seconds;
      interrupted = interrupt_requested() != 0;
    };
    for (size_t bi = 0; bi < starts.size() && !out_of_time && !interrupted; next(bi)) {
      const size_t n = std::min(idx.size() - starts[bi], size_t(cfg.batch));
      m.zero_grad();
      BatchStats b = step(idx.data() + starts[bi], n);
      const Clipped clip = clip_gradient(m.grads.data(), m.grads.size(), cfg.clip, cfg.clip_mode);
      const double norm = clip.norm;
      ++steps;
      if (std::find(cfg.poison_steps.begin(), cfg.poison_steps.end(), steps) !=
          cfg.poison_steps.end())
        b.loss = std::numeric_limits<double>::quiet_NaN();
      if (!std::isfinite(b.loss) || !std::isfinite(norm)) {
        const std::string what = "at step " + std::to_string(steps) + " (epoch " +
                                 std::to_string(epoch) + ") the loss or the gradient is not finite";
        require(cfg.on_nan == "skip" && skipped_in_a_row < kMaxSkippedInARow,
                cfg.on_nan == "skip"
                    ? what + ", after " + std::to_string(kMaxSkippedInARow) +
                          " skipped batches in a row: stopping; " +
                          "lower --lr or --clip; the checkpoints of the last epoch in '" + out_dir +
                          "' are kept"
                    : "training diverged: " + what +
                          "; lower --lr or --clip (or --on-nan skip to drop such " +
                          "batches); the checkpoints of the last epoch in '" + out_dir +
                          "' are kept");
        ++skipped, ++skipped_in_a_row;
        log << what << ": batch skipped (" << skipped << " so far)\n" << std::flush;
        metrics.append({{"kind", "skip"}, {"step", steps}, {"skipped_batches", skipped}});
        continue;
      }
      skipped_in_a_row = 0;
      opt.step(m.params.data(), m.grads.data(), cfg.optim.lr);
      total.loss += b.loss, total.count += b.count, total.right += b.right;
      if (seconds() - last_print > 5) {
        last_print = seconds();
        char buf[160];
        std::snprintf(buf, sizeof buf, "epoch %d  %3.0f%%  loss %.4f  accuracy %.2f%%\n", epoch,
                      100.0 * double(bi + 1) / double(starts.size()),
                      total.loss / double(total.count),
                      100.0 * double(total.right) / double(total.count));
        log << buf;
        log.flush();
        metrics.append({{"kind", "step"},
                        {"step", steps},
                        {"epoch", epoch - 1 + double(bi + 1) / double(starts.size())},
                        {"elapsed", seconds()},
                        {"train_loss", total.loss / double(total.count)},
                        {"train_accuracy", double(total.right) / double(total.count)},
                        {"lr", cfg.optim.lr},
                        {"grad_norm", norm},
                        {"clipped", clip.clipped}});
      }
    }
    ClassReport r = validate();
    const bool better = r.loss < best_loss;
    char buf[220];
    const double n = double(std::max<int64_t>(total.count, 1));
    std::snprintf(buf, sizeof buf,
                  "epoch %d  train loss %.4f acc %.2f%%  %s loss %.4f acc %.2f%%%s  (%.0f s)\n",
                  epoch, total.loss / n, 100.0 * double(total.right) / n, val_name, r.loss,
                  100 * r.accuracy, better ? "  best" : "", seconds());
    log << buf;
    log.flush();
    if (better)
      best_loss = r.loss, best_report = r, since_best = 0;
    else
      ++since_best;
    metrics.append({{"kind", "eval"},
                    {"step", steps},
                    {"epoch", epoch},
                    {"elapsed", seconds()},
                    {"train_loss", total.loss / n},
                    {"train_accuracy", double(total.right) / n},
                    {"val_loss", r.loss},
                    {"val_accuracy", r.accuracy},
                    {"best_val_loss", best_loss},
                    {"on", std::string(val_name) == "val" ? "validation" : "training"}});
    nlohmann::json progress = {{"epoch", epoch},        {"step", steps},
                               {"val_loss", r.loss},    {"val_accuracy", r.accuracy},
                               {"best_val", best_loss}, {"best_accuracy", best_report.accuracy},
                               {"seconds", seconds()}};
    if (better) save(best_path, progress, nullptr);
    save(latest_path, progress, &opt);
    write_run_report(out_dir, config.value("command", ""));
    if (out_of_time) {
      log << "stopping: time limit reached\n";
      break;
    }
    if (interrupted) {  // Ctrl-C or SIGTERM: this epoch's part was validated and saved above
      log << "interrupted in epoch " << epoch << " at step " << steps << ": saved " << latest_path
          << "\n";
      break;
    }
    if (cfg.patience > 0 && since_best >= cfg.patience) {
      log << "stopping: no better " << val_name << " loss for " << cfg.patience << " epochs\n";
      break;
    }
  }
  log << "best checkpoint: " << best_path << "\n";
  return best_report;
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

}  // namespace

ClassReport train_classifier(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                             const std::string& train_path, const std::string& out_dir,
                             std::ostream& log, const std::string& command_line) {
  cfg.validate();
  LabelledExamples train_ex, val_ex;
  split_data(
      cfg, train_path, [&](const std::string& p) { return read_labelled(p, cfg.separator); },
      train_ex, val_ex);
  const std::vector<std::string> classes = label_set(train_ex.labels);
  require(classes.size() >= 2, "'" + train_path +
                                   "': the training examples have only one label ('" + classes[0] +
                                   "'); a classifier needs at least two");
  const Vocab vocab = classify_vocab(train_ex, cfg.format);
  const EncodedExamples train = encode_examples(train_ex, vocab, cfg.format, classes, cfg.max_len);
  const EncodedExamples val = encode_examples(val_ex, vocab, cfg.format, classes, cfg.max_len);

  ModelConfig mc = model_cfg;
  mc.vocab = vocab.size();
  mc.head = classes.size() == 2 ? HeadKind::Sigmoid : HeadKind::Softmax;
  mc.outputs = classes.size() == 2 ? 1 : int(classes.size());
  if (mc.summary == Summary::Steps) mc.summary = Summary::Last;
  mc.validate();

  std::vector<float> weight(classes.size(), 1.0f);
  std::vector<int64_t> count(classes.size(), 0);
  for (int y : train.labels) ++count[y];
  if (cfg.class_weights == "balanced")
    for (size_t c = 0; c < classes.size(); ++c)
      weight[c] = count[c]
                      ? float(double(train.size()) / (double(classes.size()) * double(count[c])))
                      : 0.f;

  prepare_out_dir(out_dir);
  Model<float> m(mc);
  Rng rng(cfg.seed);
  m.init(rng);
  nlohmann::json train_json = to_json(cfg);
  if (!cfg.val_file.empty()) train_json["val_file"] = absolute(cfg.val_file);
  nlohmann::json counts = nlohmann::json::object();
  for (size_t c = 0; c < classes.size(); ++c) counts[classes[c]] = count[c];
  const nlohmann::json data = {
      {"task", "classify"},
      {"classes", classes},
      {"format", cfg.format.to_json()},
      {"train_path", absolute(train_path)},
      {"examples", train_ex.size() + (cfg.val_file.empty() ? val_ex.size() : 0)},
      {"train_examples", train.size()},
      {"val_examples", val.size()},
      {"train_counts", counts},
      {"command", command_line}};

  log << "classify: " << train.size() << " training and " << val.size() << " validation examples, "
      << classes.size() << " classes, vocabulary " << vocab.size() << " " << cfg.format.unit()
      << "\n"
      << "model: " << cell_name(mc.cell) << " " << mc.layers << "x" << mc.hidden
      << (mc.bidirectional ? " bidirectional" : "") << ", summary " << summary_name(mc.summary)
      << ", " << (mc.head == HeadKind::Sigmoid ? "sigmoid" : "softmax") << " head, "
      << m.layout().count() << " parameters\n";
  log.flush();

  const std::vector<size_t> lengths = lengths_of(train.seqs);
  auto step = [&](const size_t* idx, size_t n) {
    Batch b = make_batch(train, idx, n, &weight);
    LossSum l = m.classify(b.ids.data(), b.lengths.data(), b.labels.data(), b.weights.data(), b.T,
                           b.B, Mode::Train, &rng);
    m.backward(1.0f / float(b.B));
    BatchStats s{l.sum, int64_t(n), 0};
    const float* z = m.logits();
    for (size_t i = 0; i < n; ++i) {
      const int pred = mc.head == HeadKind::Sigmoid
                           ? int(z[i] > 0)
                           : int(std::max_element(z + i * mc.outputs, z + (i + 1) * mc.outputs) -
                                 (z + i * mc.outputs));
      s.right += pred == b.labels[i];
    }
    return s;
  };
  const bool has_val = val.size() > 0;
  auto validate = [&] { return evaluate_classes(m, has_val ? val : train, classes); };
  auto save = [&](const std::string& path, const nlohmann::json& progress, const Optimizer* opt) {
    save_checkpoint(path, m, vocab, train_json, progress, data, opt);
  };
  ClassifyConfig loop = cfg;
  if (!has_val) loop.patience = 0;  // no early stopping on the training loss
  return train_epochs(
      m, loop, rng, lengths, step, validate, has_val ? "val" : "eval on training data:", out_dir,
      save,
      {{"model", to_json(mc)}, {"train", train_json}, {"data", data}, {"command", command_line}},
      log);
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

ClassReport train_tagger(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                         const std::string& train_path, const std::string& out_dir,
                         std::ostream& log, const std::string& command_line) {
  cfg.validate();
  TaggedSequences train_ex, val_ex;
  split_data(
      cfg, train_path, [](const std::string& p) { return read_tagged(p); }, train_ex, val_ex);
  std::vector<std::string> all_tags;
  for (auto& l : train_ex.labels) all_tags.insert(all_tags.end(), l.begin(), l.end());
  const std::vector<std::string> tags = label_set(all_tags);
  require(tags.size() >= 2, "'" + train_path + "': the training tokens have only one tag ('" +
                                tags[0] + "'); a tagger needs at least two");
  const Vocab vocab = tag_vocab(train_ex, cfg.format.min_count);
  const EncodedTags train = encode_tagged(train_ex, vocab, tags);
  const EncodedTags val = encode_tagged(val_ex, vocab, tags);

  ModelConfig mc = model_cfg;
  mc.vocab = vocab.size();
  mc.head = HeadKind::Softmax;
  mc.outputs = int(tags.size());
  mc.summary = Summary::Steps;
  mc.bidirectional = false;
  mc.validate();
  prepare_out_dir(out_dir);
  Model<float> m(mc);
  Rng rng(cfg.seed);
  m.init(rng);
  nlohmann::json train_json = to_json(cfg);
  train_json["task"] = "tag";
  if (!cfg.val_file.empty()) train_json["val_file"] = absolute(cfg.val_file);
  size_t tokens = 0;
  for (auto& s : train.seqs) tokens += s.size();
  const nlohmann::json data = {
      {"task", "tag"},
      {"classes", tags},
      {"train_path", absolute(train_path)},
      {"examples", train_ex.size() + (cfg.val_file.empty() ? val_ex.size() : 0)},
      {"train_examples", train.size()},
      {"val_examples", val.size()},
      {"train_tokens", tokens},
      {"command", command_line}};
  log << "tag: " << train.size() << " training and " << val.size() << " validation sequences ("
      << tokens << " training tokens), " << tags.size() << " tags, vocabulary " << vocab.size()
      << " tokens\n"
      << "model: " << cell_name(mc.cell) << " " << mc.layers << "x" << mc.hidden
      << ", softmax over tags at every step, " << m.layout().count() << " parameters\n";
  log.flush();

  const std::vector<size_t> lengths = lengths_of(train.seqs);
  auto step = [&](const size_t* idx, size_t n) {
    TagBatch b = make_tag_batch(train, idx, n);
    m.reset_state(b.B);
    LossSum l = m.forward(b.ids.data(), b.targets.data(), b.T, b.B, Mode::Train, &rng);
    m.backward(1.0f / float(std::max<int64_t>(l.count, 1)));  // mean per token
    BatchStats s{l.sum, l.count, 0};
    const float* z = m.logits();
    for (size_t r = 0; r < b.targets.size(); ++r)
      if (b.targets[r] >= 0)
        s.right += int(std::max_element(z + r * mc.outputs, z + (r + 1) * mc.outputs) -
                       (z + r * mc.outputs)) == b.targets[r];
    return s;
  };
  const bool has_val = val.size() > 0;
  auto validate = [&] { return evaluate_tags(m, has_val ? val : train, tags); };
  auto save = [&](const std::string& path, const nlohmann::json& progress, const Optimizer* opt) {
    m.clear_state();  // a tagger carries no state between sequences
    save_checkpoint(path, m, vocab, train_json, progress, data, opt);
  };
  ClassifyConfig loop = cfg;
  if (!has_val) loop.patience = 0;
  return train_epochs(
      m, loop, rng, lengths, step, validate, has_val ? "val" : "eval on training data:", out_dir,
      save,
      {{"model", to_json(mc)}, {"train", train_json}, {"data", data}, {"command", command_line}},
      log);
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

ClassReport train_conditional(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                              const std::string& train_path, const std::string& out_dir,
                              std::ostream& log, const std::string& command_line) {
  cfg.validate();
  LabelledExamples train_ex, val_ex;
  split_data(
      cfg, train_path, [&](const std::string& p) { return read_labelled(p, cfg.separator); },
      train_ex, val_ex);
  const std::vector<std::string> categories = label_set(train_ex.labels);
  Vocab vocab;
  if (cfg.format.level == "char") {
    // Characters of the validation texts too: a character vocabulary has no
    // <unk>, and a name with a rare accent should not stop the run.
    std::u32string all = U"\n";
    for (const LabelledExamples* ex : {&train_ex, &val_ex})
      for (size_t i = 0; i < ex->size(); ++i) all += decode_utf8(ex->texts[i], ex->where[i]);
    vocab = Vocab::from_chars(all);
  } else {
    std::vector<std::string> all = {kEos};
    for (size_t i = 0; i < train_ex.size(); ++i) {
      auto t = tokenize(train_ex.texts[i], cfg.format, train_ex.where[i]);
      all.insert(all.end(), t.begin(), t.end());
    }
    vocab = Vocab::from_words(all, cfg.format.min_count, cfg.format.max_vocab);
  }
  const CategoryTexts train = encode_category_texts(train_ex, vocab, cfg.format, categories);
  const CategoryTexts val = encode_category_texts(val_ex, vocab, cfg.format, categories);

  ModelConfig mc = model_cfg;
  mc.vocab = mc.outputs = vocab.size();
  mc.head = HeadKind::Softmax;
  mc.summary = Summary::Steps;
  mc.bidirectional = false;
  mc.categories = int(categories.size());
  mc.validate();
  prepare_out_dir(out_dir);
  Model<float> m(mc);
  Rng rng(cfg.seed);
  m.init(rng);
  nlohmann::json train_json = to_json(cfg);
  train_json["task"] = "conditional";
  if (!cfg.val_file.empty()) train_json["val_file"] = absolute(cfg.val_file);
  const nlohmann::json data = {
      {"task", "conditional"},
      {"categories", categories},
      {"format", cfg.format.to_json()},
      {"train_path", absolute(train_path)},
      {"examples", train_ex.size() + (cfg.val_file.empty() ? val_ex.size() : 0)},
      {"train_examples", train.seqs.size()},
      {"val_examples", val.seqs.size()},
      {"command", command_line}};
  log << "conditional language model: " << train.seqs.size() << " training and " << val.seqs.size()
      << " validation texts, " << categories.size() << " categories, vocabulary " << vocab.size()
      << " " << cfg.format.unit() << "\n"
      << "model: " << cell_name(mc.cell) << " " << mc.layers << "x" << mc.hidden << ", "
      << m.layout().count() << " parameters\n";
  log.flush();

  const std::vector<size_t> lengths = lengths_of(train.seqs);
  auto step = [&](const size_t* idx, size_t n) {
    LmBatch b = make_lm_batch(train, idx, n);
    m.start_state(b.cats.data(), b.B);
    LossSum l = m.forward(b.ids.data(), b.targets.data(), b.T, b.B, Mode::Train, &rng);
    m.backward(1.0f / float(std::max<int64_t>(l.count, 1)));
    return lm_batch_stats(m, b, l);
  };
  const bool has_val = !val.seqs.empty();
  auto validate = [&] {
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
  };
  auto save = [&](const std::string& path, const nlohmann::json& progress, const Optimizer* opt) {
    m.clear_state();
    save_checkpoint(path, m, vocab, train_json, progress, data, opt);
  };
  ClassifyConfig loop = cfg;
  if (!has_val) loop.patience = 0;
  return train_epochs(
      m, loop, rng, lengths, step, validate, has_val ? "val" : "eval on training data:", out_dir,
      save,
      {{"model", to_json(mc)}, {"train", train_json}, {"data", data}, {"command", command_line}},
      log);
}

}  // namespace unroll

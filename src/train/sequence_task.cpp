// The supervised tasks' shared part (src/train/sequence_task.h): their
// settings, the validation split, the report, and the run through the run loop.
#include "sequence_task.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <set>
#include <sstream>

#include "unroll/core/error.h"
#include "unroll/core/hash.h"
#include "unroll/core/json.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/classify.h"
#include "unroll/train/snapshots.h"

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
  parse_snapshot_schedule(snapshot_every);  // an error that shows the forms
  parse_snapshot_budget(snapshot_budget);
  require(snapshot_budget.empty() || !snapshot_every.empty(),
          "--snapshot-budget limits the snapshots of --snapshot-every; give that too");
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
          {"on_nan", c.on_nan},
          {"snapshot_every", c.snapshot_every},
          {"snapshot_budget", c.snapshot_budget}};
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
    c.snapshot_every = j.value("snapshot_every", c.snapshot_every);  // absent before snapshots
    c.snapshot_budget = j.value("snapshot_budget", c.snapshot_budget);
    c.validate();
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("the classification settings are malformed: ") + e.what());
  }
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

std::string absolute(const std::string& p) {
  return std::filesystem::absolute(p).lexically_normal().string();
}

namespace {

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

void prepare_out_dir(const std::string& out_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  require(!ec, "cannot create the run folder '" + out_dir + "': " + ec.message());
  for (const char* name : {"best.safetensors", "latest.safetensors"})
    check_output_path((fs::path(out_dir) / name).string(), "checkpoint");
}

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
  t.snapshot_every = c.snapshot_every;
  t.snapshot_budget = c.snapshot_budget;
  t.early_stop = has_val ? c.patience : 0;  // no early stopping on the training loss
  t.loss_norm = "token";                    // the mean over the scored sequences or tokens
  return t;
}

template <class Examples, class Read>
void split_examples(const ClassifyConfig& cfg, const std::string& train_path, Read read,
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

void split_data(const ClassifyConfig& cfg, const std::string& train_path, LabelledExamples& train,
                LabelledExamples& val) {
  split_examples(
      cfg, train_path, [&](const std::string& p) { return read_labelled(p, cfg.separator); }, train,
      val);
}

void split_data(const ClassifyConfig& cfg, const std::string& train_path, TaggedSequences& train,
                TaggedSequences& val) {
  split_examples(
      cfg, train_path, [](const std::string& p) { return read_tagged(p); }, train, val);
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
void require_recorded_validation(const std::string& hash, const nlohmann::json& train,
                                 const nlohmann::json& data) {
  if (!data.is_object() || !data.contains("val_hash")) return;
  const ClassifyConfig c = classify_config_from_json(train);
  require(data.value("val_hash", hash) == hash,
          "the validation examples (" + validation_source(c, data.value("train_path", "")) +
              ") changed since the run trained: its numbers would not compare with the run's; "
              "evaluate the file as it is now by naming it instead of --validation");
}
}  // namespace

void require_recorded_validation(const EncodedExamples& ex, const nlohmann::json& train,
                                 const nlohmann::json& data) {
  require_recorded_validation(examples_hash(ex), train, data);
}
void require_recorded_validation(const EncodedTags& ex, const nlohmann::json& train,
                                 const nlohmann::json& data) {
  require_recorded_validation(examples_hash(ex), train, data);
}

// A fresh run (ck null) or a resume of one: trains `task` through the run
// loop, then reports on the best checkpoint (validation, or training data).
ClassReport run_sequence_task(SequenceTask& task, const std::string& out_dir, std::ostream& log,
                              const std::string& command_line, Comm& comm, const Checkpoint* ck,
                              const std::vector<int64_t>& poison_steps) {
  namespace fs = std::filesystem;
  RunLoop loop(task, run_config(task.cfg, task.batches_per_epoch(), task.has_val), out_dir);
  loop.command_line = command_line;
  if (comm.root() && !ck) {
    // A folder another process writes says so first (naming it); then one that holds a run.
    if (path_kind(out_dir, "--out") == PathKind::Folder) loop.lock_run_folder();
    require_new_run_folder(out_dir);
    prepare_out_dir(out_dir);
  }
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
std::string examples_hash(const EncodedExamples& ex) { return examples_hash(ex.seqs, ex.labels); }
std::string examples_hash(const EncodedTags& ex) {
  std::vector<int32_t> flat;
  for (auto& g : ex.tags) flat.insert(flat.end(), g.begin(), g.end());
  return examples_hash(ex.seqs, flat);
}

std::string validation_source(const ClassifyConfig& c, const std::string& train_path) {
  return c.val_file.empty() ? "the split of '" + train_path + "'" : "'" + c.val_file + "'";
}

// The model of a fresh run (from mc), or of the checkpoint it resumes (which
// must have been trained on these examples, with this vocabulary).
void take_model(SequenceTask& t, const ModelConfig& mc, Checkpoint* ck, const std::string& hash,
                const std::string& val_hash, const std::string& train_path) {
  t.data["examples_hash"] = hash;
  t.data["val_hash"] = val_hash;
  if (ck) {
    bool same = ck->vocab.size() == t.vocab.size() && ck->data.value("examples_hash", "") == hash;
    for (int i = 0; same && i < t.vocab.size(); ++i) same = ck->vocab.token(i) == t.vocab.token(i);
    require(same, "cannot resume: the training examples in '" + train_path +
                      "' changed since the run began (their tokens or labels differ)");
    require(ck->data.value("val_hash", val_hash) == val_hash,
            "cannot resume: the validation examples (" + validation_source(t.cfg, train_path) +
                ") changed since the run began: their losses would not compare with the best");
    t.data = ck->data;  // with the command that began the run
    t.model_ = std::move(ck->model);
  } else {
    t.model_ = make_model<float>(mc);
  }
  t.model_json = to_json(t.model_->config());
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
  std::unique_ptr<SequenceTask> t;
  try {
    t = ck.task == "classify" ? classify_task(ck.model_config, cfg, train_path, command_line, &ck)
        : ck.task == "tag"    ? tag_task(ck.model_config, cfg, train_path, command_line, &ck)
                           : conditional_task(ck.model_config, cfg, train_path, command_line, &ck);
  } catch (const Error& e) {  // say that it is the run's data that cannot be read
    const std::string m = e.what();
    if (m.rfind("cannot resume", 0) == 0) throw;
    throw Error("cannot resume '" + out_dir + "': its data (" + train_path +
                (cfg.val_file.empty() ? "" : ", --val " + cfg.val_file) + "): " + m);
  }
  return run_sequence_task(*t, out_dir, log, command_line, comm, &ck, poison_steps);
}

}  // namespace unroll

// Classification (many-to-one): one label per sequence, through the
// sequence task of src/train/sequence_task.h.
#include "unroll/train/classify.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "sequence_task.h"
#include "unroll/core/error.h"
#include "unroll/text/words.h"
#include "unroll/train/checkpoint.h"

namespace unroll {

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

int classes_of(const ModelConfig& c) { return c.head == HeadKind::Sigmoid ? 2 : c.outputs; }

}  // namespace

std::vector<std::vector<float>> class_probabilities(SequenceModel<float>& m,
                                                    const EncodedExamples& ex, int batch) {
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

ClassReport evaluate_classes(SequenceModel<float>& m, const EncodedExamples& ex,
                             const std::vector<std::string>& classes, int batch) {
  require(int(classes.size()) == classes_of(m.config()), "internal: class list and model disagree");
  ReportBuilder rb(classes);
  const auto probs = class_probabilities(m, ex, batch);
  for (size_t i = 0; i < ex.size(); ++i) rb.add(ex.labels[i], probs[i]);
  return rb.finish();
}

namespace {

class ClassifyTask : public SequenceTask {
 public:
  EncodedExamples train, val;
  std::vector<std::string> classes;
  std::vector<float> weight;  // per class (--class-weights)
  Batch batch;
  BatchStats forward_examples(const size_t* idx, size_t n, Rng& rng) override {
    SequenceModel<float>& m = sequence_model(*model_);
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
    return evaluate_classes(sequence_model(*model_), has_val ? val : train, classes);
  }
};

}  // namespace

std::unique_ptr<SequenceTask> classify_task(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                                            const std::string& train_path,
                                            const std::string& command_line, Checkpoint* ck) {
  cfg.validate();
  auto t = std::make_unique<ClassifyTask>();
  LabelledExamples train_ex, val_ex;
  split_data(cfg, train_path, train_ex, val_ex);
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
  take_model(*t, mc, ck, examples_hash(t->train), examples_hash(t->val), train_path);
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

ClassReport train_classifier(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                             const std::string& train_path, const std::string& out_dir,
                             std::ostream& log, const std::string& command_line, Comm& comm) {
  auto t = classify_task(model_cfg, cfg, train_path, command_line, nullptr);
  return run_sequence_task(*t, out_dir, log, command_line, comm, nullptr, cfg.poison_steps);
}

}  // namespace unroll

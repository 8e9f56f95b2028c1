// Conditional language models (one-to-many): a text generated from its
// category's start state, through the sequence task of src/train/sequence_task.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "sequence_task.h"
#include "unroll/core/error.h"
#include "unroll/text/utf8.h"
#include "unroll/text/words.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/classify.h"

namespace unroll {

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
BatchStats lm_batch_stats(LanguageModel<float>& m, const LmBatch& b, const LossSum& l) {
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
    LanguageModel<float>& m = language_model(*model_);
    LmBatch& b = batch = make_lm_batch(train, idx, n);  // the backward reads it
    m.start_state(b.cats.data(), b.B);
    return lm_batch_stats(m, b,
                          m.forward(b.ids.data(), b.targets.data(), b.T, b.B, Mode::Train, &rng));
  }
  // Loss per token and next-token accuracy.
  ClassReport report() override {
    LanguageModel<float>& m = language_model(*model_);
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

}  // namespace

std::unique_ptr<SequenceTask> conditional_task(const ModelConfig& model_cfg,
                                               const ClassifyConfig& cfg,
                                               const std::string& train_path,
                                               const std::string& command_line, Checkpoint* ck) {
  cfg.validate();
  auto t = std::make_unique<ConditionalTask>();
  LabelledExamples train_ex, val_ex;
  split_data(cfg, train_path, train_ex, val_ex);
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
  take_model(*t, mc, ck, examples_hash(t->train.seqs, t->train.cats),
             examples_hash(t->val.seqs, t->val.cats), train_path);
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

ClassReport train_conditional(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                              const std::string& train_path, const std::string& out_dir,
                              std::ostream& log, const std::string& command_line, Comm& comm) {
  auto t = conditional_task(model_cfg, cfg, train_path, command_line, nullptr);
  return run_sequence_task(*t, out_dir, log, command_line, comm, nullptr, cfg.poison_steps);
}

}  // namespace unroll

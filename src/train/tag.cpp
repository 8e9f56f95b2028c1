// Tagging (many-to-many, synced): a label for every token, through the
// sequence task of src/train/sequence_task.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "sequence_task.h"
#include "unroll/core/error.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/classify.h"

namespace unroll {

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

std::vector<std::vector<std::vector<float>>> tag_probabilities(LanguageModel<float>& m,
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

ClassReport evaluate_tags(LanguageModel<float>& m, const EncodedTags& ex,
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
    LanguageModel<float>& m = language_model(*model_);
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
  ClassReport report() override {
    return evaluate_tags(language_model(*model_), has_val ? val : train, tags);
  }
};

}  // namespace

std::unique_ptr<SequenceTask> tag_task(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                                       const std::string& train_path,
                                       const std::string& command_line, Checkpoint* ck) {
  cfg.validate();
  auto t = std::make_unique<TagTask>();
  TaggedSequences train_ex, val_ex;
  split_data(cfg, train_path, train_ex, val_ex);
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
  for (auto& s : t->train.seqs) tokens += s.size();
  t->data = {{"task", "tag"},
             {"classes", tags},
             {"train_path", absolute(train_path)},
             {"examples", train_ex.size() + (cfg.val_file.empty() ? val_ex.size() : 0)},
             {"train_examples", t->train.size()},
             {"val_examples", t->val.size()},
             {"train_tokens", tokens},
             {"command", command_line}};
  take_model(*t, mc, ck, examples_hash(t->train), examples_hash(t->val), train_path);
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

ClassReport train_tagger(const ModelConfig& model_cfg, const ClassifyConfig& cfg,
                         const std::string& train_path, const std::string& out_dir,
                         std::ostream& log, const std::string& command_line, Comm& comm) {
  auto t = tag_task(model_cfg, cfg, train_path, command_line, nullptr);
  return run_sequence_task(*t, out_dir, log, command_line, comm, nullptr, cfg.poison_steps);
}

}  // namespace unroll

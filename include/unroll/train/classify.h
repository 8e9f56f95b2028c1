// unroll/train/classify.h — many-to-one sequence classification: labelled
// examples as token ids, padded length-sorted batches, training with early
// stopping on the validation loss, evaluation (accuracy, per-class precision,
// recall and F1, confusion matrix) and prediction.
//
// The model is a SequenceModel<float> with summary Last, Mean or Max (model/sequence_model.h,
// classify()); checkpoints are the language models' format with
// train["task"] = "classify" and the class names in data["classes"].
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unroll/core/comm.h"
#include "unroll/model/model.h"
#include "unroll/text/labelled.h"
#include "unroll/text/text_corpus.h"
#include "unroll/text/vocab.h"
#include "unroll/train/optimizer.h"

namespace unroll {

struct ClassifyConfig {
  TextFormat format;               // how text becomes tokens (char or word level)
  char separator = '\t';           // between label and text in a file of examples
  int batch = 32;                  // sequences per step
  OptimConfig optim;               // Adam, lr 2e-3 by default
  double clip = 5.0;               // 0 = no clipping
  std::string clip_mode = "norm";  // "norm" (global L2 norm) or "value" (element-wise), optimizer.h
  int max_epochs = 30;
  int64_t max_steps = 0;  // 0 = no limit
  int patience = 4;       // stop after this many epochs without a better validation loss; 0 = never
  double max_seconds = 0;  // 0 = no limit
  std::string val_file;    // validation examples; else val_fraction of the training file
  double val_fraction = 0.2;
  std::string class_weights = "none";  // "none" or "balanced" (weight of class c: N / (C · n_c))
  int max_len = 0;                     // tokens kept from each example (its start); 0 = all
  bool dedupe = false;                 // drop repeated (label, text) examples before the split
  uint64_t seed = 1;                   // initialisation, split and shuffling
  std::string on_nan = "stop";  // a batch with a non-finite loss or gradient: "stop" or "skip" it
  std::string snapshot_every;   // the weights along the way (train/snapshots.h); "" = none
  std::string snapshot_budget;  // at most this much in RUN/snapshots ("500M"); "" = no limit
  std::vector<int64_t> poison_steps;  // tests: these steps' (1-based) loss reads as NaN; not saved
  void validate() const;
};
nlohmann::json to_json(const ClassifyConfig& c);
ClassifyConfig classify_config_from_json(const nlohmann::json& j);

// Examples as token ids. Tokens outside the vocabulary become its <unk>.
struct EncodedExamples {
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> labels;  // class ids; -1 when unlabelled (predict)
  std::vector<std::string> where;
  size_t size() const { return seqs.size(); }
};

// The vocabulary of the training texts: <unk> and every token seen.
Vocab classify_vocab(const LabelledExamples& ex, const TextFormat& f);

// classes empty: the labels are ignored (all -1). A text with no tokens is an
// Error naming its file and line.
EncodedExamples encode_examples(const LabelledExamples& ex, const Vocab& vocab, const TextFormat& f,
                                const std::vector<std::string>& classes, int max_len = 0);

// Class probabilities of every example, [N][classes]: softmax, or for a
// sigmoid head {1 − p, p}. Runs in length-sorted batches of `batch`.
std::vector<std::vector<float>> class_probabilities(SequenceModel<float>& m,
                                                    const EncodedExamples& ex, int batch = 64);

struct ClassReport {
  std::vector<std::string> classes;
  size_t examples = 0;  // scored items: sequences (classify) or tokens (tag)
  std::string unit = "examples";
  bool on_training_data = false;  // a training run without validation data reports on these
  double loss = 0;                // mean cross-entropy, nats
  double accuracy = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  std::vector<double> precision, recall, f1;    // per class (0 where undefined)
  std::vector<int64_t> support;                 // examples per true class
  double macro_f1 = 0;
  std::string text() const;  // accuracy line, per-class table and confusion matrix
  nlohmann::json to_json() const;
};
ClassReport evaluate_classes(SequenceModel<float>& m, const EncodedExamples& ex,
                             const std::vector<std::string>& classes, int batch = 64);

// A self-contained HTML page: the scores, the per-class table and the
// confusion matrix as a heat map (rows: true class, normalised per row).
std::string class_report_page(const ClassReport& r, const std::string& title,
                              const std::string& command_line);

// Trains a classifier on train_path (file or folder) into out_dir:
// best.safetensors (lowest validation loss) and latest.safetensors (each
// epoch). Prints progress to log; returns the best model's validation report
// (or, without validation data, the training report).
ClassReport train_classifier(const ModelConfig& model, const ClassifyConfig& cfg,
                             const std::string& train_path, const std::string& out_dir,
                             std::ostream& log, const std::string& command_line = "",
                             Comm& comm = single_process());

// ---- many-to-many (synced): a label for every token ----
// The model is a LanguageModel<float> (summary Steps) whose
// softmax head has one output per tag; every sequence starts from a zero
// state, and padding after a sequence's end carries no loss. Checkpoints:
// train["task"] = "tag", the tags in data["classes"].
struct EncodedTags {
  std::vector<std::vector<int32_t>> seqs, tags;  // tags -1 when unlabelled
  std::vector<std::string> where;
  size_t size() const { return seqs.size(); }
};
Vocab tag_vocab(const TaggedSequences& t, int64_t min_count = 1);
// tagset empty: the labels are ignored (all -1).
EncodedTags encode_tagged(const TaggedSequences& t, const Vocab& vocab,
                          const std::vector<std::string>& tagset);
// Tag probabilities of every token: [sequence][position][tag].
std::vector<std::vector<std::vector<float>>> tag_probabilities(LanguageModel<float>& m,
                                                               const EncodedTags& ex,
                                                               int batch = 64);
// The report counts tokens (accuracy per token, per-tag scores, confusion).
ClassReport evaluate_tags(LanguageModel<float>& m, const EncodedTags& ex,
                          const std::vector<std::string>& tags, int batch = 64);
ClassReport train_tagger(const ModelConfig& model, const ClassifyConfig& cfg,
                         const std::string& train_path, const std::string& out_dir,
                         std::ostream& log, const std::string& command_line = "",
                         Comm& comm = single_process());

// ---- one-to-many: a language model conditioned on a category ----
// Examples as for classification (a folder of CLASS.txt files, or
// label<TAB>text lines): each text becomes the sequence start, tokens, end
// (start and end: "\n" at char level, <eos> at word level), and the model
// (categories = number of labels) starts it from its label's vector. The
// report: loss per token and next-token accuracy on the validation texts.
// Checkpoints: train["task"] = "conditional", the labels in data["categories"].
ClassReport train_conditional(const ModelConfig& model, const ClassifyConfig& cfg,
                              const std::string& train_path, const std::string& out_dir,
                              std::ostream& log, const std::string& command_line = "",
                              Comm& comm = single_process());

// Continues the run of `task` ("classify", "tag" or "conditional") saved in
// out_dir/latest.safetensors, on the same data, bit for bit as if it had not
// stopped; `adjust` may change the stop conditions. Every task trains through
// the run loop (train/run.h): data-parallel over `comm`, rank 0 writing.
ClassReport resume_sequence_run(const std::string& task, const std::string& out_dir,
                                const std::function<void(ClassifyConfig&)>& adjust,
                                std::ostream& log, const std::string& command_line = "",
                                Comm& comm = single_process(),
                                const std::vector<int64_t>& poison_steps = {});

// The validation examples a classifier (or tagger) checkpoint was trained
// with (its val_file, or the same seeded split of its training data).
LabelledExamples validation_examples(const nlohmann::json& train, const nlohmann::json& data);
TaggedSequences validation_sequences(const nlohmann::json& train, const nlohmann::json& data);
// Throws unless the validation part, encoded, is the one the run validated on
// (data["val_hash"]; a run that recorded none passes): a --val file edited
// since would give numbers that do not compare with the run's.
void require_recorded_validation(const EncodedExamples& ex, const nlohmann::json& train,
                                 const nlohmann::json& data);
void require_recorded_validation(const EncodedTags& ex, const nlohmann::json& train,
                                 const nlohmann::json& data);

}  // namespace unroll

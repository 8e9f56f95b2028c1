// unroll classify train|eval|predict — many-to-one sequence classification.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/shell.h"
#include "unroll/inspect/page.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/classify.h"
#include "unroll/train/trainer.h"

namespace unroll::cli {

namespace {

struct ClassifyTrainArgs {
  std::string data, out, resume, time, separator = "tab", cell = "lstm", summary = "last";
  int layers = 1, hidden = 128, embed = 0, threads = 1;
  bool bidirectional = false;
  float dropout = 0, init_scale = 0.08f;
  std::string init = "pytorch";
  ClassifyConfig cc;
};

char separator_of(const std::string& s) { return s == "space" ? ' ' : '\t'; }

// The bytes of a file, or of standard input for "-"; an empty file is empty text.
std::string read_input(const std::string& path) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0)
    return "";
  return read_text_file(path);
}

// A classifier or tagger checkpoint and what it was trained with.
struct Classifier {
  Checkpoint ck;
  ClassifyConfig cfg;
  std::vector<std::string> classes;
};

Classifier load_classifier(const std::string& path, const std::string& task) {
  Classifier c;
  c.ck = load_checkpoint(path);
  require_task(c.ck, path, task);
  c.cfg = classify_config_from_json(c.ck.train);
  c.classes = c.ck.data.value("classes", std::vector<std::string>());
  const auto& m = c.ck.model_config;
  require(int(c.classes.size()) == (m.head == HeadKind::Sigmoid ? 2 : m.outputs),
          "'" + path + "': its class list does not match its head");
  return c;
}

// The options that may come with --resume: the stop conditions, the
// threads and the NaN policy; the rest come from the checkpoint.
void add_resume_options(CLI::App* s, ClassifyTrainArgs& a) {
  s->add_option("--resume", a.resume,
                "Continue the run in this folder from its latest.safetensors, exactly as if it had "
                "not stopped (give no data; only --steps, --epochs, --time, --patience, --on-nan "
                "and --threads may be given, and stop options given replace all the stored ones, "
                "so --steps alone lifts the stored --epochs; --time counts this session; "
                "default: a new run)")
      ->group("Stopping");
  s->add_option("--steps", a.cc.max_steps, "Stop after this many steps in all (0 = no limit)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 50))
      ->capture_default_str()
      ->group("Stopping");
}

// The options that classify train and tag train share: the model, the
// optimisation, stopping and the validation data.
void add_common_train_options(CLI::App* s, ClassifyTrainArgs& a, const char* default_out) {
  a.out = default_out;
  s->add_option("-o,--out", a.out, "Run folder for checkpoints (best and latest)")
      ->capture_default_str();
  auto& cc = a.cc;
  s->add_option("--cell", a.cell, "Recurrent cell: rnn, rnn-relu, lstm, gru")
      ->check(CLI::IsMember({"rnn", "rnn-tanh", "rnn-relu", "lstm", "gru"}))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--layers", a.layers, "Stacked recurrent layers")
      ->check(CLI::Range(1, 64))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--hidden", a.hidden, "Hidden units per layer (and direction)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--embed", a.embed, "Embedding size; 0 = one-hot input")
      ->check(CLI::Range(0, 65536))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--dropout", a.dropout, "Dropout on non-recurrent connections")
      ->check(CLI::Range(0.0, 0.95))
      ->capture_default_str()
      ->group("Model");
  s->add_option(
       "--init", a.init,
       "How the weights start: uniform (every weight in [-s, s]; char-rnn) or pytorch (torch.nn's "
       "defaults per layer; see unroll train --help)")
      ->check(CLI::IsMember({"uniform", "pytorch"}))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--init-scale", a.init_scale,
                "With --init uniform: weights start uniform in [-s, s]")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--batch", cc.batch, "Sequences per step")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--lr", cc.optim.lr, "Adam learning rate")
      ->check(positive())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--clip", cc.clip, "Gradient clipping threshold; 0 = off")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--clip-mode", cc.clip_mode, "norm (global L2 norm) or value (element-wise)")
      ->check(CLI::IsMember({"norm", "value"}))
      ->capture_default_str()
      ->group("Optimisation");
  add_snapshot_options(*s, cc.snapshot_every, cc.snapshot_budget);
  s->add_option("--on-nan", cc.on_nan,
                "A batch whose loss or gradient is not finite: stop (the checkpoints stay), or "
                "skip it and count it")
      ->check(CLI::IsMember({"stop", "skip"}))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option(
       "--weight-decay", cc.optim.weight_decay,
       "Decoupled weight decay (AdamW): every weight shrinks by lr x this at each step; 0 = off")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--seed", cc.seed,
                "Random seed (initialisation, validation split, shuffling, dropout)")
      ->check(seed_check())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--epochs", cc.max_epochs, "At most this many passes over the training examples")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str()
      ->group("Stopping");
  s->add_option(
       "--patience", cc.patience,
       "Stop after this many epochs without a better validation loss (0 = never stop early)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Stopping");
  s->add_option("--time", a.time,
                "Stop after this much training time, e.g. 90s, 5m (default: no limit)")
      ->check(duration_check())
      ->group("Stopping");
  s->add_option("--val", cc.val_file,
                "Validation examples from this file (same format) instead of a split (default: "
                "none, see --val-fraction)")
      ->group("Data");
  s->add_option("--val-fraction", cc.val_fraction,
                "Without --val: this fraction of the examples (a seeded random choice) validates")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str()
      ->group("Data");
  s->add_option("--min-count", cc.format.min_count,
                "Tokens seen fewer times in training become <unk>")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40))
      ->capture_default_str()
      ->group("Data");
  add_threads_option(*s, a.threads);
  add_resume_options(s, a);
}

// The model and the settings from the parsed options.
ModelConfig model_of(ClassifyTrainArgs& a) {
  apply_threads(a.threads);
  if (!a.time.empty()) a.cc.max_seconds = parse_duration(a.time);  // checked: > 0
  ModelConfig mc;
  mc.cell = parse_cell(a.cell);
  mc.layers = a.layers;
  mc.hidden = a.hidden;
  mc.embed = a.embed;
  mc.dropout = a.dropout;
  mc.init = parse_init(a.init);
  mc.init_scale = a.init_scale;
  mc.forget_bias = default_forget_bias(mc.init);
  mc.bidirectional = a.bidirectional;
  mc.summary = parse_summary(a.summary);
  mc.vocab = 1, mc.outputs = 1;  // set from the data
  a.cc.poison_steps = test_nan_steps();
  return mc;
}

// Trains (or resumes) under Ctrl-C / SIGTERM handling: the first stops after
// the step, saves latest.safetensors, and the exit status is then 128 +
// signal. Data-parallel under mpirun: rank 0 prints and writes. Prints the
// report of the best checkpoint on rank 0 when the run ended by itself.
void train_task(CLI::App* s, ClassifyTrainArgs& a, const std::string& task, const ModelConfig& mc) {
  Comm& comm = process_comm();
  std::ostream quiet(nullptr);  // ranks other than 0 print nothing but errors
  std::ostream& log = comm.root() ? std::cout : quiet;
  const std::string dir = a.resume.empty() ? a.out : a.resume;
  const std::string resume = resume_command(task, dir);
  ClassReport r;
  if (!a.resume.empty()) {
    require(a.data.empty(), "--resume takes its data from the checkpoint: give no data");
    for (const CLI::Option* o : s->get_options()) {
      const auto names = o->get_lnames();
      static const std::vector<std::string> may = {"resume", "steps",          "epochs",
                                                   "time",   "patience",       "threads",
                                                   "on-nan", "snapshot-every", "snapshot-budget"};
      require(o->count() == 0 || names.empty() ||
                  std::find(may.begin(), may.end(), names[0]) != may.end(),
              "--" + (names.empty() ? std::string() : names[0]) +
                  " cannot change on --resume: it comes from the checkpoint (only --steps, "
                  "--epochs, --time, --patience, --on-nan, --snapshot-every, --snapshot-budget "
                  "and --threads can)");
    }
  } else {
    require(!a.data.empty(), "no training data given (see --help), or --resume RUN");
  }
  const int sig = with_interrupts(dir, resume, !comm.root(), [&] {
    if (a.resume.empty()) {
      if (task == "classify")
        r = train_classifier(mc, a.cc, a.data, a.out, log, command_line(), comm);
      else if (task == "tag")
        r = train_tagger(mc, a.cc, a.data, a.out, log, command_line(), comm);
      else
        r = train_conditional(mc, a.cc, a.data, a.out, log, command_line(), comm);
    } else {
      r = resume_sequence_run(
          task, a.resume,
          [&](ClassifyConfig& c) {
            auto given = [&](const char* o) { return s->count(o) > 0; };
            if (given("--steps") || given("--epochs") || given("--time")) {
              c.max_steps = a.cc.max_steps;  // stop options replace all the stored ones
              c.max_epochs = given("--epochs") ? a.cc.max_epochs : 1000000;
              c.max_seconds = a.cc.max_seconds;
            }
            if (given("--patience")) c.patience = a.cc.patience;
            if (given("--on-nan")) c.on_nan = a.cc.on_nan;
            if (given("--snapshot-every")) c.snapshot_every = a.cc.snapshot_every;
            if (given("--snapshot-budget")) c.snapshot_budget = a.cc.snapshot_budget;
            c.validate();
          },
          log, command_line(), comm, a.cc.poison_steps);
    }
    return interrupt_requested();
  });
  if (sig && comm.size() > 1) {
    // mpirun has begun ending the job; MPI_Finalize would wait for it. The checkpoint is saved.
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(interrupt_exit_code(sig));
  }
  if (sig || !comm.root()) return;
  if (task == "conditional") {
    std::printf("\nbest checkpoint: %.4f nats per token, next-token accuracy %.2f%%\n", r.loss,
                100 * r.accuracy);
    return;
  }
  std::cout << "\n"
            << (r.on_training_data ? "training " : "validation ") << r.unit
            << ", best checkpoint:\n"
            << r.text();
}

void add_classify_train(CLI::App& parent) {
  auto a = std::make_shared<ClassifyTrainArgs>();
  CLI::App* s = parent.add_subcommand("train", "Train a classifier on labelled text");
  s->add_option("data", a->data,
                "Examples: a file of 'label<TAB>text' lines, or a folder of CLASS.txt files with "
                "one example per line");
  add_common_train_options(s, *a, "run-classify");
  auto& cc = a->cc;
  s->add_flag("--bidirectional", a->bidirectional,
              "Also read each sequence backwards; the head sees both directions")
      ->group("Model");
  s->add_option("--summary", a->summary,
                "What the head reads: last (the state at the sequence's last step), mean or max "
                "(each unit's mean or maximum over its steps)")
      ->check(CLI::IsMember({"last", "mean", "max"}))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--class-weights", cc.class_weights,
                "none, or balanced: each class weighs N / (classes × its examples) in the loss")
      ->check(CLI::IsMember({"none", "balanced"}))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option(
       "--separator", a->separator,
       "Between label and text: tab, or space (the label ends at the first space, as in SST-2)")
      ->check(CLI::IsMember({"tab", "space"}))
      ->capture_default_str()
      ->group("Data");
  s->add_option("--level", cc.format.level, "Tokens: char (Unicode code points) or word")
      ->check(CLI::IsMember({"char", "word"}))
      ->capture_default_str()
      ->group("Data");
  s->add_flag("--pretokenized", cc.format.pretokenized,
              "Word level (implies --level word): words are separated by spaces")
      ->group("Data");
  s->add_option("--max-len", cc.max_len, "Keep at most this many tokens of each example (0 = all)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Data");
  s->add_flag("--dedupe", cc.dedupe,
              "Drop repeated (label, text) examples before the split, so that no validation "
              "example is also a training one")
      ->group("Data");
  s->callback([a, s]() {
    ModelConfig mc = model_of(*a);
    ClassifyConfig& cc = a->cc;
    cc.separator = separator_of(a->separator);
    if (cc.format.pretokenized) cc.format.level = "word";
    cc.format.eos = false;
    train_task(s, *a, "classify", mc);
  });
}

void add_tag_train(CLI::App& parent) {
  auto a = std::make_shared<ClassifyTrainArgs>();
  CLI::App* s = parent.add_subcommand(
      "train", "Train a tagger on 'token<TAB>tag' lines (a blank line between sequences)");
  s->add_option(
      "data", a->data,
      "Tagged sequences: one 'token<TAB>tag' line per token, a blank line between sequences");
  add_common_train_options(s, *a, "run-tag");
  s->callback([a, s]() {
    ModelConfig mc = model_of(*a);
    a->cc.format.level = "word";
    train_task(s, *a, "tag", mc);
  });
}

// classify eval / tag eval: the report on labelled examples, as text or
// JSON, and optionally as a page.
void add_eval_sub(CLI::App& parent, const std::string& task) {
  struct Args {
    std::string checkpoint, data, html;
    bool json = false, validation = false;
    int threads = 1;
  };
  auto a = std::make_shared<Args>();
  const bool tag = task == "tag";
  CLI::App* s =
      parent.add_subcommand("eval", tag ? "Per-token accuracy, per-tag precision/recall/F1 and the "
                                          "confusion matrix on tagged sequences"
                                        : "Accuracy, per-class precision/recall/F1 and the "
                                          "confusion matrix on labelled examples");
  s->add_option("checkpoint", a->checkpoint,
                tag ? "Tagger checkpoint (.safetensors)" : "Classifier checkpoint (.safetensors)")
      ->required();
  s->add_option("data", a->data,
                "Labelled examples in the training format (give this or --validation)");
  s->add_flag("--validation", a->validation,
              "Evaluate the validation examples the checkpoint was trained with");
  CLI::Option* html_opt = s->add_option(
      "--html", a->html,
      "Also write a page with the scores and the confusion matrix as a heat map to this file");
  s->add_flag("--json", a->json, "Print the report as JSON");
  add_threads_option(*s, a->threads);
  s->callback([a, task, tag, html_opt]() {
    apply_threads(a->threads);
    require(a->data.empty() != !a->validation,
            a->validation ? "give labelled examples to evaluate, or --validation, not both"
                          : "nothing to evaluate: give labelled examples, or --validation for the "
                            "ones the checkpoint was validated on");
    require(!html_opt->count() || !a->html.empty(), "--html needs a file name");
    if (!a->html.empty()) check_output_path(a->html, "page", {a->checkpoint, a->data});
    Classifier c = load_classifier(a->checkpoint, task);
    ClassReport r;
    if (tag) {
      TaggedSequences ex =
          a->validation ? validation_sequences(c.ck.train, c.ck.data) : read_tagged(a->data);
      const EncodedTags enc = encode_tagged(ex, c.ck.vocab, c.classes);
      if (a->validation) require_recorded_validation(enc, c.ck.train, c.ck.data);
      r = evaluate_tags(language_model(*c.ck.model), enc, c.classes);
    } else {
      LabelledExamples ex = a->validation ? validation_examples(c.ck.train, c.ck.data)
                                          : read_labelled(a->data, c.cfg.separator);
      const EncodedExamples enc =
          encode_examples(ex, c.ck.vocab, c.ck.format, c.classes, c.cfg.max_len);
      if (a->validation) require_recorded_validation(enc, c.ck.train, c.ck.data);
      r = evaluate_classes(sequence_model(*c.ck.model), enc, c.classes);
    }
    const std::string what =
        a->validation ? (tag ? "validation sequences" : "validation examples") : a->data;
    nlohmann::json j = r.to_json();
    j["checkpoint"] = a->checkpoint;
    j["data"] = what;
    if (a->json)
      std::cout << j.dump(2) << "\n";
    else
      std::cout << what << "\n" << r.text();
    if (!a->html.empty()) {
      j["format"] = "unroll-classify-1";
      j["title"] = std::string(tag ? "Tagger" : "Classifier") + " on " + what;
      j["command"] = command_line();
      const std::string html = classify_page_html(j);
      write_file_atomic(a->html, {html}, "page");
      if (!a->json) std::cout << "page: " << a->html << "\n";
    }
  });
}

void add_classify_predict(CLI::App& parent) {
  struct Args {
    std::string checkpoint, input = "-";
    bool all = false;
    int threads = 1;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s = parent.add_subcommand(
      "predict", "Label each line of text: prints label, probability and the text");
  s->add_option("checkpoint", a->checkpoint, "Classifier checkpoint (.safetensors)")->required();
  s->add_option("input", a->input, "Text file with one example per line; - reads standard input")
      ->capture_default_str();
  s->add_flag("--all", a->all, "Print every class's probability (class:p, most likely first)");
  add_threads_option(*s, a->threads);
  s->callback([a, s]() {
    apply_threads(a->threads);
    Classifier c = load_classifier(a->checkpoint, "classify");
    const std::string source = a->input == "-" ? "<stdin>" : a->input;
    // One output line per input line: blank lines stay blank, so the output
    // lines up with the input.
    const std::vector<std::string> lines = text_lines(read_input(a->input), source);
    LabelledExamples ex;
    std::vector<bool> is_blank;
    for (size_t n = 0; n < lines.size(); ++n) {
      is_blank.push_back(blank(lines[n]));
      if (is_blank.back()) continue;
      ex.texts.push_back(lines[n]);
      ex.labels.push_back("");
      ex.where.push_back(source + ":" + std::to_string(n + 1));
    }
    if (ex.size() == 0) return;
    EncodedExamples enc = encode_examples(ex, c.ck.vocab, c.ck.format, {}, c.cfg.max_len);
    auto probs = class_probabilities(sequence_model(*c.ck.model), enc);
    size_t i = 0;
    for (bool b : is_blank) {
      if (b) {
        std::printf("\n");
        continue;
      }
      std::vector<int> order(c.classes.size());
      for (size_t k = 0; k < order.size(); ++k) order[k] = int(k);
      std::stable_sort(order.begin(), order.end(),
                       [&](int x, int y) { return probs[i][x] > probs[i][y]; });
      std::printf("%s\t%.4f", for_stdout(c.classes[order[0]]).c_str(), probs[i][order[0]]);
      if (a->all)
        for (size_t k = 1; k < order.size(); ++k)
          std::printf("\t%s:%.4f", for_stdout(c.classes[order[k]]).c_str(), probs[i][order[k]]);
      std::printf("\t%s\n", for_stdout(ex.texts[i]).c_str());
      ++i;
    }
  });
}

void add_tag_predict(CLI::App& parent) {
  struct Args {
    std::string checkpoint, input;
    int threads = 1;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s = parent.add_subcommand(
      "predict",
      "Tag every token: prints token, tag and probability, a blank line between sequences");
  s->add_option("checkpoint", a->checkpoint, "Tagger checkpoint (.safetensors)")->required();
  a->input = "-";
  s->add_option("input", a->input,
                "One token per line, a blank line between sequences (anything after a tab is "
                "ignored); - reads standard input")
      ->capture_default_str();
  add_threads_option(*s, a->threads);
  s->callback([a, s]() {
    apply_threads(a->threads);
    Classifier c = load_classifier(a->checkpoint, "tag");
    const std::string bytes = read_input(a->input);
    if (bytes.find_first_not_of(" \t\r\n") == std::string::npos) return;  // nothing to tag
    TaggedSequences ex = read_tagged_text(bytes, a->input == "-" ? "<stdin>" : a->input, false);
    auto probs = tag_probabilities(language_model(*c.ck.model), encode_tagged(ex, c.ck.vocab, {}));
    for (size_t i = 0; i < ex.size(); ++i) {
      if (i) std::printf("\n");
      for (size_t t = 0; t < probs[i].size(); ++t) {
        const auto& p = probs[i][t];
        const size_t k = size_t(std::max_element(p.begin(), p.end()) - p.begin());
        std::printf("%s\t%s\t%.4f\n", for_stdout(ex.tokens[i][t]).c_str(),
                    for_stdout(c.classes[k]).c_str(), p[k]);
      }
    }
  });
}

}  // namespace

void add_conditional(CLI::App& app) {
  auto a = std::make_shared<ClassifyTrainArgs>();
  CLI::App* s = app.add_subcommand(
      "conditional",
      "Train a language model conditioned on a category (one-to-many), e.g. names by language; "
      "generate with 'unroll sample CHECKPOINT --category NAME'");
  s->add_option("data", a->data,
                "Texts by category: a folder of CATEGORY.txt files (one text a line), or "
                "'category<TAB>text' lines");
  add_common_train_options(s, *a, "run-conditional");
  s->add_option("--separator", a->separator, "Between category and text in a file: tab or space")
      ->check(CLI::IsMember({"tab", "space"}))
      ->capture_default_str()
      ->group("Data");
  s->add_option("--level", a->cc.format.level, "Tokens: char (Unicode code points) or word")
      ->check(CLI::IsMember({"char", "word"}))
      ->capture_default_str()
      ->group("Data");
  s->add_flag("--pretokenized", a->cc.format.pretokenized,
              "Word level (implies --level word): words are separated by spaces")
      ->group("Data");
  s->callback([a, s]() {
    ModelConfig mc = model_of(*a);
    a->cc.separator = separator_of(a->separator);
    if (a->cc.format.pretokenized) a->cc.format.level = "word";
    a->cc.format.eos = false;
    train_task(s, *a, "conditional", mc);
  });
}

void add_classify(CLI::App& app) {
  CLI::App* s =
      app.add_subcommand("classify", "Sequence classification (many-to-one): train, eval, predict");
  s->require_subcommand(1);
  add_classify_train(*s);
  add_eval_sub(*s, "classify");
  add_classify_predict(*s);
}

void add_tag(CLI::App& app) {
  CLI::App* s =
      app.add_subcommand("tag", "Per-token labelling (many-to-many): train, eval, predict");
  s->require_subcommand(1);
  add_tag_train(*s);
  add_eval_sub(*s, "tag");
  add_tag_predict(*s);
}

}  // namespace unroll::cli

// unroll train FILE... — train a character- or word-level language model.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <tuple>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/shell.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/trainer.h"

namespace unroll::cli {

namespace {
struct TrainArgs {
  std::vector<std::string> files;
  std::string out = "run";
  std::string resume;
  std::string cell = "lstm";
  int layers = 2, hidden = 128, embed = 0;
  float dropout = 0, init_scale = 0.08f, forget_bias = NAN;  // NAN: the --init's default
  float dropout_in = -1, dropout_out = -1, embed_dropout = 0, weight_drop = 0;  // -1: --dropout
  bool locked = false, tie = false;
  std::string init = "pytorch";
  std::string optim = "adam";
  std::string betas = "0.9,0.999";
  float lr = 2e-3f, momentum = 0.9f, alpha = 0.95f;
  std::string split = "0.9,0.05";
  std::string time;
  TextFormat format;
  std::string vocab_from, init_from;
  TrainConfig tc;
  int threads = 1;
};

// Trains under Ctrl-C / SIGTERM handling; an interrupted run exits 128 + signal.
void run(Trainer& t) {
  Comm& comm = process_comm();
  t.set_comm(comm);
  t.command_line = command_line();
  // Under mpirun stdout is a pseudo-terminal even into a log file: plain lines.
  t.live_progress = comm.size() == 1 && ::isatty(STDOUT_FILENO);
  t.poison_steps = test_nan_steps();
  std::ostream quiet(nullptr);  // ranks other than 0 print nothing but errors
  with_interrupts(t.run_dir(), t.resume_command(), !comm.root(), [&] {
    t.train(comm.root() ? std::cout : quiet);
    return t.interrupted();
  });
  if (t.interrupted() && comm.size() > 1) {
    // mpirun has begun ending the job (it sends SIGTERM, then SIGKILL a
    // second later); MPI_Finalize would wait for it. The checkpoint is saved.
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(interrupt_exit_code(t.interrupted()));
  }
}
// --steps 0 and --epochs 0 lift one limit; with no other, a new run and a
// resume alike would train for ever: refused the same way on both.
void require_a_limit(const TrainConfig& c) {
  require(c.max_steps > 0 || c.max_epochs > 0 || c.max_seconds > 0,
          "--steps 0 and --epochs 0 mean no limit of that kind, and no other limit is set: the run "
          "would never stop; give a positive --steps, --epochs or --time");
}

}  // namespace

std::pair<double, double> parse_split(const std::string& text) {
  const std::string usage =
      "--split '" + text +
      "': expected fractions TRAIN,VAL (the rest tests) or TRAIN,VAL,TEST adding up to 1, "
      "e.g. 0.9,0.05";
  std::vector<double> f;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    const std::string part =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    double v = NAN;
    require(read_decimal(part, &v) && v >= 0 && v <= 1, usage);
    f.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  require(f.size() <= 3, usage);
  if (f.size() == 1) f.push_back(1 - f[0]);
  if (f.size() == 3)
    require(std::fabs(f[0] + f[1] + f[2] - 1) < 1e-6,
            usage + " (these add up to " + std::to_string(f[0] + f[1] + f[2]) + ")");
  return {f[0], f[1]};
}

namespace {
// --betas B1,B2: two decimals in [0, 1).
std::pair<float, float> parse_betas(const std::string& text) {
  const std::string usage =
      "--betas '" + text + "': expected two numbers in [0, 1), e.g. 0.9,0.999";
  const size_t comma = text.find(',');
  double b1 = NAN, b2 = NAN;
  require(comma != std::string::npos && read_decimal(text.substr(0, comma), &b1) &&
              read_decimal(text.substr(comma + 1), &b2) && b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1,
          usage);
  return {float(b1), float(b2)};
}
}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* s =
      app.add_subcommand("train", "Train a character- or word-level language model on UTF-8 text");
  s->add_option("files", a->files, "Text files to train on (UTF-8; concatenated in order)");
  s->add_option("-o,--out", a->out, "Run folder for checkpoints (latest and best)")
      ->capture_default_str();
  s->add_option("--resume", a->resume,
                "Continue the run in this folder from its latest checkpoint (model, optimizer and "
                "data options come from the checkpoint; default: a new run)");
  auto& tc = a->tc;
  // Model
  s->add_option("--cell", a->cell, "Recurrent cell: rnn, rnn-relu, lstm, gru")
      ->check(CLI::IsMember({"rnn", "rnn-tanh", "rnn-relu", "lstm", "gru"}))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--layers", a->layers, "Stacked recurrent layers")
      ->check(CLI::Range(1, 64))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--hidden", a->hidden, "Hidden units per layer")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--embed", a->embed, "Embedding size; 0 = one-hot input")
      ->check(CLI::Range(0, 65536))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--dropout", a->dropout,
                "Dropout on non-recurrent connections: between layers, and on the embedding's "
                "output and the head's input unless --dropout-in / --dropout-out say otherwise")
      ->check(CLI::Range(0.0, 0.95))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--dropout-in", a->dropout_in,
                "Dropout on the embedding's output (default: --dropout)")
      ->check(CLI::Range(0.0, 0.95))
      ->group("Model");
  s->add_option("--dropout-out", a->dropout_out,
                "Dropout on the top layer's states, before the head (default: --dropout)")
      ->check(CLI::Range(0.0, 0.95))
      ->group("Model");
  s->add_flag("--locked-dropout", a->locked,
              "Variational dropout (Gal & Ghahramani): one mask per stream for a whole chunk, the "
              "same at every step")
      ->group("Model");
  s->add_option("--embed-dropout", a->embed_dropout,
                "Drop whole words: rows of the embedding, for a whole chunk (needs --embed)")
      ->check(CLI::Range(0.0, 0.95))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--weight-drop", a->weight_drop,
                "DropConnect on the recurrent weights W_hh, one mask per chunk (AWD-LSTM)")
      ->check(CLI::Range(0.0, 0.95))
      ->capture_default_str()
      ->group("Model");
  s->add_flag("--tie", a->tie,
              "Tie the head's weight to the embedding (Press & Wolf; needs --embed equal to "
              "--hidden)")
      ->group("Model");
  s->add_option(
       "--init", a->init,
       "How the weights start: uniform (every weight in [-s, s], biases 0; char-rnn) or pytorch "
       "(torch.nn's defaults: embedding N(0,1), recurrent weights and biases and the head "
       "U(+-1/sqrt(fan-in)))")
      ->check(CLI::IsMember({"uniform", "pytorch"}))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--init-scale", a->init_scale,
                "With --init uniform: weights start uniform in [-s, s]")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str()
      ->group("Model");
  s->add_option("--forget-bias", a->forget_bias,
                "LSTM forget-gate bias added at start (default: 1 with --init uniform, 0 with "
                "--init pytorch)")
      ->group("Model");
  // Optimisation
  s->add_option("--batch", tc.batch, "Parallel streams through the text (B)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--seq", tc.seq, "Steps per chunk for truncated BPTT (T)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--optim", a->optim, "Optimizer: adam, rmsprop, adagrad, sgd")
      ->check(CLI::IsMember({"adam", "rmsprop", "adagrad", "sgd"}))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--lr", a->lr, "Learning rate")
      ->check(positive())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--momentum", a->momentum, "SGD momentum")
      ->check(CLI::Range(0.0, 0.9999))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--rmsprop-alpha", a->alpha, "RMSprop decay of the squared-gradient average")
      ->check(CLI::Range(0.0, 0.9999))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--betas", a->betas,
                "Adam's decay rates of the first and second moment averages, B1,B2 in [0, 1)")
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--eps", tc.optim.eps,
                "The epsilon added to the root of the squared-gradient average (Adam, RMSprop, "
                "Adagrad)")
      ->check(positive())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--clip", tc.clip, "Gradient clipping threshold; 0 = off")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--clip-mode", tc.clip_mode, "norm (global L2 norm) or value (element-wise)")
      ->check(CLI::IsMember({"norm", "value"}))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--lr-schedule", tc.lr_schedule,
                "step: multiply the rate by --lr-decay at each epoch after --lr-decay-after; "
                "cosine: from --lr down to --lr-min at the last step (of --steps or --epochs; with "
                "--time alone, where the time is estimated to end); "
                "plateau: multiply it by --lr-decay (default 0.5) after --patience validations "
                "without a new best")
      ->check(CLI::IsMember({"step", "cosine", "plateau"}))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option(
       "--lr-decay", tc.lr_decay,
       "step: at each epoch after --lr-decay-after, multiply the learning rate by this, in "
       "(0, 1]; plateau: the factor of each cut")
      ->check(positive())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--lr-decay-after", tc.lr_decay_after,
                "Epochs at the full learning rate before --lr-decay starts")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--warmup", tc.warmup,
                "Raise the learning rate linearly from 0 over this many first steps (any schedule)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--lr-min", tc.lr_min, "cosine: the learning rate at the last step")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--patience", tc.patience,
                "plateau: validations in a row without a new best before the rate is cut")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--asgd", tc.asgd,
                "NT-ASGD (Merity et al.): once a validation loss is worse than the best of those "
                "more than N validations before it, average the weights from then on; validation "
                "and best.safetensors use the average (0 = off; their N: 5)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--weight-decay", tc.optim.weight_decay,
                "Decoupled weight decay (AdamW; with any optimizer): every step, theta -= lr * "
                "this * theta")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--loss-norm", tc.loss_norm,
                "token: mean loss per token; batch: summed over steps, mean over the batch "
                "(Zaremba et al.)")
      ->check(CLI::IsMember({"token", "batch"}))
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--seed", tc.seed, "Random seed (initialisation, dropout, samples)")
      ->check(seed_check())
      ->capture_default_str()
      ->group("Optimisation");
  s->add_option("--split", a->split,
                "Train and validation fractions; the rest is test (one value: the rest validates; "
                "three: train, validation, test, adding up to 1)")
      ->capture_default_str()
      ->group("Data");
  // One file per --val/--test (repeat the option for more), so that they never
  // swallow the training files that follow them.
  s->add_option("--val", tc.val_files,
                "Validation text from this file instead of --split (all of the training files then "
                "train; repeatable; default: none)")
      ->allow_extra_args(false)
      ->group("Data");
  s->add_option("--test", tc.test_files,
                "Also evaluate this file at every validation and report it (never used to pick the "
                "best checkpoint; repeatable)")
      ->allow_extra_args(false)
      ->group("Data");
  s->add_option("--level", a->format.level,
                "Tokens: char (Unicode code points) or word (words, punctuation, spaces, newlines)")
      ->check(CLI::IsMember({"char", "word"}))
      ->capture_default_str()
      ->group("Data");
  s->add_flag("--pretokenized", a->format.pretokenized,
              "Word level (implies --level word): the text is words separated by spaces, one "
              "sentence a line (Penn Treebank); each line ends with <eos>")
      ->group("Data");
  s->add_option("--min-count", a->format.min_count,
                "Word level (implies --level word): words seen fewer times become <unk>")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40))
      ->capture_default_str()
      ->group("Data");
  s->add_option("--max-vocab", a->format.max_vocab,
                "Word level (implies --level word): keep the most frequent words, this many tokens "
                "with <unk> (0 = all)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40))
      ->capture_default_str()
      ->group("Data");
  s->add_option("--vocab-from", a->vocab_from,
                "Take the vocabulary (and level) from this checkpoint, e.g. to fine-tune on new "
                "text (default: built from the training text)")
      ->group("Data");
  s->add_option(
       "--init-from", a->init_from,
       "Start from this language model's weights, e.g. one made by 'unroll import', with its "
       "cell, sizes, vocabulary and text format; a new run with a new optimizer state "
       "(default: fresh weights as --init says)")
      ->group("Model");
  // Stopping and reporting
  s->add_option(
       "--steps", tc.max_steps,
       "Stop after this many steps (0 = no step limit; then --epochs or --time must set one)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Stopping");
  s->add_option("--epochs", tc.max_epochs,
                "Stop after this many epochs (0 = no epoch limit; then --steps or --time must set "
                "one; with none of the three: 10)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Stopping");
  s->add_option("--time", a->time,
                "Stop after this much training time in this session, e.g. 90s, 5m, 1h30m (default: "
                "no limit)")
      ->check(duration_check())
      ->group("Stopping");
  s->add_option("--eval-every", tc.eval_every,
                "Validate and checkpoint every N steps (0 = at the end)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Reporting");
  s->add_option("--sample-every", tc.sample_every,
                "Print a generated sample every N steps (0 = never)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Reporting");
  s->add_option("--sample-len", tc.sample_len, "Characters per sample")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Reporting");
  s->add_option("--sample-temperature", tc.sample_temperature, "Temperature of those samples")
      ->check(positive())
      ->capture_default_str()
      ->group("Reporting");
  s->add_option("--print-every", tc.print_every, "Progress line every N steps (0 = every 2 s)")
      ->check(non_negative())
      ->capture_default_str()
      ->group("Reporting");
  add_snapshot_options(*s, tc.snapshot_every, tc.snapshot_budget);
  s->add_option("--on-nan", tc.on_nan,
                "A step whose loss or gradient is not finite: stop (the last checkpoint stays), or "
                "skip the batch and count it")
      ->check(CLI::IsMember({"stop", "skip"}))
      ->capture_default_str()
      ->group("Optimisation");
  add_threads_option(*s, a->threads);

  s->callback([a, s]() {
    apply_threads(a->threads);
    TrainConfig& tc = a->tc;
    if (s->count("--time")) tc.max_seconds = parse_duration(a->time);  // checked: > 0
    if (!a->resume.empty()) {
      require(a->files.empty(), "--resume takes its files from the checkpoint: give no files");
      for (const char* fixed : {"--out",
                                "--cell",
                                "--layers",
                                "--hidden",
                                "--embed",
                                "--dropout",
                                "--init-scale",
                                "--forget-bias",
                                "--init",
                                "--batch",
                                "--dropout-in",
                                "--dropout-out",
                                "--locked-dropout",
                                "--embed-dropout",
                                "--weight-drop",
                                "--tie",
                                "--seq",
                                "--optim",
                                "--lr",
                                "--momentum",
                                "--rmsprop-alpha",
                                "--clip",
                                "--clip-mode",
                                "--lr-decay",
                                "--lr-decay-after",
                                "--loss-norm",
                                "--lr-schedule",
                                "--warmup",
                                "--lr-min",
                                "--patience",
                                "--weight-decay",
                                "--asgd",
                                "--betas",
                                "--eps",
                                "--seed",
                                "--split",
                                "--val",
                                "--test",
                                "--level",
                                "--pretokenized",
                                "--min-count",
                                "--max-vocab",
                                "--vocab-from",
                                "--init-from"})
        require(s->count(fixed) == 0, std::string(fixed) +
                                          " cannot change on --resume: it comes from the "
                                          "checkpoint (only stop and reporting options can)");
      auto t = Trainer::resume(a->resume, [&](TrainConfig& c) {
        auto given = [&](const char* name) { return s->count(name) > 0; };
        // Stop options given with --resume replace all the stored ones.
        if (given("--steps") || given("--epochs") || given("--time")) {
          c.max_steps = tc.max_steps;
          c.max_epochs = tc.max_epochs;
          c.max_seconds = tc.max_seconds;
        }
        require_a_limit(c);  // also a run stored without one (by the --epochs 0 bug of old)
        if (given("--eval-every")) c.eval_every = tc.eval_every;
        if (given("--sample-every")) c.sample_every = tc.sample_every;
        if (given("--sample-len")) c.sample_len = tc.sample_len;
        if (given("--print-every")) c.print_every = tc.print_every;
        if (given("--on-nan")) c.on_nan = tc.on_nan;
        if (given("--snapshot-every")) c.snapshot_every = tc.snapshot_every;
        if (given("--snapshot-budget")) c.snapshot_budget = tc.snapshot_budget;
        c.validate();
      });
      if (process_comm().root()) {
        t->command_line = command_line();
        t->lock_run_folder();  // before anything is said: a second writer is refused at once
        std::cerr << "resuming '" << a->resume << "' at step " << t->step() << "\n";
      }
      run(*t);
      return;
    }
    require(!a->files.empty(), "no training text given: unroll train FILE... (see --help)");
    for (auto& f : a->files) require(!f.empty(), "an empty file name was given");
    std::tie(tc.train_frac, tc.val_frac) = parse_split(a->split);
    tc.optim.kind = parse_optim(a->optim);
    tc.optim.lr = a->lr;
    tc.optim.momentum = a->momentum;
    tc.optim.alpha = a->alpha;
    std::tie(tc.optim.beta1, tc.optim.beta2) = parse_betas(a->betas);
    if (tc.lr_schedule == "plateau" && !s->count("--lr-decay")) tc.lr_decay = 0.5f;
    if (!s->count("--steps") && !s->count("--epochs") && !s->count("--time")) tc.max_epochs = 10;
    require_a_limit(tc);
    tc.validate();
    ModelConfig mc;
    mc.cell = parse_cell(a->cell);
    mc.layers = a->layers;
    mc.hidden = a->hidden;
    mc.embed = a->embed;
    // Options that would do nothing are refused rather than ignored.
    require(!s->count("--dropout-in") || a->embed > 0 || !a->init_from.empty(),
            "--dropout-in drops the embedding's output: give --embed too (with one-hot input, "
            "--dropout acts between layers and --dropout-out before the head)");
    require(!a->locked || a->dropout > 0 || a->dropout_in > 0 || a->dropout_out > 0,
            "--locked-dropout changes how --dropout, --dropout-in and --dropout-out draw their "
            "masks: give one of them a rate");
    require(!s->count("--patience") || tc.lr_schedule == "plateau",
            "--patience counts validations for --lr-schedule plateau: give that schedule too");
    require(!s->count("--lr-min") || tc.lr_schedule == "cosine",
            "--lr-min is where --lr-schedule cosine ends: give that schedule too");
    mc.dropout = a->dropout;
    mc.dropout_in = a->dropout_in;
    mc.dropout_out = a->dropout_out;
    mc.locked = a->locked;
    mc.embed_dropout = a->embed_dropout;
    mc.weight_drop = a->weight_drop;
    mc.tie = a->tie;
    mc.init = parse_init(a->init);
    mc.init_scale = a->init_scale;
    mc.forget_bias = std::isnan(a->forget_bias) ? default_forget_bias(mc.init) : a->forget_bias;
    mc.head = HeadKind::Softmax;
    std::unique_ptr<Checkpoint> from;  // --init-from
    if (!a->init_from.empty()) {
      for (const char* own : {"--cell", "--layers", "--hidden", "--embed", "--tie", "--init",
                              "--init-scale", "--forget-bias", "--vocab-from", "--level",
                              "--pretokenized", "--min-count", "--max-vocab"})
        require(s->count(own) == 0,
                std::string(own) + " comes from --init-from's checkpoint: give one or the other");
      from = std::make_unique<Checkpoint>(load_checkpoint(a->init_from));
      require(from->task == "lm",
              "--init-from starts a language model from a language model's weights, and '" +
                  a->init_from + "' is a " +
                  (from->task == "classify" ? "classifier"
                   : from->task == "tag"    ? "tagger"
                                            : "conditional language model"));
      const ModelConfig& fc = from->model_config;
      mc.cell = fc.cell;
      mc.layers = fc.layers;
      mc.hidden = fc.hidden;
      mc.embed = fc.embed;
      mc.tie = fc.tie;
      mc.init = fc.init;
      mc.init_scale = fc.init_scale;
      mc.forget_bias = fc.forget_bias;
      require(!s->count("--dropout-in") || mc.embed > 0,
              "--dropout-in drops the embedding's output, and '" + a->init_from +
                  "' has one-hot input");
      tc.init_from = std::filesystem::absolute(a->init_from).lexically_normal().string();
    }
    require_new_run_folder(a->out);
    // Absolute paths, so that a resume from another folder finds them (as the training files).
    for (auto* list : {&tc.val_files, &tc.test_files})
      for (auto& f : *list) f = std::filesystem::absolute(f).lexically_normal().string();
    // The word-level options imply --level word.
    if (!s->count("--level") &&
        (s->count("--pretokenized") || s->count("--min-count") || s->count("--max-vocab")))
      a->format.level = "word";
    TextCorpus corpus;
    if (from) {
      corpus = load_corpus(a->files, &from->vocab, from->format);
    } else if (!a->vocab_from.empty()) {
      for (const char* own : {"--level", "--pretokenized", "--min-count", "--max-vocab"})
        require(s->count(own) == 0,
                std::string(own) + " comes from --vocab-from's checkpoint: give one or the other");
      Checkpoint from = load_checkpoint(a->vocab_from);
      require_task(from, a->vocab_from, "lm");
      corpus = load_corpus(a->files, &from.vocab, from.format);
    } else {
      corpus = load_corpus(a->files, nullptr, a->format);
    }
    if (corpus.unknown > 0 && process_comm().root())
      std::cout << corpus.unknown << " of " << corpus.ids.size()
                << " tokens are outside the vocabulary and read as <unk>\n";
    Trainer t(mc, tc, std::move(corpus), a->out);
    if (from) {  // the same layout: the same cell, sizes, vocabulary and tie
      for (const ParamView& v : from->model->layout().views())
        std::copy_n(from->model->params.data() + v.offset, v.size, t.model().param(v.name));
    }
    run(t);
  });
}

}  // namespace unroll::cli

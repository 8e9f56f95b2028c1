// unroll sample | eval | info — use a trained checkpoint.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/infer/evaluate.h"
#include "unroll/infer/sampler.h"
#include "unroll/text/text_corpus.h"
#include "unroll/text/utf8.h"
#include "unroll/text/words.h"
#include "unroll/train/checkpoint.h"

namespace unroll::cli {

namespace {
struct SampleArgs {
  std::string checkpoint, prime, prime_file, category;
  int length = 500, beam = 0, threads = 1, samples = 1;
  uint64_t seed = 0;
  bool seed_given = false;
  SampleOptions opts;
};
}  // namespace

void add_sample(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  CLI::App* s = app.add_subcommand("sample", "Generate text from a trained checkpoint");
  s->add_option("checkpoint", a->checkpoint, "Checkpoint file (.safetensors)")->required();
  s->add_option("-p,--prime", a->prime,
                "Text to start from (characters: must be in the vocabulary; words: unknown ones "
                "read as <unk>; default: none, the text starts as after a line break)");
  s->add_option("--prime-file", a->prime_file,
                "Read the prime text from this file (default: none)");
  s->add_option("-n,--length", a->length, "Tokens (characters or words) to generate")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  s->add_option("-t,--temperature", a->opts.temperature, "Sampling temperature (> 0)")
      ->check(positive())
      ->capture_default_str();
  s->add_option("--top-k", a->opts.top_k, "Sample among the k most likely characters (0 = all)")
      ->check(non_negative())
      ->capture_default_str();
  s->add_option("--top-p", a->opts.top_p,
                "Sample among the most likely characters holding this much probability")
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  auto* greedy = s->add_flag("--greedy", a->opts.greedy, "Always take the most likely character");
  auto* beam = s->add_option("--beam", a->beam, "Beam search of this width (prints when done)")
                   ->check(CLI::Range(0, 1000))
                   ->capture_default_str();
  // Greedy decoding and beam search pick by score alone: sampling options would be ignored.
  for (const char* o : {"--temperature", "--top-k", "--top-p"}) {
    greedy->excludes(o);
    beam->excludes(o);
  }
  beam->excludes(greedy);
  s->add_option("--seed", a->seed, "Random seed (default: a fresh random one each run)")
      ->check(seed_check());
  s->add_option("--category", a->category,
                "Conditional models (unroll conditional): the category to generate for, e.g. a "
                "language (required for them, default: none)");
  s->add_option("--samples", a->samples,
                "Conditional models: this many samples, one a line, each ending where the model "
                "ends it (or at --length)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  add_threads_option(*s, a->threads);
  s->callback([a, s]() {
    apply_threads(a->threads);
    a->opts.validate();
    require(a->prime.empty() || a->prime_file.empty(), "give --prime or --prime-file, not both");
    Checkpoint ck = load_checkpoint(a->checkpoint);
    if (ck.task != "conditional") require_task(ck, a->checkpoint, "lm");
    LanguageModel<float>& lm = language_model(*ck.model);
    std::string prime = a->prime_file.empty() ? a->prime : read_text_file(a->prime_file);
    // On a terminal, control characters the model learned are shown, not
    // obeyed (an ESC sequence could recolour or clear the screen); into a
    // file or a pipe the text goes as generated.
    auto shown = [](const std::string& t) { return for_stdout(t); };
    const TextFormat& format = ck.format;
    std::vector<int32_t> ids;
    if (!prime.empty() && format.level == "char") {
      // A prime typed in another Unicode normal form than the training text
      // still works: encode_text tries NFC and NFD, and `prime` becomes that form.
      ids = ck.vocab.encode_text(prime, "the prime text", &prime);
    } else if (!prime.empty()) {
      size_t unknown = 0;
      std::vector<std::string> words = tokenize(prime, format, "the prime text");
      if (format.pretokenized && !words.empty() && words.back() == kEos && prime.back() != '\n')
        words.pop_back();  // the prime's last line goes on
      ids = ck.vocab.encode_words(words, &unknown);
      if (unknown > 0)
        std::cerr << "unroll: note: " << unknown
                  << " word(s) of the prime are not in the vocabulary and read as " << kUnk << "\n";
    }
    uint64_t seed = s->count("--seed") ? a->seed : uint64_t(std::random_device{}());
    Rng rng(seed);
    const auto categories = ck.data.is_object()
                                ? ck.data.value("categories", std::vector<std::string>())
                                : std::vector<std::string>();
    if (ck.model_config.categories > 0) {
      std::string names;
      for (size_t k = 0; k < categories.size(); ++k)
        names += (k ? ", " : "") + escape_controls(categories[k]);
      require(
          !a->category.empty(),
          "'" + a->checkpoint + "' is a conditional model: give --category (one of " + names + ")");
      const auto it = std::find(categories.begin(), categories.end(), a->category);
      require(it != categories.end(), "--category '" + a->category + "' is not one of " + names);
      const int32_t cat = int32_t(it - categories.begin());
      const int32_t end = ck.vocab.start_id();  // sequences start and end with it
      for (int k = 0; k < a->samples; ++k) {
        if (a->beam > 0) {
          bool first = true;
          for (int32_t id : beam_search(lm, ids, end, a->length, a->beam, cat)) {
            if (id == end) break;
            if (format.pretokenized && !first) std::cout << ' ';
            first = false;
            std::cout << shown(ck.vocab.token(id));
          }
        } else {
          std::cout << shown(prime);
          bool first = prime.empty();
          generate(
              lm, ids, end, a->length, a->opts, rng,
              [&](int32_t id) {  // pre-tokenized words are spaced
                if (format.pretokenized && !first) std::cout << ' ';
                first = false;
                std::cout << shown(ck.vocab.token(id));
              },
              cat, end);
        }
        std::cout << "\n" << std::flush;
        if (!std::cout) check_stdout();
      }
      return;
    }
    require(a->category.empty(),
            "--category needs a conditional model; '" + a->checkpoint + "' is not one");
    require(s->count("--samples") == 0,
            "--samples needs a conditional model; '" + a->checkpoint + "' is not one");
    std::cout << shown(prime) << std::flush;
    // Tokens print as they come; a pre-tokenized text puts a space between
    // words and ends a line at <eos>.
    bool line_start = prime.empty() || prime.back() == '\n';
    auto print = [&](int32_t id) {
      const std::string& t = ck.vocab.token(id);
      if (format.level == "word" && format.pretokenized) {
        if (t == kEos) {
          std::cout << '\n';
          line_start = true;
          return;
        }
        if (!line_start) std::cout << ' ';
        line_start = false;
      }
      std::cout << shown(t);
    };
    if (a->beam > 0) {
      for (int32_t id : beam_search(lm, ids, ck.vocab.start_id(), a->length, a->beam)) print(id);
      std::cout << "\n";
      return;
    }
    generate(lm, ids, ck.vocab.start_id(), a->length, a->opts, rng, [&](int32_t id) {
      print(id);
      std::cout << std::flush;
      if (!std::cout)
        check_stdout();  // a full disk or a closed reader: stop now, not after -n tokens
    });
    std::cout << "\n";
  });
}

void add_eval(CLI::App& app) {
  struct Args {
    std::string checkpoint;
    std::vector<std::string> data, data_option;
    int batch = 50, seq = 50, threads = 1;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s = app.add_subcommand(
      "eval", "Loss, bits per character and perplexity of a checkpoint on a text");
  s->add_option("checkpoint", a->checkpoint, "Checkpoint file (.safetensors)")->required();
  s->add_option("files", a->data, "Text file(s) to evaluate on (UTF-8; concatenated in order)");
  // The data was an option before it became positional, as in classify eval;
  // old scripts keep working.
  s->add_option("--data", a->data_option, "The text files, as an option")->group("");
  s->add_option("--batch", a->batch, "Parallel streams")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  s->add_option("--seq", a->seq, "Steps per chunk")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  s->add_flag(
      "--json", a->json,
      "Print one JSON object (tokens, loss in nats per token at full precision, bits, perplexity)");
  add_threads_option(*s, a->threads);
  s->callback([a]() {
    apply_threads(a->threads);
    a->data.insert(a->data.end(), a->data_option.begin(), a->data_option.end());
    require(!a->data.empty(), "no text to evaluate on: unroll eval CHECKPOINT FILE...");
    Checkpoint ck = load_checkpoint(a->checkpoint);
    require_task(ck, a->checkpoint, "lm");
    LanguageModel<float>& lm = language_model(*ck.model);
    TextCorpus c = load_corpus(a->data, &ck.vocab, ck.format);
    if (c.unknown > 0)
      std::cerr << "unroll: note: " << c.unknown << " of " << c.ids.size()
                << " tokens are not in the vocabulary and are read as " << kUnk << "\n";
    require(c.ids.size() >= 2, "the evaluation text needs at least two characters");
    EvalResult r = evaluate(lm, c.ids, a->batch, a->seq);
    if (a->json) {
      std::cout << nlohmann::json{{"tokens", r.tokens},
                                  {"loss", r.loss},
                                  {"bits", r.bits()},
                                  {"perplexity", r.perplexity()},
                                  {"level", c.format.level}}
                       .dump()
                << "\n";
      return;
    }
    std::printf("tokens       %lld\nloss         %.4f nats/token\n%-12s %.4f\nperplexity   %.3f\n",
                (long long)r.tokens, r.loss, c.format.level == "char" ? "bits/char" : "bits/token",
                r.bits(), r.perplexity());
  });
}

void add_info(CLI::App& app) {
  struct Args {
    std::string checkpoint;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s = app.add_subcommand("info", "Show what a checkpoint holds");
  s->add_option("checkpoint", a->checkpoint, "Checkpoint file (.safetensors)")->required();
  s->add_flag("--json", a->json, "Print everything as one JSON object");
  s->callback([a]() {
    Checkpoint ck = load_checkpoint(a->checkpoint);
    const auto& c = ck.model_config;
    const size_t count = ck.model->layout().count();
    if (a->json) {
      nlohmann::json j = {{"model", to_json(c)},           {"parameters", count},
                          {"vocab_size", ck.vocab.size()}, {"train", ck.train},
                          {"progress", ck.progress},       {"data", ck.data}};
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("model       %s, %d layer%s of %d units, %s input, %s head\n",
                cell_name(c.cell).c_str(), c.layers, c.layers > 1 ? "s" : "", c.hidden,
                c.embed ? ("embedding " + std::to_string(c.embed)).c_str() : "one-hot",
                c.head == HeadKind::Softmax ? "softmax" : "sigmoid");
    std::printf("parameters  %zu\nvocabulary  %d tokens\n", count, ck.vocab.size());
    // The regularisers used in training, when any was.
    std::string reg;
    auto add = [&](const std::string& part) { reg += (reg.empty() ? "" : ", ") + part; };
    auto rate = [](float p) {
      char b[32];
      std::snprintf(b, sizeof b, "%g", p);
      return std::string(b);
    };
    if (c.any_dropout()) {
      std::string d = "dropout " + rate(c.dropout);
      if (c.embed && c.dropout_at(0) != c.dropout) d += " (input " + rate(c.dropout_at(0)) + ")";
      if (c.dropout_at(c.layers) != c.dropout)
        d += " (output " + rate(c.dropout_at(c.layers)) + ")";
      add(d + (c.locked ? " locked" : ""));
    }
    if (c.embed_dropout > 0) add("embedding dropout " + rate(c.embed_dropout));
    if (c.weight_drop > 0) add("weight drop " + rate(c.weight_drop));
    if (c.tie) add("head tied to the embedding");
    if (!reg.empty()) std::printf("regularised %s\n", reg.c_str());
    const std::string task = ck.train.is_object() ? ck.train.value("task", "") : "";
    if (!ck.progress.is_null()) {
      if (ck.progress.contains("epochs_done"))
        std::printf("step        %lld (epoch %.2f)\n", (long long)ck.progress.value("step", 0LL),
                    ck.progress.value("epochs_done", 0.0));
      else  // checkpoints written before epochs_done: the 1-based epoch in progress
        std::printf("step        %lld (in epoch %d)\n", (long long)ck.progress.value("step", 0LL),
                    ck.progress.value("epoch", 0));
      if (ck.progress.value("snapshot", false))
        std::printf("snapshot    the weights only (--snapshot-every), no optimizer state\n");
      const auto skipped = ck.progress.find("skipped_batches");
      if (skipped != ck.progress.end() && skipped->is_number_integer() &&
          skipped->get<int64_t>() > 0)
        std::printf("skipped     %lld batches (not finite; --on-nan skip)\n",
                    (long long)skipped->get<int64_t>());
      double best = ck.progress.value("best_val", 1e300);
      const bool supervised = task == "classify" || task == "tag" || task == "conditional";
      if (best < 1e299 && supervised)
        std::printf("%-12s%.4f nats/%s\n",
                    ck.data.value("val_examples", 1) == 0 ? "best loss" : "best val", best,
                    task == "classify" ? "example" : "token");
      else if (best < 1e299)
        std::printf("best val    %.4f nats/token (%.4f bits)\n", best, best / std::log(2.0));
    }
    if (task == "classify" || task == "tag" || task == "conditional") {
      std::string classes;
      const auto names = ck.data.value(task == "conditional" ? "categories" : "classes",
                                       std::vector<std::string>());
      for (size_t k = 0; k < names.size() && k < 20; ++k)
        classes += (k ? ", " : "") + escape_controls(names[k]);
      if (names.size() > 20) classes += ", ...";
      const std::string kind = task == "tag" ? "a label per token"
                               : task == "conditional"
                                   ? "a language model started from its category"
                                   : "many-to-one, summary " + summary_name(c.summary) +
                                         (c.bidirectional ? ", bidirectional" : "");
      std::printf("task        %s (%s), %zu %s: %s\n", task.c_str(), kind.c_str(), names.size(),
                  task == "tag"           ? "tags"
                  : task == "conditional" ? "categories"
                                          : "classes",
                  classes.c_str());
      std::printf("training    batch %d, %s lr %g, %lld examples\n", ck.train.value("batch", 0),
                  ck.train["optim"].value("kind", "?").c_str(), ck.train["optim"].value("lr", 0.0),
                  (long long)ck.data.value("train_examples", 0LL));
      // The best validation so far (on the training data when the run had none).
      const bool on_training = ck.data.value("val_examples", 1) == 0;
      if (ck.progress.is_object() && ck.progress.value("best_val", 1e300) < 1e299)
        std::printf("%s accuracy %.2f%% at the best %s loss\n",
                    on_training ? "training   " : "validation ",
                    100 * ck.progress.value("best_accuracy", 0.0),
                    on_training ? "training-data" : "validation");
      else if (ck.progress.is_object())
        std::printf("validation  none yet (the first comes at the end of the first epoch)\n");
      return;
    }
    if (ck.train.is_object() && ck.train.contains("imported_from")) {
      const nlohmann::json& from = ck.train["imported_from"];
      std::printf("task        language model\nimported    from '%s' (%s)\n",
                  escape_controls(from.value("file", "?")).c_str(),
                  from.value("kind", "?").c_str());
    } else if (ck.train.is_object() && ck.train.contains("optim")) {
      std::printf("task        language model\ntraining    batch %d, seq %d, %s lr %g\n",
                  ck.train.value("batch", 0), ck.train.value("seq", 0),
                  ck.train["optim"].value("kind", "?").c_str(), ck.train["optim"].value("lr", 0.0));
      if (!ck.train.value("init_from", std::string()).empty())
        std::printf("started     from the weights of '%s'\n",
                    escape_controls(ck.train.value("init_from", std::string())).c_str());
    }
    if (!ck.data.is_null() && ck.data.contains("files")) {
      const TextFormat& f = ck.format;
      std::printf("data        %zu file(s), %lld %s, %s level%s\n", ck.data["files"].size(),
                  (long long)ck.data.value("tokens", ck.data.value("characters", 0LL)), f.unit(),
                  f.level.c_str(), f.pretokenized ? ", pre-tokenized" : "");
    }
  });
}

}  // namespace unroll::cli

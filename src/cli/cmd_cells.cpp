// unroll cells — which hidden cell tracks what, drawn over the text.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/inspect/cells.h"
#include "unroll/inspect/page.h"
#include "unroll/inspect/timeline.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/snapshots.h"

namespace unroll::cli {

namespace {

struct CellsArgs {
  std::vector<std::string> checkpoints;  // one checkpoint, a run folder, or several checkpoints
  std::string checkpoint, text, out, json, npy;
  std::vector<std::string> probes;  // NAME=REGEX
  std::vector<int> cells;
  int layer = 0;  // 1-based; 0 = all
  int max_chars = 10000, top = 3, threads = 1, show_chars = 2000;
  double threshold = 0.6;
};

// One line of a progress bar on stderr, redrawn in place on a terminal.
void progress_line(size_t done, size_t total, const char* what = "characters") {
  const bool terminal = ::isatty(2);
  if (!terminal && done != total) return;  // a log gets the last line only, without the \r
  const int width = 30, fill = int(width * done / std::max<size_t>(total, 1));
  std::fprintf(stderr, "%srecording  [%s%s] %zu/%zu %s%s", terminal ? "\r" : "",
               std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), done, total,
               what, done == total ? "\n" : "");
}

// The page, --json-file and --npy: three different files, none of them an input.
void check_outputs(const std::string& page, const CellsArgs& a, std::vector<std::string> inputs) {
  inputs.push_back(a.text);
  std::vector<std::string> taken = inputs;
  if (!a.npy.empty()) check_output_path(a.npy, "activations (.npy)", taken), taken.push_back(a.npy);
  if (!a.json.empty()) check_output_path(a.json, "JSON", taken), taken.push_back(a.json);
  check_output_path(page, "page", taken);
  // Never over a checkpoint or a run's own record.
  for (const std::string& out : {page, a.json, a.npy}) {
    namespace fs = std::filesystem;
    if (out.empty() || !fs::exists(out)) continue;
    const fs::path p(out);
    const bool run_file = (p.filename() == "config.json" || p.filename() == "metrics.jsonl") &&
                          fs::exists(p.parent_path() / "latest.safetensors");
    require(p.extension() != ".safetensors" && !run_file,
            "cannot write '" + out + "': it is " +
                (run_file ? "a run's record" : std::string("a checkpoint")) +
                "; give an output name of its own (e.g. -o cells.html)");
  }
}

// What every checkpoint `cells` reads must be: a character-level language model.
void require_cells_model(const Checkpoint& ck, const std::string& path, const CellsArgs& a) {
  require_task(ck, path, "lm");
  const ModelConfig& cfg = ck.model->config();
  require(ck.vocab.level() == "char",
          "cells reads characters; this checkpoint's vocabulary is at the '" + ck.vocab.level() +
              "' level");
  require(cfg.head == HeadKind::Softmax, "cells needs a language model (a softmax head)");
  require(a.layer <= cfg.layers, "--layer " + std::to_string(a.layer) + ": the model has " +
                                     std::to_string(cfg.layers) + " layer(s)");
  require(a.cells.empty() || a.layer > 0 || cfg.layers == 1,
          "--cells needs --layer: the model has " + std::to_string(cfg.layers) + " layers");
  for (int c : a.cells)
    require(c >= 0 && c < cfg.hidden, "--cells: no cell " + std::to_string(c) +
                                          " (the layers have " + std::to_string(cfg.hidden) +
                                          " cells, 0.." + std::to_string(cfg.hidden - 1) + ")");
}

// The text (cut to --max-chars) and the probes over it, built-in and --probe.
std::u32string cells_text(const CellsArgs& a, std::vector<Probe>& probes) {
  std::u32string text = decode_utf8(read_text_file(a.text), a.text);
  if (text.size() > size_t(a.max_chars)) text.resize(a.max_chars);
  require(text.size() >= 2, "the text needs at least two characters");
  // Probes first, so a bad --probe fails before the long part.
  probes = builtin_probes(text);
  for (const std::string& spec : a.probes) {
    const size_t eq = spec.find('=');
    require(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(),
            "--probe '" + spec + "': expected NAME=REGEX, e.g. --probe 'number=[0-9]+'");
    const std::string name = spec.substr(0, eq);
    for (const Probe& p : probes)
      require(p.name != name, "--probe '" + spec + "': there is already a probe named '" + name +
                                  "'; give each probe its own name");
    probes.push_back(regex_probe(name, spec.substr(eq + 1), text));
  }
  return text;
}

// Said once the text is known to be readable by the model.
void short_text_note(size_t n) {
  if (n < 1000)
    std::fprintf(stderr,
                 "note: correlations over only %zu characters are noisy; use a longer text\n", n);
}

void run_cells(const CellsArgs& a, const std::string& command) {
  // Output paths are checked before the long run over the text.
  const std::string out = a.out.empty() ? parent_dir(a.checkpoint) + "/cells.html" : a.out;
  check_outputs(out, a, {a.checkpoint});
  Checkpoint ck = load_checkpoint(a.checkpoint);
  require_cells_model(ck, a.checkpoint, a);
  LanguageModel<float>& model = language_model(*ck.model);
  const ModelConfig& cfg = model.config();
  std::vector<Probe> probes;
  const std::u32string text = cells_text(a, probes);
  const std::vector<int32_t> ids = ck.vocab.encode_chars(text);
  short_text_note(text.size());
  const size_t bytes = recording_bytes(cfg, text.size());
  require(bytes <= (size_t(8) << 30), "recording " + std::to_string(text.size()) +
                                          " characters would take " + std::to_string(bytes >> 20) +
                                          " MiB; lower --max-chars");

  Recording rec =
      record_activations(model, ids, 256, [&](size_t done) { progress_line(done, text.size()); });

  CellsPageOptions po;
  po.layer = a.layer;
  po.cells = a.cells;
  po.top = a.top;
  po.threshold = a.threshold;
  po.title = "unroll cells — " + a.checkpoint + " on " + a.text;
  po.command = command;
  po.checkpoint = a.checkpoint;
  po.text_name = a.text;
  const CellsPage page = cells_page_data(model, ck.vocab, text, rec, probes, po);
  std::printf("%-16s %-12s %8s %9s  %s\n", "probe", "best cell", "corr", "accuracy", "description");
  for (const ProbeRow& r : page.rows) {
    if (!r.present) {
      std::printf("%-16s %-12s %8s %9s  %s (not in this text)\n", r.probe.c_str(), "-", "-", "-",
                  r.description.c_str());
      continue;
    }
    char acc[16] = "-";
    if (r.accuracy >= 0) std::snprintf(acc, sizeof acc, "%.1f%%", 100 * r.accuracy);
    std::printf("%-16s %-12s %8.3f %9s  %s\n", r.probe.c_str(), r.id.c_str(), r.corr, acc,
                r.description.c_str());
  }
  const nlohmann::json& j = page.data;
  const std::string html = cells_page_html(j);
  write_file_atomic(out, {html}, "page");
  std::printf("\npage         %s (%zu characters, %zu cells shown)\n", out.c_str(), text.size(),
              page.series);
  if (!a.json.empty()) {
    const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    write_file_atomic(a.json, {s}, "JSON");
    std::printf("json         %s\n", a.json.c_str());
  }
  if (!a.npy.empty()) {
    write_npy(a.npy, {size_t(rec.N), size_t(rec.L), size_t(rec.K), size_t(rec.H)},
              rec.values.data());
    std::printf("activations  %s  float32 [characters %d, layers %d, kinds %d (", a.npy.c_str(),
                rec.N, rec.L, rec.K);
    for (int k = 0; k < rec.K; ++k) std::printf("%s%s", k ? " " : "", rec.kinds[k].c_str());
    std::printf("), units %d]\n", rec.H);
  }
}

// The checkpoints of `cells RUN` (its snapshots) or `cells CK1 CK2 ...`, in step order.
std::vector<std::string> timeline_paths(const std::vector<std::string>& given) {
  if (given.size() == 1) {
    std::string run = given[0];
    // RUN/snapshots itself: its run folder.
    const std::filesystem::path p = std::filesystem::path(run).lexically_normal();
    if (list_snapshots(run).empty() &&
        (p.filename() == "snapshots" ||
         (p.filename().empty() && p.parent_path().filename() == "snapshots")))
      run = (p.filename().empty() ? p.parent_path() : p).parent_path().string();
    std::vector<std::string> out;
    for (const SnapshotFile& f : list_snapshots(run)) out.push_back(f.path);
    const bool has_run = std::filesystem::exists(std::filesystem::path(run) / "latest.safetensors");
    require(!out.empty(),
            "'" + run + "' holds no snapshots (RUN/snapshots/step-*.safetensors): " +
                (has_run ? "keep them from now on with unroll train --resume " + run +
                               " --snapshot-every 100x2 (and --steps beyond its last)"
                         : "train with --snapshot-every to keep them, e.g. unroll train FILE "
                           "--out " +
                               run + " --snapshot-every 100x2") +
                "; or give checkpoints: unroll cells CK1 CK2 ... --text FILE");
    return out;
  }
  for (const std::string& g : given)
    require(
        !std::filesystem::is_directory(g),
        "'" + g + "' is a folder: give one run folder alone (its snapshots), or checkpoint files");
  return given;
}

// `unroll cells RUN|CK1 CK2 ... --text FILE`: the cells across training (inspect/timeline.h).
void run_timeline(const CellsArgs& a, const std::string& command) {
  const std::vector<std::string> paths = timeline_paths(a.checkpoints);
  const bool run = a.checkpoints.size() == 1;
  const std::string out =
      !a.out.empty() ? a.out
      : run          ? (std::filesystem::path(a.checkpoints[0]) / "cells-timeline.html").string()
                     : parent_dir(paths[0]) + "/cells-timeline.html";
  check_outputs(out, a, paths);

  // Every checkpoint is read once first: one model, one vocabulary, and their steps.
  auto shape = [](const ModelConfig& c) {
    return cell_name(c.cell) + " " + std::to_string(c.layers) + "x" + std::to_string(c.hidden) +
           (c.embed > 0 ? ", embedding " + std::to_string(c.embed) : std::string(", one-hot"));
  };
  std::vector<TimelinePoint> points;
  Checkpoint first;
  int64_t params = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    Checkpoint ck = load_checkpoint(paths[i]);
    require_cells_model(ck, paths[i], a);
    const ModelConfig& c = ck.model->config();
    if (i == 0) {
      params = int64_t(ck.model->layout().count());
    } else {
      const ModelConfig& f = first.model->config();
      require(
          c.cell == f.cell && c.layers == f.layers && c.hidden == f.hidden && c.embed == f.embed,
          "'" + paths[i] + "' is another model: " + shape(c) + " against " + shape(f) + " in '" +
              paths[0] + "'; the checkpoints must be one run's (the same shape and vocabulary)");
      require(ck.vocab.to_json() == first.vocab.to_json(),
              "'" + paths[i] + "' has another vocabulary than '" + paths[0] +
                  "'; the checkpoints must be one run's (the same shape and vocabulary)");
    }
    const nlohmann::json step =
        ck.progress.is_object() ? ck.progress.value("step", nlohmann::json()) : nlohmann::json();
    require(step.is_number_integer(),
            "'" + paths[i] +
                "' records no training step; give checkpoints that unroll train "
                "wrote (snapshots, latest or best)");
    const nlohmann::json tokens = ck.progress.value("tokens", nlohmann::json());
    points.push_back(
        {paths[i], step.get<int64_t>(), tokens.is_number_integer() ? tokens.get<int64_t>() : -1});
    if (i == 0) first = std::move(ck);
  }
  std::stable_sort(points.begin(), points.end(),
                   [](const TimelinePoint& x, const TimelinePoint& y) { return x.step < y.step; });
  for (size_t i = 1; i < points.size(); ++i)
    require(points[i].step != points[i - 1].step,
            "'" + points[i - 1].name + "' and '" + points[i].name + "' are both at step " +
                std::to_string(points[i].step) + ": give one checkpoint per step");

  std::vector<Probe> probes;
  const std::u32string text = cells_text(a, probes);
  const std::vector<int32_t> ids = first.vocab.encode_chars(text);
  short_text_note(text.size());
  const ModelConfig cfg = first.model->config();
  const size_t bytes = recording_bytes(cfg, text.size());
  require(bytes <= (size_t(4) << 30), "recording " + std::to_string(text.size()) +
                                          " characters would take " + std::to_string(bytes >> 20) +
                                          " MiB per checkpoint; lower --max-chars");
  const std::vector<std::string> kinds = activation_kinds(cfg.cell);
  std::unique_ptr<NpyWriter> npy;
  if (!a.npy.empty())
    npy = std::make_unique<NpyWriter>(
        a.npy, std::vector<size_t>{points.size(), text.size(), size_t(cfg.layers), kinds.size(),
                                   size_t(cfg.hidden)});

  TimelineOptions opt;
  opt.layer = a.layer;
  opt.cells = a.cells;
  opt.threshold = a.threshold;
  opt.show_chars = size_t(a.show_chars);
  opt.unit_correlations = !a.json.empty();
  opt.title = "unroll cells across training — " + (run ? a.checkpoints[0] : paths[0] + " …") +
              " on " + a.text;
  opt.command = command;
  opt.text_name = a.text;
  std::fprintf(stderr, "%zu checkpoint%s, steps %lld to %lld\n", points.size(),
               points.size() == 1 ? "" : "s", static_cast<long long>(points.front().step),
               static_cast<long long>(points.back().step));
  const Timeline t = cells_timeline_data(
      points, cfg, params, first.vocab, text, probes, opt,
      [&](size_t i) {
        Checkpoint ck = load_checkpoint(points[i].name);
        Recording rec = record_activations(language_model(*ck.model), ids, 256);
        if (npy) npy->put(i, rec.values.data());
        return rec;
      },
      [&](size_t done) { progress_line(done, points.size(), "checkpoints"); });

  char head[32];
  std::snprintf(head, sizeof head, "first |corr|>=%.2f", a.threshold);
  std::printf("%-16s %-24s %-12s %-12s %8s  %s\n", "probe", head, "cell then", "best at end",
              "corr", "same unit since");
  auto step_of = [&](int i) {
    return i < 0 ? std::string("-") : "step " + std::to_string(points[size_t(i)].step);
  };
  for (const TimelineRow& r : t.rows) {
    if (!r.present) {
      std::printf("%-16s (not in this text)\n", r.probe.c_str());
      continue;
    }
    std::printf("%-16s %-24s %-12s %-12s %8.3f  %s\n", r.probe.c_str(),
                r.first < 0 ? "not reached" : step_of(r.first).c_str(),
                r.first < 0 ? "-" : r.first_id.c_str(), r.final_id.c_str(), r.final_corr,
                step_of(r.same_since).c_str());
  }
  nlohmann::json page = t.data;
  for (auto& p : page["probes"]) p.erase("unit_corr");
  write_file_atomic(out, {cells_timeline_page_html(page)}, "page");
  std::printf("\npage         %s (%zu checkpoints, %zu characters, the first %zu shown)\n",
              out.c_str(), points.size(), text.size(), page["chars"].size());
  if (!a.json.empty()) {
    const std::string s = t.data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    write_file_atomic(a.json, {s}, "JSON");
    std::printf(
        "json         %s (with every unit's correlation: probes[].unit_corr "
        "[checkpoints][units])\n",
        a.json.c_str());
  }
  if (npy) {
    npy->finish();
    std::printf(
        "activations  %s  float32 [checkpoints %zu, characters %zu, layers %d, kinds %zu "
        "(",
        a.npy.c_str(), points.size(), text.size(), cfg.layers, kinds.size());
    for (size_t k = 0; k < kinds.size(); ++k) std::printf("%s%s", k ? " " : "", kinds[k].c_str());
    std::printf("), units %d]\n", cfg.hidden);
  }
}

}  // namespace

void add_cells(CLI::App& app) {
  auto a = std::make_shared<CellsArgs>();
  CLI::App* s = app.add_subcommand(
      "cells",
      "Which hidden cell tracks what: an HTML page of activations over a text (one checkpoint, "
      "or a run's snapshots across training)");
  s->add_option("checkpoint", a->checkpoints,
                "Checkpoint file (.safetensors); or a run folder (its snapshots, across training); "
                "or several checkpoints of one run (required)")
      ->required();
  s->add_option("--text", a->text, "Text file to run the model over (UTF-8)")->required();
  s->add_option("-o,--out", a->out,
                "HTML page to write (default: cells.html beside the checkpoint; across training "
                "cells-timeline.html in the run folder or beside the first checkpoint)");
  s->add_option("--json-file", a->json, "Also write the data behind the page as JSON to this file");
  s->add_option("--npy", a->npy,
                "Also write all activations to this file as a NumPy float32 array [chars, layers, "
                "kinds, units] (across training: [checkpoints, chars, layers, kinds, units])");
  s->add_option("--layer", a->layer, "Only this layer (1 = the lowest; default: all layers)")
      ->check(CLI::Range(1, 64));
  s->add_option(
       "--cells", a->cells,
       "Show these cells of --layer (comma-separated, from 0; default: the cells the probes find)")
      ->delimiter(',');
  s->add_option("--probe", a->probes,
                "A probe of your own: NAME=REGEX, on inside every match (repeatable; default: only "
                "the built-in probes)");
  s->add_option("--max-chars", a->max_chars, "Use the first N characters of the text")
      ->check(CLI::Range(2, 10000000))
      ->capture_default_str();
  s->add_option("--show-chars", a->show_chars,
                "Across training: the page colours the first N characters at every checkpoint "
                "(correlations use all of --max-chars)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  s->add_option("--top", a->top, "Cells shown per probe (one checkpoint)")
      ->check(CLI::Range(1, 5))
      ->capture_default_str();
  s->add_option("--threshold", a->threshold,
                "A probe counts as found when a cell's |correlation| reaches this")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  add_threads_option(*s, a->threads);
  s->callback([a]() {
    apply_threads(a->threads);
    // The page records the command as typed, so the numbers can be reproduced.
    const std::string& command = command_line();
    const bool timeline =
        a->checkpoints.size() > 1 || std::filesystem::is_directory(a->checkpoints[0]);
    if (timeline) {
      run_timeline(*a, command);
    } else {
      a->checkpoint = a->checkpoints[0];
      run_cells(*a, command);
    }
  });
}

}  // namespace unroll::cli

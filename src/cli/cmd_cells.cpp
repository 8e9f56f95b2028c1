// unroll cells — which hidden cell tracks what, drawn over the text.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/inspect/cells.h"
#include "unroll/inspect/page.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"

namespace unroll::cli {

namespace {

struct CellsArgs {
  std::string checkpoint, text, out, json, npy;
  std::vector<std::string> probes;  // NAME=REGEX
  std::vector<int> cells;
  int layer = 0;  // 1-based; 0 = all
  int max_chars = 10000, top = 3, threads = 1;
  double threshold = 0.6;
};

// One line of a progress bar on stderr, redrawn in place on a terminal.
void progress_line(size_t done, size_t total) {
  const bool terminal = ::isatty(2);
  if (!terminal && done != total) return;  // a log gets the last line only, without the \r
  const int width = 30, fill = int(width * done / std::max<size_t>(total, 1));
  std::fprintf(stderr, "%srecording  [%s%s] %zu/%zu characters%s", terminal ? "\r" : "",
               std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), done, total,
               done == total ? "\n" : "");
}

void run_cells(const CellsArgs& a, const std::string& command) {
  // Output paths are checked before the long run over the text.
  const std::string out = a.out.empty() ? parent_dir(a.checkpoint) + "/cells.html" : a.out;
  check_output_path(out, "page", {a.checkpoint, a.text, a.json, a.npy});
  if (!a.json.empty()) check_output_path(a.json, "JSON", {a.checkpoint, a.text, a.npy});
  if (!a.npy.empty()) check_output_path(a.npy, "activations (.npy)", {a.checkpoint, a.text});
  Checkpoint ck = load_checkpoint(a.checkpoint);
  require_task(ck, a.checkpoint, "lm");
  LanguageModel<float>& model = language_model(*ck.model);
  const ModelConfig& cfg = model.config();
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

  std::u32string text = decode_utf8(read_text_file(a.text), a.text);
  if (text.size() > size_t(a.max_chars)) text.resize(a.max_chars);
  require(text.size() >= 2, "the text needs at least two characters");
  const std::vector<int32_t> ids = ck.vocab.encode_chars(text);
  const size_t bytes = recording_bytes(cfg, text.size());
  require(bytes <= (size_t(8) << 30), "recording " + std::to_string(text.size()) +
                                          " characters would take " + std::to_string(bytes >> 20) +
                                          " MiB; lower --max-chars");

  // Probes first, so a bad --probe fails before the long part.
  std::vector<Probe> probes = builtin_probes(text);
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

  if (text.size() < 1000)
    std::fprintf(stderr,
                 "note: correlations over only %zu characters are noisy; use a longer text\n",
                 text.size());
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

}  // namespace

void add_cells(CLI::App& app) {
  auto a = std::make_shared<CellsArgs>();
  CLI::App* s = app.add_subcommand(
      "cells", "Which hidden cell tracks what: an HTML page of activations over a text");
  s->add_option("checkpoint", a->checkpoint, "Checkpoint file (.safetensors)")->required();
  s->add_option("--text", a->text, "Text file to run the model over (UTF-8)")->required();
  s->add_option("-o,--out", a->out,
                "HTML page to write (default: cells.html beside the checkpoint)");
  s->add_option("--json-file", a->json, "Also write the data behind the page as JSON to this file");
  s->add_option("--npy", a->npy,
                "Also write all activations to this file as a NumPy float32 array [chars, layers, "
                "kinds, units]");
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
  s->add_option("--top", a->top, "Cells shown per probe")
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
    run_cells(*a, command);
  });
}

}  // namespace unroll::cli

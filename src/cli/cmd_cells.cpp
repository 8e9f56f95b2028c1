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

std::string kind_label(const std::string& k) {
  static const std::map<std::string, std::string> names = {
      {"h", "hidden state h"}, {"c", "cell state c (shown as tanh c)"},
      {"i", "input gate i"},   {"f", "forget gate f"},
      {"g", "candidate g"},    {"o", "output gate o"},
      {"r", "reset gate r"},   {"z", "update gate z"},
      {"n", "candidate n"}};
  return names.at(k);
}
bool sigmoid_kind(const std::string& k) {
  return k == "i" || k == "f" || k == "o" || k == "r" || k == "z";
}
std::string unit_id(const Recording& r, int l, int k, int u) {
  return "L" + std::to_string(l + 1) + "." + r.kinds[k] + "." + std::to_string(u);
}
double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

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
  Model<float>& model = *ck.model;
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

  std::vector<int> kinds = {0};  // rank h, and c for the LSTM
  if (rec.kind_index("c") >= 0) kinds.push_back(rec.kind_index("c"));
  std::vector<int> layers;
  if (a.layer > 0) layers.push_back(a.layer - 1);

  nlohmann::json j;
  j["format"] = "unroll-cells-1";
  j["title"] = "unroll cells — " + a.checkpoint + " on " + a.text;
  j["command"] = command;
  j["model"] = {{"cell", cell_name(cfg.cell)},
                {"layers", cfg.layers},
                {"hidden", cfg.hidden},
                {"vocab", ck.vocab.size()},
                {"params", model.layout().count()},
                {"checkpoint", a.checkpoint},
                {"text", a.text}};
  j["kinds"] = rec.kinds;
  auto& chars = j["chars"] = nlohmann::json::array();
  for (char32_t c : text) chars.push_back(encode_utf8(std::u32string(1, c)));
  auto& loss = j["loss"] = nlohmann::json::array();
  for (float v : rec.loss)
    loss.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(round3(v)));
  auto& top = j["top"] = nlohmann::json::array();
  for (const auto& guesses : rec.top) {
    auto g = nlohmann::json::array();
    for (const Guess& q : guesses)
      if (q.p > 0) g.push_back({ck.vocab.token(q.id), round3(q.p)});
    top.push_back(std::move(g));
  }

  // Series the page can show: the top cells of every probe, and --cells with all their kinds.
  std::vector<std::array<int, 3>> series;  // layer, kind, unit
  std::set<std::array<int, 3>> seen;
  auto add_series = [&](int l, int k, int u) {
    if (seen.insert({l, k, u}).second) series.push_back({l, k, u});
  };
  for (int c : a.cells)
    for (int k = 0; k < rec.K; ++k) add_series(a.layer > 0 ? a.layer - 1 : 0, k, c);

  auto& jp = j["probes"] = nlohmann::json::array();
  auto& found = j["summary"]["found"] = nlohmann::json::array();
  auto& absent = j["summary"]["absent"] = nlohmann::json::array();
  j["summary"]["threshold"] = a.threshold;
  std::printf("%-16s %-12s %8s %9s  %s\n", "probe", "best cell", "corr", "accuracy", "description");
  double best_abs = -1;
  std::string best_id;
  for (const Probe& p : probes) {
    const auto [lo, hi] = std::minmax_element(p.values.begin(), p.values.end());
    if (*lo == *hi) {  // constant over this text: nothing to correlate with
      absent.push_back(p.name);
      std::printf("%-16s %-12s %8s %9s  %s (not in this text)\n", p.name.c_str(), "-", "-", "-",
                  p.description.c_str());
      continue;
    }
    std::vector<UnitScore> ranked = rank_units(rec, p, kinds, layers);
    auto tops = nlohmann::json::array();
    for (int i = 0; i < std::min<int>(a.top, int(ranked.size())); ++i) {
      const UnitScore& s = ranked[i];
      add_series(s.layer, s.kind, s.unit);
      tops.push_back({{"id", unit_id(rec, s.layer, s.kind, s.unit)},
                      {"corr", round3(s.corr)},
                      {"accuracy", s.accuracy < 0 ? nlohmann::json(nullptr)
                                                  : nlohmann::json(round3(s.accuracy))}});
    }
    const UnitScore& b = ranked.front();
    const std::string id = unit_id(rec, b.layer, b.kind, b.unit);
    if (std::fabs(b.corr) >= a.threshold)
      found.push_back({{"probe", p.name}, {"id", id}, {"corr", round3(b.corr)}});
    if (std::fabs(b.corr) > best_abs) best_abs = std::fabs(b.corr), best_id = id;
    char acc[16] = "-";
    if (b.accuracy >= 0) std::snprintf(acc, sizeof acc, "%.1f%%", 100 * b.accuracy);
    std::printf("%-16s %-12s %8.3f %9s  %s\n", p.name.c_str(), id.c_str(), b.corr, acc,
                p.description.c_str());
    nlohmann::json vals = nlohmann::json::array();
    for (float v : p.values) vals.push_back(v);
    jp.push_back({{"name", p.name},
                  {"description", p.description},
                  {"binary", p.binary},
                  {"values", std::move(vals)},
                  {"top", std::move(tops)}});
  }

  auto& js = j["series"] = nlohmann::json::array();
  for (const auto& [l, k, u] : series) {
    const std::string& kind = rec.kinds[k];
    nlohmann::json vals = nlohmann::json::array();
    for (int n = 0; n < rec.N; ++n) {
      const float v = rec.at(n, l, k, u);
      vals.push_back(round3(kind == "c" ? std::tanh(v) : v));
    }
    js.push_back({{"id", unit_id(rec, l, k, u)},
                  {"layer", l + 1},
                  {"kind", kind},
                  {"unit", u},
                  {"label", "layer " + std::to_string(l + 1) + " " + kind_label(kind) + " [" +
                                std::to_string(u) + "]"},
                  {"range", sigmoid_kind(kind) ? nlohmann::json{0, 1} : nlohmann::json{-1, 1}},
                  {"values", std::move(vals)}});
  }
  j["default_series"] =
      !a.cells.empty() ? unit_id(rec, a.layer > 0 ? a.layer - 1 : 0, 0, a.cells[0])
      : best_id.empty() && !series.empty() ? unit_id(rec, series[0][0], series[0][1], series[0][2])
                                           : best_id;

  auto& sat = j["saturation"] = nlohmann::json::array();
  for (const Saturation& s : gate_saturation(rec)) {
    nlohmann::json left = nlohmann::json::array(), right = nlohmann::json::array();
    for (float v : s.left) left.push_back(round3(v));
    for (float v : s.right) right.push_back(round3(v));
    sat.push_back({{"layer", s.layer + 1}, {"gate", s.gate}, {"left", left}, {"right", right}});
  }

  const std::string html = cells_page_html(j);
  write_file_atomic(out, {html}, "page");
  std::printf("\npage         %s (%zu characters, %zu cells shown)\n", out.c_str(), text.size(),
              series.size());
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

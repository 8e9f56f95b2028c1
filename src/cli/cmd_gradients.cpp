// unroll gradients — vanishing and exploding gradients, measured and drawn.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/inspect/gradients.h"
#include "unroll/inspect/page.h"
#include "unroll/text/utf8.h"
#include "unroll/text/vocab.h"
#include "unroll/train/checkpoint.h"

namespace unroll::cli {
namespace fs = std::filesystem;

namespace {

struct GradArgs {
  std::vector<std::string> checkpoints, fresh;
  std::string text, out, csv_path, json;
  bool csv = false, no_jacobian = false;
  FlowOptions flow;
  size_t max_chars = 2000000;
  double scalar = 0, h0 = 0.1, x = 0;
  bool scalar_given = false;
  int steps = 3, threads = 1;
  uint64_t init_seed = 1;
};

std::string shape(const ModelConfig& c) {
  return cell_name(c.cell) + " " + std::to_string(c.layers) + "×" + std::to_string(c.hidden);
}

void run_scalar(const GradArgs& a) {
  std::printf("h_t = f(w·h_(t-1) + x_t), w = %g\n\n", a.scalar);
  std::printf("linear unit, f(a) = a: each step back multiplies dh_t/dh_0 by w\n");
  std::printf("%4s %14s\n", "t", "dh_t/dh_0");
  int t = 1;
  for (double v : scalar_linear(a.scalar, a.steps)) std::printf("%4d %14.6g\n", t++, v);
  std::printf(
      "\ntanh unit, h_0 = %g, x = %g: each step also multiplies by 1 - h_t^2 (< 1, ~0 when "
      "saturated)\n",
      a.h0, a.x);
  std::printf("%4s %10s %14s %14s\n", "t", "h_t", "w(1-h_t^2)", "dh_t/dh_0");
  for (const ScalarStep& s : scalar_tanh(a.scalar, a.steps, a.h0, a.x))
    std::printf("%4d %10.6f %14.6g %14.6g\n", s.t, s.h, s.local, s.product);
}

nlohmann::json scalar_json(const GradArgs& a) {
  nlohmann::json tanh = nlohmann::json::array();
  for (const ScalarStep& s : scalar_tanh(a.scalar, a.steps, a.h0, a.x))
    tanh.push_back({{"t", s.t}, {"h", s.h}, {"local", s.local}, {"product", s.product}});
  return {{"w", a.scalar},
          {"steps", a.steps},
          {"linear", scalar_linear(a.scalar, a.steps)},
          {"tanh", tanh}};
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void run_gradients(const GradArgs& a, const std::string& command) {
  require(
      !a.checkpoints.empty() || !a.fresh.empty(),
      "give checkpoints to measure, or --fresh CELL:LAYERS:HIDDEN[:SCALE] models (or --scalar W)");
  require(!a.text.empty(), "--text is required: the text the models read");
  // Output paths are checked before the measurements.
  const std::string out = a.out.empty() ? "gradients.html" : a.out;
  std::vector<std::string> taken = a.checkpoints;  // what the command reads, then what it writes
  taken.push_back(a.text);
  check_output_path(out, "page", cat(taken, {a.csv_path, a.json}));
  if (!a.csv_path.empty()) check_output_path(a.csv_path, "CSV", cat(taken, {a.json}));
  if (!a.json.empty()) check_output_path(a.json, "JSON", taken);
  std::u32string text = decode_utf8(read_text_file(a.text), a.text);
  if (text.size() > a.max_chars) text.resize(a.max_chars);
  FlowOptions opt = a.flow;
  opt.jacobian = !a.no_jacobian;

  std::vector<MeasuredModel> ms;
  auto measure = [&](LanguageModel<float>& m, const std::vector<int32_t>& ids, MeasuredModel r) {
    std::fprintf(stderr, "measuring  %s ...\n", r.label.c_str());
    r.cfg = m.config();
    r.flow = measure_flow(m, ids, opt);
    r.blocks = recurrent_weight_stats(m);
    ms.push_back(std::move(r));
  };
  // Every checkpoint is loaded and reads the text before any is measured, so
  // a bad one fails at once, not after the others' measurements.
  struct Loaded {
    std::string path;
    Checkpoint ck;
    std::vector<int32_t> ids;
  };
  std::vector<Loaded> loaded;
  for (const std::string& path : a.checkpoints) {
    Loaded l{path, load_checkpoint(path), {}};
    require_task(l.ck, path, "lm");
    require(l.ck.vocab.level() == "char",
            path + ": gradients reads characters; this vocabulary is at the '" +
                l.ck.vocab.level() + "' level");
    try {
      l.ids = l.ck.vocab.encode_chars(text);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    loaded.push_back(std::move(l));
  }
  for (Loaded& l : loaded) {
    // The label names the run folder and file, not the whole path.
    const fs::path p(l.path);
    const std::string shown = p.has_parent_path() && p.parent_path().has_filename()
                                  ? (p.parent_path().filename() / p.filename()).string()
                                  : p.filename().string();
    measure(language_model(*l.ck.model), l.ids,
            {shape(l.ck.model_config) + " (" + shown + ")", l.path, {}, {}, {}});
  }
  if (!a.fresh.empty()) {
    const Vocab vocab = Vocab::from_chars(text);
    const std::vector<int32_t> ids = vocab.encode_chars(text);
    for (const std::string& spec : a.fresh) {
      double scale = 1;
      ModelConfig c = parse_fresh(spec, vocab.size(), &scale);
      LanguageModel<float> m(c);
      Rng rng(a.init_seed);
      init_orthogonal(m, rng, scale);
      char sc[32];
      std::snprintf(sc, sizeof sc, "%g", scale);
      measure(m, ids,
              {shape(c) + ", fresh, orthogonal ×" + sc,
               std::string("fresh: orthogonal W_hh × ") + sc + ", Xavier W_ih, seed " +
                   std::to_string(a.init_seed),
               {},
               {},
               {}});
    }
  }

  const int K = opt.K, k50 = std::min(50, K);
  const GradientsPage page =
      gradients_page_data(ms, K, k50, opt.batch * opt.repeats, a.text, command,
                          a.scalar_given ? scalar_json(a) : nlohmann::json());
  const nlohmann::json& j = page.data;
  const std::string& csv = page.csv;
  // The summary table: labels (a checkpoint's path, a "×") shown with their
  // control characters visible and padded by terminal columns.
  size_t width = 5;
  for (const MeasuredModel& r : ms)
    width = std::max(width, display_width(escape_controls(r.label)));
  auto padded = [&](const std::string& t) {
    const std::string shown = escape_controls(t);
    return shown + std::string(width - std::min(width, display_width(shown)), ' ');
  };
  // A fixed-point figure of a huge value (a damaged checkpoint's factor)
  // would be hundreds of digits: those print in exponent form instead.
  auto num_or_dash = [](double v, const char* fmt, int w) {
    char buf[64];
    if (!std::isfinite(v))
      std::snprintf(buf, sizeof buf, "%*s", w, "-");
    else if (std::fabs(v) >= 1e6)
      std::snprintf(buf, sizeof buf, "%*.4g", w, v);
    else
      std::snprintf(buf, sizeof buf, fmt, w, v);
    return std::string(buf);
  };
  if (!a.csv) {
    std::printf("%s %5s %10s %10s %12s %12s  %s\n", padded("model").c_str(), "layer", "factor",
                "jac factor", ("rel k=" + std::to_string(k50)).c_str(),
                ("jac k=" + std::to_string(k50)).c_str(), "W_hh spectral radius / sigma_max");
    for (const GradientsRow& r : page.rows)
      std::printf("%s %5d %s %s %s %s  %s\n", padded(r.label).c_str(), r.layer,
                  num_or_dash(r.factor, "%*.4f", 10).c_str(),
                  num_or_dash(r.jacobian_factor, "%*.4f", 10).c_str(),
                  num_or_dash(r.rel_at, "%*.3g", 12).c_str(),
                  num_or_dash(r.jacobian_at, "%*.3g", 12).c_str(), r.w_hh.c_str());
  }
  if (a.csv) std::cout << csv;
  if (!a.csv_path.empty()) write_file_atomic(a.csv_path, {csv}, "CSV");
  if (!a.json.empty())
    write_file_atomic(a.json, {j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)},
                      "JSON");
  write_file_atomic(out, {gradients_page_html(j)}, "page");
  std::fprintf(a.csv ? stderr : stdout,
               "\nfactor: fitted per-step factor of ||dL_T/dh_(T-k)|| over k = 1..%d "
               "(< 1 vanishing, > 1 exploding); rel: relative to k = 0\npage         %s\n",
               K, out.c_str());
}

}  // namespace

constexpr double kMaxFreshScale = 1000;

ModelConfig parse_fresh(const std::string& spec, int vocab, double* scale) {
  std::vector<std::string> f;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ':');) f.push_back(part);
  const std::string usage =
      "--fresh '" + spec + "': expected CELL:LAYERS:HIDDEN[:SCALE], e.g. rnn:1:128:0.5";
  require((f.size() == 3 || f.size() == 4) && spec.back() != ':', usage);
  ModelConfig c;
  c.cell = parse_cell(f[0]);
  // Sizes: a few digits; the scale: a decimal number (no hex, nan or spaces).
  auto count = [&](const std::string& digits) {
    require(!digits.empty() && digits.size() <= 6 &&
                digits.find_first_not_of("0123456789") == std::string::npos,
            usage);
    return std::stoi(digits);
  };
  c.layers = count(f[1]);
  c.hidden = count(f[2]);
  *scale = 1.0;
  require(f.size() == 3 || read_decimal(f[3], scale), usage);
  // The weights are floats, and past a radius of 1000 every measured
  // gradient of a 50-step text has long overflowed: nothing is learned there.
  require(c.layers >= 1 && c.layers <= 16 && c.hidden >= 1 && c.hidden <= 4096 && *scale > 0 &&
              *scale <= kMaxFreshScale,
          usage + " (layers 1..16, hidden 1..4096, scale above 0 and at most 1000)");
  c.vocab = c.outputs = vocab;
  return c;
}

void add_gradients(CLI::App& app) {
  auto a = std::make_shared<GradArgs>();
  CLI::App* s = app.add_subcommand(
      "gradients",
      "Vanishing and exploding gradients: how dL_T/dh_(T-k) changes with the distance k");
  s->add_option("checkpoints", a->checkpoints, "Checkpoints to measure (.safetensors)");
  s->add_option(
      "--fresh", a->fresh,
      "Also measure a fresh model: CELL:LAYERS:HIDDEN[:SCALE], W_hh orthogonal times SCALE "
      "(above 0, at most 1000; default 1), e.g. rnn:1:128:0.5 (repeatable; default: none)");
  s->add_option("--text", a->text,
                "Text file the models read (UTF-8; required with checkpoints or --fresh)");
  s->add_option("-K,--max-distance", a->flow.K, "Largest distance k")
      ->check(CLI::Range(1, 2000))
      ->capture_default_str();
  s->add_option("--batch", a->flow.batch, "Streams per measurement")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  s->add_option("--repeats", a->flow.repeats, "Measurements (random positions) averaged")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  s->add_option("--warmup", a->flow.warmup, "Steps run before each window")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  s->add_flag("--no-jacobian", a->no_jacobian, "Skip the Jacobian spectral norms (faster)");
  s->add_option("--seed", a->flow.seed, "Random seed for the positions")
      ->check(seed_check())
      ->capture_default_str();
  s->add_option("--init-seed", a->init_seed, "Random seed for --fresh models")
      ->check(seed_check())
      ->capture_default_str();
  s->add_option("--max-chars", a->max_chars, "Read at most this many characters of the text")
      ->check(CLI::Range(size_t(2), size_t(1) << 40))
      ->capture_default_str();
  s->add_option("-o,--out", a->out, "HTML page to write (default: gradients.html)");
  s->add_flag("--csv", a->csv, "Print every number as CSV instead of the summary table");
  s->add_option("--csv-file", a->csv_path, "Also write the CSV to this file");
  s->add_option("--json-file", a->json, "Also write the data behind the page as JSON to this file");
  auto* scalar = s->add_option("--scalar", a->scalar,
                               "The scalar example: h_t = f(w h_(t-1) + x) with this w; prints "
                               "dh_t/dh_0 (default: not shown)")
                     ->check(CLI::Range(-1e6, 1e6));
  auto* steps = s->add_option("--steps", a->steps, "Steps of the scalar example")
                    ->check(CLI::Range(1, 1000))
                    ->capture_default_str();
  auto* h0 = s->add_option("--h0", a->h0, "Scalar example: h_0 for the tanh unit")
                 ->check(CLI::Range(-1e6, 1e6))
                 ->capture_default_str();
  auto* x = s->add_option("--x", a->x, "Scalar example: the constant input x")
                ->check(CLI::Range(-1e6, 1e6))
                ->capture_default_str();
  for (auto* o : {steps, h0, x}) o->needs(scalar);
  add_threads_option(*s, a->threads);
  s->callback([a, s]() {
    apply_threads(a->threads);
    a->scalar_given = s->count("--scalar") > 0;
    if (a->scalar_given && a->checkpoints.empty() && a->fresh.empty())
      for (const char* o : {"--text", "--out", "--csv", "--csv-file", "--json-file"})
        require(s->count(o) == 0,
                std::string(o) +
                    " is for measured models (checkpoints or --fresh); --scalar alone "
                    "prints the scalar example and writes nothing");
    if (a->scalar_given) {
      run_scalar(*a);
      if (a->checkpoints.empty() && a->fresh.empty()) return;
      std::printf("\n");
    }
    run_gradients(*a, command_line());
  });
}

}  // namespace unroll::cli

// Recording activations, ranking cells against probes, gate saturation.
#include "unroll/inspect/cells.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/infer/evaluate.h"
#include "unroll/text/utf8.h"

namespace unroll {

std::vector<std::string> activation_kinds(CellKind cell) {
  switch (cell) {
    case CellKind::Lstm:
      return {"h", "c", "i", "f", "g", "o"};
    case CellKind::Gru:
      return {"h", "r", "z", "n"};
    default:
      return {"h"};
  }
}

int Recording::kind_index(const std::string& kind) const {
  auto it = std::find(kinds.begin(), kinds.end(), kind);
  return it == kinds.end() ? -1 : int(it - kinds.begin());
}

size_t recording_bytes(const ModelConfig& cfg, size_t n) {
  return n * cfg.layers * activation_kinds(cfg.cell).size() * cfg.hidden * sizeof(float);
}

Recording record_activations(LanguageModel<float>& model, const std::vector<int32_t>& ids,
                             int chunk, const std::function<void(size_t)>& progress) {
  const ModelConfig& cfg = model.config();
  require(cfg.head == HeadKind::Softmax, "cells needs a language model (a softmax head)");
  require(!ids.empty(), "the text is empty");
  require(chunk >= 1, "chunk must be at least 1");
  Recording rec;
  rec.N = int(ids.size()), rec.L = cfg.layers, rec.H = cfg.hidden, rec.cell = cfg.cell;
  rec.kinds = activation_kinds(cfg.cell);
  rec.K = int(rec.kinds.size());
  const int H = rec.H, K = rec.K, V = cfg.outputs;
  const int G = gate_count(cfg.cell);
  const bool lstm = cfg.cell == CellKind::Lstm;
  const int first_gate = lstm ? 2 : 1;  // kinds after h (and c) are the gates
  rec.values.assign(size_t(rec.N) * rec.L * K * H, 0.0f);
  rec.loss.assign(rec.N, std::numeric_limits<float>::quiet_NaN());
  rec.top.assign(rec.N, {});

  StateGuard<float> guard(model);
  model.reset_state(1);
  Buffer<float> hs, cs;
  std::vector<double> p(V);
  std::vector<int> order(V);
  for (size_t pos = 0; pos < ids.size(); pos += chunk) {
    const int T = int(std::min<size_t>(chunk, ids.size() - pos));
    model.forward(ids.data() + pos, nullptr, T, 1, Mode::Eval);
    for (int l = 0; l < rec.L; ++l) {
      model.layer_states(l, hs, cs);
      const float* gates = model.layer(l).gates.data();
      for (int t = 0; t < T; ++t) {
        float* out = rec.values.data() + ((pos + t) * rec.L + l) * size_t(K) * H;
        std::memcpy(out, hs.data() + size_t(t + 1) * H, sizeof(float) * H);  // row 0 is h_0
        if (lstm) std::memcpy(out + H, cs.data() + size_t(t + 1) * H, sizeof(float) * H);
        if (K > 1)
          std::memcpy(out + size_t(first_gate) * H, gates + size_t(t) * G * H,
                      sizeof(float) * G * H);
      }
    }
    const float* z = model.logits();
    for (int t = 0; t < T; ++t) {
      const float* zt = z + size_t(t) * V;
      const float mx = *std::max_element(zt, zt + V);
      double sum = 0;
      for (int v = 0; v < V; ++v) sum += (p[v] = std::exp(double(zt[v]) - mx));
      for (double& q : p) q /= sum;
      const size_t n = pos + t;
      if (n + 1 < ids.size()) rec.loss[n + 1] = float(-std::log(std::max(p[ids[n + 1]], 1e-300)));
      std::iota(order.begin(), order.end(), 0);
      const int k = std::min(V, 5);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int a, int b) { return p[a] > p[b]; });
      for (int i = 0; i < k; ++i) rec.top[n][i] = {order[i], float(p[order[i]])};
    }
    if (progress) progress(pos + T);
  }
  return rec;
}

std::array<float, 2> activation_range(const std::string& kind) {
  const bool sigmoid = kind == "i" || kind == "f" || kind == "o" || kind == "r" || kind == "z";
  return sigmoid ? std::array<float, 2>{0, 1} : std::array<float, 2>{-1, 1};
}

std::string unit_id(const std::vector<std::string>& kinds, int layer, int kind, int unit) {
  return "L" + std::to_string(layer + 1) + "." + kinds[kind] + "." + std::to_string(unit);
}

double pearson(const float* x, size_t stride, const float* y, size_t n) {
  if (n < 2) return 0;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) mx += x[i * stride], my += y[i];
  mx /= double(n), my /= double(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double a = x[i * stride] - mx, b = y[i] - my;
    sxy += a * b, sxx += a * a, syy += b * b;
  }
  // Constant up to rounding: no correlation to speak of.
  if (sxx <= 1e-12 * (1 + mx * mx) * double(n) || syy <= 0) return 0;
  return sxy / std::sqrt(sxx * syy);
}

double best_threshold_accuracy(const float* x, size_t stride, const float* y, size_t n) {
  if (n == 0) return 0;
  std::vector<std::pair<float, bool>> v(n);
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    v[i] = {x[i * stride], y[i] > 0.5f};
    pos += v[i].second;
  }
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first < b.first; });
  const size_t neg = n - pos;
  // Split after the first i values (ties stay together): "on iff above" is
  // right for the negatives below and the positives above, "on iff below" the converse.
  size_t best = std::max(pos, neg), pos_below = 0;
  for (size_t i = 0; i < n; ++i) {
    pos_below += v[i].second;
    if (i + 1 < n && v[i + 1].first == v[i].first) continue;
    const size_t below = i + 1, neg_below = below - pos_below;
    best = std::max(best, neg_below + (pos - pos_below));
    best = std::max(best, pos_below + (neg - neg_below));
  }
  return double(best) / double(n);
}

std::vector<UnitScore> rank_units(const Recording& rec, const Probe& probe,
                                  const std::vector<int>& kinds, const std::vector<int>& layers) {
  require(probe.values.size() == size_t(rec.N),
          "probe '" + probe.name + "' has " + std::to_string(probe.values.size()) +
              " values for a text of " + std::to_string(rec.N) + " characters");
  std::vector<int> ls = layers;
  if (ls.empty())
    for (int l = 0; l < rec.L; ++l) ls.push_back(l);
  std::vector<UnitScore> out;
  for (int l : ls)
    for (int k : kinds)
      for (int u = 0; u < rec.H; ++u) out.push_back({l, k, u, 0, -1});
  const size_t stride = size_t(rec.L) * rec.K * rec.H;
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < out.size(); ++i) {
    UnitScore& s = out[i];
    const float* x = rec.values.data() + (size_t(s.layer) * rec.K + s.kind) * rec.H + s.unit;
    s.corr = pearson(x, stride, probe.values.data(), rec.N);
    if (probe.binary) s.accuracy = best_threshold_accuracy(x, stride, probe.values.data(), rec.N);
  }
  std::stable_sort(out.begin(), out.end(), [](const UnitScore& a, const UnitScore& b) {
    return std::fabs(a.corr) > std::fabs(b.corr);
  });
  return out;
}

std::vector<Saturation> gate_saturation(const Recording& rec) {
  std::vector<Saturation> out;
  for (int l = 0; l < rec.L; ++l)
    for (const char* gate : {"i", "f", "o", "r", "z"}) {
      const int k = rec.kind_index(gate);
      if (k < 0) continue;
      Saturation s{l, gate, std::vector<float>(rec.H), std::vector<float>(rec.H)};
      for (int u = 0; u < rec.H; ++u) {
        size_t lo = 0, hi = 0;
        for (int n = 0; n < rec.N; ++n) {
          const float v = rec.at(n, l, k, u);
          lo += v<0.1f, hi += v> 0.9f;
        }
        s.left[u] = float(double(lo) / rec.N), s.right[u] = float(double(hi) / rec.N);
      }
      out.push_back(std::move(s));
    }
  return out;
}

namespace {
// The .npy header of a float32 array of this shape (format 1.0).
std::string npy_header(const std::vector<size_t>& shape) {
  std::string dims;
  for (size_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  if (shape.size() == 1) dims += ",";  // a Python tuple of one: "(5,)"
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic (6) + version (2) + length (2) + header, padded so data starts 64-aligned.
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::string pre = "\x93NUMPY";
  pre += char(1), pre += char(0);
  pre += char(header.size() & 0xff), pre += char(header.size() >> 8);
  return pre + header;
}
}  // namespace

void write_npy(const std::string& path, const std::vector<size_t>& shape, const float* data) {
  size_t count = 1;
  for (size_t d : shape) count *= d;
  write_file_atomic(path,
                    {npy_header(shape),
                     std::string_view(reinterpret_cast<const char*>(data), count * sizeof(float))},
                    "activations");
}

NpyWriter::NpyWriter(const std::string& path, const std::vector<size_t>& shape)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  require(!shape.empty(), "an array needs a shape");
  slice_ = 1;
  for (size_t i = 1; i < shape.size(); ++i) slice_ *= shape[i];
  done_.assign(shape[0], false);
  const std::string header = npy_header(shape);
  header_ = header.size();
  f_ = std::fopen(tmp_.c_str(), "wb");
  require(f_ != nullptr, "cannot write '" + path_ + "': " + std::strerror(errno));
  require(std::fwrite(header.data(), 1, header.size(), f_) == header.size(),
          "cannot write '" + path_ + "': " + std::strerror(errno));
}

NpyWriter::~NpyWriter() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void NpyWriter::put(size_t i, const float* data) {
  require(f_ && i < done_.size(), "NpyWriter: no slice " + std::to_string(i));
  const long at = long(header_ + i * slice_ * sizeof(float));
  require(
      std::fseek(f_, at, SEEK_SET) == 0 && std::fwrite(data, sizeof(float), slice_, f_) == slice_,
      "cannot write '" + path_ + "': " + std::strerror(errno));
  done_[i] = true;
}

void NpyWriter::finish() {
  require(std::all_of(done_.begin(), done_.end(), [](bool b) { return b; }),
          "NpyWriter: a slice of '" + path_ + "' was not written");
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int err = errno;
  std::fclose(f_);
  f_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    throw Error("cannot write '" + path_ + "': " + std::strerror(ok ? errno : err));
  }
}

// ---- the page's data (`unroll cells`) ----

namespace {
std::string kind_label(const std::string& k) {
  static const std::map<std::string, std::string> names = {
      {"h", "hidden state h"}, {"c", "cell state c (shown as tanh c)"},
      {"i", "input gate i"},   {"f", "forget gate f"},
      {"g", "candidate g"},    {"o", "output gate o"},
      {"r", "reset gate r"},   {"z", "update gate z"},
      {"n", "candidate n"}};
  return names.at(k);
}
double round3(double v) { return std::round(v * 1000.0) / 1000.0; }
}  // namespace

CellsPage cells_page_data(const LanguageModel<float>& model, const Vocab& vocab,
                          const std::u32string& text, const Recording& rec,
                          const std::vector<Probe>& probes, const CellsPageOptions& opt) {
  const ModelConfig& cfg = model.config();
  CellsPage out;
  nlohmann::json& j = out.data;
  j["format"] = "unroll-cells-1";
  j["title"] = opt.title;
  j["command"] = opt.command;
  j["model"] = {{"cell", cell_name(cfg.cell)},
                {"layers", cfg.layers},
                {"hidden", cfg.hidden},
                {"vocab", vocab.size()},
                {"params", model.layout().count()},
                {"checkpoint", opt.checkpoint},
                {"text", opt.text_name}};
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
      if (q.p > 0) g.push_back({vocab.token(q.id), round3(q.p)});
    top.push_back(std::move(g));
  }

  std::vector<int> kinds = {0};  // rank h, and c for the LSTM
  if (rec.kind_index("c") >= 0) kinds.push_back(rec.kind_index("c"));
  std::vector<int> layers;
  if (opt.layer > 0) layers.push_back(opt.layer - 1);

  // Series the page can show: the top cells of every probe, and --cells with all their kinds.
  std::vector<std::array<int, 3>> series;  // layer, kind, unit
  std::set<std::array<int, 3>> seen;
  auto add_series = [&](int l, int k, int u) {
    if (seen.insert({l, k, u}).second) series.push_back({l, k, u});
  };
  for (int c : opt.cells)
    for (int k = 0; k < rec.K; ++k) add_series(opt.layer > 0 ? opt.layer - 1 : 0, k, c);

  auto& jp = j["probes"] = nlohmann::json::array();
  auto& found = j["summary"]["found"] = nlohmann::json::array();
  auto& absent = j["summary"]["absent"] = nlohmann::json::array();
  j["summary"]["threshold"] = opt.threshold;
  double best_abs = -1;
  std::string best_id;
  for (const Probe& p : probes) {
    const auto [lo, hi] = std::minmax_element(p.values.begin(), p.values.end());
    if (*lo == *hi) {  // constant over this text: nothing to correlate with
      absent.push_back(p.name);
      out.rows.push_back({p.name, p.description, "", 0, -1, false});
      continue;
    }
    std::vector<UnitScore> ranked = rank_units(rec, p, kinds, layers);
    auto tops = nlohmann::json::array();
    for (int i = 0; i < std::min<int>(opt.top, int(ranked.size())); ++i) {
      const UnitScore& s = ranked[i];
      add_series(s.layer, s.kind, s.unit);
      tops.push_back({{"id", unit_id(rec.kinds, s.layer, s.kind, s.unit)},
                      {"corr", round3(s.corr)},
                      {"accuracy", s.accuracy < 0 ? nlohmann::json(nullptr)
                                                  : nlohmann::json(round3(s.accuracy))}});
    }
    const UnitScore& b = ranked.front();
    const std::string id = unit_id(rec.kinds, b.layer, b.kind, b.unit);
    if (std::fabs(b.corr) >= opt.threshold)
      found.push_back({{"probe", p.name}, {"id", id}, {"corr", round3(b.corr)}});
    if (std::fabs(b.corr) > best_abs) best_abs = std::fabs(b.corr), best_id = id;
    out.rows.push_back({p.name, p.description, id, b.corr, b.accuracy, true});
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
    js.push_back({{"id", unit_id(rec.kinds, l, k, u)},
                  {"layer", l + 1},
                  {"kind", kind},
                  {"unit", u},
                  {"label", "layer " + std::to_string(l + 1) + " " + kind_label(kind) + " [" +
                                std::to_string(u) + "]"},
                  {"range", activation_range(kind)},
                  {"values", std::move(vals)}});
  }
  j["default_series"] = !opt.cells.empty()
                            ? unit_id(rec.kinds, opt.layer > 0 ? opt.layer - 1 : 0, 0, opt.cells[0])
                        : best_id.empty() && !series.empty()
                            ? unit_id(rec.kinds, series[0][0], series[0][1], series[0][2])
                            : best_id;

  auto& sat = j["saturation"] = nlohmann::json::array();
  for (const Saturation& s : gate_saturation(rec)) {
    nlohmann::json left = nlohmann::json::array(), right = nlohmann::json::array();
    for (float v : s.left) left.push_back(round3(v));
    for (float v : s.right) right.push_back(round3(v));
    sat.push_back({{"layer", s.layer + 1}, {"gate", s.gate}, {"left", left}, {"right", right}});
  }

  out.series = series.size();
  return out;
}

}  // namespace unroll

// unroll/inspect/cells.h — what each hidden cell does over a text: record the
// activations of every layer at every character, rank cells against probes
// (inspect/probes.h), and measure gate saturation.
#pragma once
#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unroll/inspect/probes.h"
#include "unroll/model/model.h"
#include "unroll/text/vocab.h"

namespace unroll {

// Names of what is recorded per layer and unit: "h", then "c" (LSTM), then the
// gates in PyTorch order (LSTM i f g o, GRU r z n; none for the vanilla RNN,
// whose only activation is h).
std::vector<std::string> activation_kinds(CellKind cell);

struct Guess {
  int32_t id = 0;
  float p = 0;
};

struct Recording {
  int N = 0, L = 0, K = 0, H = 0;  // characters, layers, kinds, hidden units
  CellKind cell = CellKind::Lstm;
  std::vector<std::string> kinds;         // [K], see activation_kinds
  std::vector<float> values;              // [N][L][K][H] after reading character n
  std::vector<float> loss;                // [N] nats lost predicting character n (NaN for n = 0)
  std::vector<std::array<Guess, 5>> top;  // [N] most likely next characters after n

  float at(size_t n, int l, int k, int u) const { return values[((n * L + l) * K + k) * H + u]; }
  int kind_index(const std::string& kind) const;  // -1 if absent
};

// Bytes a recording of n characters takes for this model.
size_t recording_bytes(const ModelConfig& cfg, size_t n);

// Runs the model over ids from a zero state (batch 1, chunks of `chunk`
// steps) and records everything. progress(done) is called after each chunk.
// Leaves the model's carried state as it found it.
Recording record_activations(LanguageModel<float>& model, const std::vector<int32_t>& ids,
                             int chunk = 256, const std::function<void(size_t)>& progress = {});

// The range a kind's values are drawn over: [0, 1] for sigmoid gates, [−1, 1]
// for h, tanh c and the candidates.
std::array<float, 2> activation_range(const std::string& kind);

// A unit is one (layer, kind, index) of a recording, named "L1.h.42" (layer from 1).
std::string unit_id(const std::vector<std::string>& kinds, int layer, int kind, int unit);
struct UnitScore {
  int layer = 0, kind = 0, unit = 0;
  double corr = 0;  // Pearson correlation with the probe (0 if either is constant)
  double accuracy =
      -1;  // binary probes: accuracy of the best single threshold on the unit, else -1
};

// Pearson correlation of x and y (n values each; x read with stride).
// Returns 0 when either has no variance.
double pearson(const float* x, size_t stride, const float* y, size_t n);

// The best accuracy of "on iff x > θ" or "on iff x < θ" over all thresholds
// θ, for a 0/1 target y.
double best_threshold_accuracy(const float* x, size_t stride, const float* y, size_t n);

// Scores every unit of the given kinds (indices into rec.kinds) and layers
// (empty: all) against the probe; sorted by |corr|, best first.
std::vector<UnitScore> rank_units(const Recording& rec, const Probe& probe,
                                  const std::vector<int>& kinds,
                                  const std::vector<int>& layers = {});

// Fraction of time each unit of a sigmoid gate is left-saturated (< 0.1) and
// right-saturated (> 0.9), as in Karpathy et al. 2015 (LSTM i f o, GRU r z).
struct Saturation {
  int layer = 0;
  std::string gate;
  std::vector<float> left, right;  // [H]
};
std::vector<Saturation> gate_saturation(const Recording& rec);

// What `unroll cells` draws (inspect/page.h, cells_page_html) and writes with --json-file:
// the data of format "unroll-cells-1" for a recording over `text` ranked against `probes`,
// and the probe table it prints.
struct CellsPageOptions {
  int layer = 0;           // rank the units of this layer only (1-based); 0 = every layer
  std::vector<int> cells;  // also show these units of `layer` (or layer 1), every kind
  int top = 3;             // units kept per probe
  double threshold = 0.6;  // |correlation| at which a probe counts as found
  std::string title, command, checkpoint, text_name;  // recorded on the page
};
struct ProbeRow {
  std::string probe, description, id;  // id: the best unit, "L1.h.42"
  double corr = 0, accuracy = -1;      // accuracy: binary probes only, else -1
  bool present = true;                 // false: the probe is constant over this text
};
struct CellsPage {
  nlohmann::json data;
  std::vector<ProbeRow> rows;  // one per probe, in the probes' order
  size_t series = 0;           // cells shown
};
CellsPage cells_page_data(const LanguageModel<float>& model, const Vocab& vocab,
                          const std::u32string& text, const Recording& rec,
                          const std::vector<Probe>& probes, const CellsPageOptions& opt);

// Writes a float32 array as a NumPy .npy file (format 1.0), atomically.
void write_npy(const std::string& path, const std::vector<size_t>& shape, const float* data);

// The same, slice by slice along the first axis, for arrays too large to hold:
// put(i, data) writes slice i (any order); finish() checks that every slice
// came and moves the file into place. Until then it is a temporary beside
// the path, removed if the writer is destroyed first.
class NpyWriter {
 public:
  NpyWriter(const std::string& path, const std::vector<size_t>& shape);
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;
  void put(size_t i, const float* data);
  void finish();

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  size_t slice_ = 0, header_ = 0;
  std::vector<bool> done_;
};

}  // namespace unroll

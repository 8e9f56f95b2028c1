// unroll/inspect/cells.h — what each hidden cell does over a text: record the
// activations of every layer at every character, rank cells against probes
// (inspect/probes.h), and measure gate saturation.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "unroll/inspect/probes.h"
#include "unroll/model/model.h"

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
Recording record_activations(Model<float>& model, const std::vector<int32_t>& ids, int chunk = 256,
                             const std::function<void(size_t)>& progress = {});

// A unit is one (layer, kind, index) of a recording.
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

// Writes a float32 array as a NumPy .npy file (format 1.0), atomically.
void write_npy(const std::string& path, const std::vector<size_t>& shape, const float* data);

}  // namespace unroll

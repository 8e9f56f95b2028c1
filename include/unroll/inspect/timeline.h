// unroll/inspect/timeline.h — the hidden cells across training: one text run
// through many checkpoints of one model (a run's snapshots, train/snapshots.h),
// and for each probe the best cell and its correlation at every checkpoint,
// so the step at which a cell "appears" can be read off; whether it stays the
// same unit; the chosen cells' activations at every checkpoint (the slider of
// the page); and how far each layer's states moved from the first
// checkpoint's.
//
// Drift of layer l at checkpoint s, over the text's N characters and H units:
//   mean_abs = Σ_n Σ_u |h_s[n,u] − h_0[n,u]| / (N·H)        (h_0: the first checkpoint)
//   CKA(X, Y) = ‖XᵀY‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)                (linear CKA, Kornblith et
//     al. 2019; X, Y the states [rows, H] with each column's mean removed, on at
//     most kCkaRows characters evenly spaced)
// CKA is 1 for states that differ by a rotation and a scale, and is near 0 for
// unrelated ones; it is given against the first and the last checkpoint.
//
// Cost: one recording at a time (inspect/cells.h: N·L·K·H floats), plus the
// hidden states of the first and the last checkpoint (N·L·H each); the
// correlations are P·L·2·H·N per checkpoint (P probes).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unroll/inspect/cells.h"

namespace unroll {

struct TimelinePoint {
  std::string name;     // as given (a file path)
  int64_t step = 0;     // training step of the weights
  int64_t tokens = -1;  // tokens seen by then (-1: not recorded)
};

struct TimelineOptions {
  int layer = 0;             // rank the units of this layer only (1-based); 0 = every layer
  std::vector<int> cells;    // also show these units of `layer` (or layer 1) at every checkpoint
  double threshold = 0.6;    // |correlation| at which a probe counts as found
  size_t show_chars = 2000;  // the page's text: its first characters (correlations use all)
  bool unit_correlations = false;  // keep every unit's correlation per probe and checkpoint
  std::string title, command, text_name;
};

// One probe across the checkpoints, for the printed table.
struct TimelineRow {
  std::string probe, description;
  bool present = true;   // false: the probe is constant over the text
  int first = -1;        // first checkpoint whose best |corr| reaches the threshold
  std::string first_id;  // its best unit then
  std::string final_id;  // the best unit at the last checkpoint
  double final_corr = 0;
  int same_since = -1;  // the checkpoint from which the best unit is final_id at every one after
};

struct Timeline {
  nlohmann::json data;            // format "unroll-cells-timeline-1" (inspect/page.h)
  std::vector<TimelineRow> rows;  // one per probe, in the probes' order
};

constexpr size_t kCkaRows = 1000;

// `record(i)` runs checkpoint i (of `points`, in step order) over the text and
// returns its recording; `model` and `vocab` describe them all (the caller
// checks that they agree). The last checkpoint is recorded first (its best
// cells are the series shown at every step), then the first, then the rest;
// `done(k)` is called after each of the k recordings.
Timeline cells_timeline_data(const std::vector<TimelinePoint>& points, const ModelConfig& model,
                             int64_t params, const Vocab& vocab, const std::u32string& text,
                             const std::vector<Probe>& probes, const TimelineOptions& opt,
                             const std::function<Recording(size_t)>& record,
                             const std::function<void(size_t)>& done = {});

// Linear CKA of X and Y ([rows, cols] each, row-major; columns centred here).
double linear_cka(const std::vector<float>& X, const std::vector<float>& Y, size_t rows,
                  size_t cols);

}  // namespace unroll

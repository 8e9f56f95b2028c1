// unroll/train/snapshots.h — the weights of a run kept along the way
// (--snapshot-every), so that what the network learned can be watched from
// its initialisation to its last step. RUN/snapshots/step-000000100.safetensors
// is a checkpoint without optimizer moments (progress["snapshot"] = true).
// When: step 0 always, then
//   "500"        every 500 steps;
//   "100x2"      at 100, 200, 400, 800, ... (each step the last × 2, rounded;
//                dense early, where most changes happen);
//   "10,50,300"  at the steps listed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace unroll {

struct SnapshotSchedule {
  int64_t every = 0;            // the first step after 0 (0: no schedule)
  double factor = 0;            // > 1: geometric; 0: every `every` steps
  std::vector<int64_t> listed;  // explicit steps (instead of every/factor)
  bool on() const { return every > 0 || !listed.empty(); }
  bool due(int64_t step) const;
};

// "" gives a schedule that is off; anything else not of the forms above is an
// error that shows them.
SnapshotSchedule parse_snapshot_schedule(const std::string& spec);

// RUN/snapshots/step-000000100.safetensors: the step zero-padded to 9 digits,
// so that names sort in step order.
std::string snapshot_path(const std::string& run_dir, int64_t step);

}  // namespace unroll

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

// --snapshot-budget: "500M", "2G", "300k" (1024-based: MiB, GiB, KiB; the
// long forms KiB/MiB/GiB are accepted too) or a number of bytes. "" = no
// budget (0); anything else is an error that shows the forms.
int64_t parse_snapshot_budget(const std::string& spec);

// The snapshots a run folder holds, in step order: the files of
// RUN/snapshots named as snapshot_path names them (others are ignored; an
// absent folder gives none).
struct SnapshotFile {
  int64_t step = 0;
  std::string path;
  int64_t bytes = 0;
};
std::vector<SnapshotFile> list_snapshots(const std::string& run_dir);

// Which snapshots (indices into `files`, in step order) to delete so that the
// rest take at most `budget` bytes. Never the first (the initialisation) nor
// the last; each time the one whose neighbours are closest in steps, the
// oldest of equals, so the early, dense part of a run is thinned first and
// what stays is spread over the whole run. When the first and last alone are
// over the budget, every other one goes and they stay.
std::vector<size_t> snapshots_to_thin(const std::vector<SnapshotFile>& files, int64_t budget);

}  // namespace unroll

// When a run keeps its weights (train/snapshots.h).
#include "unroll/train/snapshots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "unroll/core/error.h"

namespace unroll {

namespace {

// A whole number of steps, 1 or more.
int64_t steps_of(const std::string& text, const std::string& spec) {
  const bool digits = !text.empty() && text.size() <= 12 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  require(digits && std::stoll(text) >= 0,
          "--snapshot-every '" + spec +
              "': give steps as N (every N steps), NxF (at N, N*F, N*F^2, ...: e.g. 100x2) or "
              "a list of steps (e.g. 10,50,300)");
  return std::stoll(text);
}

}  // namespace

bool SnapshotSchedule::due(int64_t step) const {
  if (step == 0) return on();
  if (!listed.empty()) return std::binary_search(listed.begin(), listed.end(), step);
  if (every <= 0) return false;
  if (factor <= 1) return step % every == 0;
  int64_t s = every;
  while (s < step) s = std::max(s + 1, int64_t(std::llround(double(s) * factor)));
  return s == step;
}

SnapshotSchedule parse_snapshot_schedule(const std::string& spec) {
  SnapshotSchedule s;
  if (spec.empty()) return s;
  if (spec.find(',') != std::string::npos) {
    size_t from = 0;
    while (from <= spec.size()) {
      const size_t comma = std::min(spec.find(',', from), spec.size());
      s.listed.push_back(steps_of(spec.substr(from, comma - from), spec));
      from = comma + 1;
    }
    std::sort(s.listed.begin(), s.listed.end());
    s.listed.erase(std::unique(s.listed.begin(), s.listed.end()), s.listed.end());
    return s;
  }
  const size_t x = spec.find('x');
  s.every = steps_of(spec.substr(0, x), spec);
  require(s.every >= 1, "--snapshot-every '" + spec +
                            "': the steps between snapshots must be 1 or more (e.g. 500, or "
                            "100x2 for 100, 200, 400, ...)");
  if (x != std::string::npos) {
    const std::string f = spec.substr(x + 1);
    char* end = nullptr;
    s.factor = f.empty() ? 0 : std::strtod(f.c_str(), &end);
    require(!f.empty() && end && *end == '\0' && std::isfinite(s.factor) && s.factor > 1 &&
                s.factor <= 1000,
            "--snapshot-every '" + spec +
                "': the factor after x must be a number above 1 (e.g. 100x2: at 100, 200, 400, "
                "...)");
  }
  return s;
}

int64_t parse_snapshot_budget(const std::string& spec) {
  if (spec.empty()) return 0;
  const std::string forms =
      "--snapshot-budget '" + spec +
      "': give a size such as 500M, 2G or 300k (MiB, GiB, KiB), or a number of bytes";
  const size_t digits = spec.find_first_not_of("0123456789.");
  const std::string number = spec.substr(0, digits),
                    unit = digits == std::string::npos ? "" : spec.substr(digits);
  char* end = nullptr;
  const double v = number.empty() ? -1 : std::strtod(number.c_str(), &end);
  require(!number.empty() && end && *end == '\0' && std::isfinite(v), forms);
  double scale = 0;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "k" || unit == "K" || unit == "KiB")
    scale = 1024.0;
  else if (unit == "M" || unit == "m" || unit == "MiB")
    scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "g" || unit == "GiB")
    scale = 1024.0 * 1024 * 1024;
  require(scale > 0, forms);
  const double bytes = v * scale;
  require(bytes >= 1,
          "--snapshot-budget '" + spec + "': the budget must be at least one byte (e.g. 500M)");
  require(bytes < 9e18, "--snapshot-budget '" + spec + "': too large; leave it out for no limit");
  return int64_t(bytes);
}

std::vector<SnapshotFile> list_snapshots(const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::vector<SnapshotFile> out;
  std::error_code ec;
  for (fs::directory_iterator it(fs::path(run_dir) / "snapshots", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // step-NNNNNNNNN.safetensors as snapshot_path writes it: 9 digits or more
    const std::string head = "step-", tail = ".safetensors";
    if (name.size() < head.size() + 9 + tail.size() ||
        name.size() > head.size() + 18 + tail.size() || name.compare(0, head.size(), head) ||
        name.compare(name.size() - tail.size(), tail.size(), tail))
      continue;
    const std::string number = name.substr(head.size(), name.size() - head.size() - tail.size());
    if (number.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code size_ec;
    const auto bytes = fs::file_size(it->path(), size_ec);
    if (size_ec) continue;  // gone meanwhile, or not a file
    out.push_back({std::stoll(number), it->path().string(), int64_t(bytes)});
  }
  std::sort(out.begin(), out.end(),
            [](const SnapshotFile& a, const SnapshotFile& b) { return a.step < b.step; });
  return out;
}

std::vector<size_t> snapshots_to_thin(const std::vector<SnapshotFile>& files, int64_t budget) {
  std::vector<size_t> kept(files.size()), out;
  std::iota(kept.begin(), kept.end(), size_t(0));
  int64_t total = 0;
  for (const SnapshotFile& f : files) total += f.bytes;
  while (budget > 0 && total > budget && kept.size() > 2) {
    size_t pick = 1;  // the candidate between the closest neighbours; the oldest of equals
    for (size_t i = 2; i + 1 < kept.size(); ++i)
      if (files[kept[i + 1]].step - files[kept[i - 1]].step <
          files[kept[pick + 1]].step - files[kept[pick - 1]].step)
        pick = i;
    total -= files[kept[pick]].bytes;
    out.push_back(kept[pick]);
    kept.erase(kept.begin() + long(pick));
  }
  return out;
}

std::string snapshot_path(const std::string& run_dir, int64_t step) {
  char name[48];
  std::snprintf(name, sizeof name, "step-%09lld.safetensors", static_cast<long long>(step));
  return (std::filesystem::path(run_dir) / "snapshots" / name).string();
}

}  // namespace unroll

// When a run keeps its weights (train/snapshots.h).
#include "unroll/train/snapshots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

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

std::string snapshot_path(const std::string& run_dir, int64_t step) {
  char name[48];
  std::snprintf(name, sizeof name, "step-%09lld.safetensors", static_cast<long long>(step));
  return (std::filesystem::path(run_dir) / "snapshots" / name).string();
}

}  // namespace unroll

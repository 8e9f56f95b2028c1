// unroll/core/interrupt.h — Ctrl-C (SIGINT) and SIGTERM during long work.
// While an InterruptScope lives, the first of these signals only asks the work
// to stop at its next safe point (the trainer: the end of the current step,
// then it saves a checkpoint); a second one ends the process at once with exit
// status 128 + signal. Files are only ever replaced by rename (core/file.h),
// so quitting at once leaves the previous checkpoint whole.
#pragma once

namespace unroll {

class InterruptScope {
 public:
  // `message` is printed to stderr when the first signal arrives (the second
  // prints a fixed line). Scopes do not nest: one at a time.
  explicit InterruptScope(const char* message);
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// The signal that asked to stop (SIGINT or SIGTERM), or 0. Always 0 outside
// an InterruptScope.
int interrupt_requested();

// Conventional exit status for a run stopped by signal `sig`: 128 + sig.
inline int interrupt_exit_code(int sig) { return 128 + sig; }

}  // namespace unroll

// unroll/core/interrupt.h — Ctrl-C (SIGINT) and SIGTERM during long work.
// While an InterruptScope lives, the first of these signals only asks the work
// to stop at its next safe point (the trainer: the end of the current step,
// then it saves a checkpoint); a second one ends the process at once with exit
// status 128 + signal. Files are only ever replaced by rename (core/file.h),
// so quitting at once leaves the previous checkpoint whole.
//
// A second signal within kSameRequestSeconds of the first counts as the same
// request: GNU timeout, for one, sends its signal to the child and then to
// its whole process group, so the child gets it twice in a microsecond.
#pragma once

namespace unroll {

inline constexpr double kSameRequestSeconds = 0.25;

class InterruptScope {
 public:
  // `message` goes to stderr when the first signal arrives, `quit_message`
  // when a second one ends the process (empty: nothing). Scopes do not nest.
  InterruptScope(const char* message, const char* quit_message);
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

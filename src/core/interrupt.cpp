#include "unroll/core/interrupt.h"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "unroll/core/error.h"

namespace unroll {
namespace {

// Read by the training thread, written by the handler on whichever thread
// the kernel picks (OpenMP's too): a lock-free atomic, safe in a handler.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);
struct Text {
  char s[1024];
  size_t n = 0;
  void set(const char* m, bool own_line) {
    n = 0;
    const size_t len = std::min(std::strlen(m), sizeof s - 2);
    if (len == 0) return;  // an empty message prints nothing
    if (own_line) s[n++] = '\n';  // off the progress bar's line
    std::memcpy(s + n, m, len);
    n += len;
  }
};
Text g_first, g_quit;
timespec g_first_at{};
std::atomic<bool> g_active{false};
struct sigaction g_old_int, g_old_term;

void put(const Text& t) {
  const char* s = t.s;
  size_t n = t.n;
  while (n > 0) {  // only async-signal-safe calls in here
    ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w, n -= size_t(w);
  }
}

extern "C" void on_signal(int sig) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  if (g_signal != 0) {
    const double since = double(now.tv_sec - g_first_at.tv_sec) + 1e-9 * double(now.tv_nsec - g_first_at.tv_nsec);
    if (since < kSameRequestSeconds) return;  // the same request, delivered twice
    put(g_quit);
    // The exit_group system call itself, not _exit: under AddressSanitizer
    // _exit is intercepted to run the leak check, which must not run inside
    // a signal handler that may have interrupted the allocator (it crashed
    // there, "nested bug"). Both end the process the same way.
    ::syscall(SYS_exit_group, interrupt_exit_code(sig));
    ::_exit(interrupt_exit_code(sig));  // not reached
  }
  g_first_at = now;
  g_signal = sig;
  put(g_first);
}

}  // namespace

InterruptScope::InterruptScope(const char* message, const char* quit_message) {
  require(!g_active.exchange(true), "InterruptScope: one at a time");
  g_signal = 0;
  g_first.set(message, true);
  g_quit.set(quit_message, true);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);  // one handler at a time, whichever the signal
  sigaddset(&sa.sa_mask, SIGTERM);
  sa.sa_flags = SA_RESTART;  // reads and writes in progress go on
  ::sigaction(SIGINT, &sa, &g_old_int);
  ::sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptScope::~InterruptScope() {
  ::sigaction(SIGINT, &g_old_int, nullptr);
  ::sigaction(SIGTERM, &g_old_term, nullptr);
  g_signal = 0;
  g_active = false;
}

int interrupt_requested() { return g_signal; }

}  // namespace unroll

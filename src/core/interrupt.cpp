#include "unroll/core/interrupt.h"

#include <signal.h>
#include <sys/mman.h>
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
    if (len == 0) return;         // an empty message prints nothing
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
    const double since =
        double(now.tv_sec - g_first_at.tv_sec) + 1e-9 * double(now.tv_nsec - g_first_at.tv_nsec);
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

// Signals are delivered on a separate stack (SA_ONSTACK), one per thread,
// set up once. With the handler on the interrupted thread's own stack, a
// Ctrl-C during training damaged the heap in about 1 of 40 tries: a few steps
// later oneDNN's GEMM aborted freeing its memory ("corrupted size vs.
// prev_size", "free(): invalid pointer"; the same on the code of session 7,
// never without a signal in 60 epochs). The handler itself only writes; what
// it clobbered is the space below the stack pointer of the interrupted code,
// where the kernel puts the signal frame (several KiB of saved vector state
// with AVX-512). On a stack of its own: 0 crashes in 260 tries
// (Reliability.ClassifierInterruptAndSkip is the test that first showed it).
void use_own_signal_stack() {
  thread_local bool done = false;
  if (done) return;
  done = true;
  long min = ::sysconf(_SC_MINSIGSTKSZ);  // the kernel's frame for this CPU's state
  const size_t size = std::max<size_t>(size_t(1) << 16, min > 0 ? size_t(min) * 4 : 0);
  // A stack already set up (AddressSanitizer gives every thread one, and
  // unmaps it when the thread ends) is kept if it is large enough.
  stack_t old{};
  if (::sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE) && old.ss_size >= size)
    return;
  // mmap, not new: its own pages, which a sanitizer's unmap at thread exit
  // may take back. Never freed: the thread may be interrupted until it ends.
  void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;  // the handler then runs on the thread's stack, as before
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = size;
  ::sigaltstack(&ss, nullptr);
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
  // The handler runs on a stack of its own, on whichever thread the kernel
  // picks (see use_own_signal_stack).
#pragma omp parallel
  use_own_signal_stack();
  use_own_signal_stack();                 // the main thread, also when OpenMP is off
  sa.sa_flags = SA_RESTART | SA_ONSTACK;  // reads and writes in progress go on
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

#include "unroll/core/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "unroll/core/error.h"

namespace unroll {
namespace {

volatile sig_atomic_t g_signal = 0;
char g_message[512];
size_t g_message_len = 0;
std::atomic<bool> g_active{false};
struct sigaction g_old_int, g_old_term;

void put(const char* s, size_t n) {
  while (n > 0) {  // only async-signal-safe calls in here
    ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w, n -= size_t(w);
  }
}

extern "C" void on_signal(int sig) {
  if (g_signal != 0) {
    static const char kQuit[] = "\nunroll: quitting at once; the last checkpoint written is kept\n";
    put(kQuit, sizeof kQuit - 1);
    ::_exit(interrupt_exit_code(sig));
  }
  g_signal = sig;
  put(g_message, g_message_len);
}

}  // namespace

InterruptScope::InterruptScope(const char* message) {
  require(!g_active.exchange(true), "InterruptScope: one at a time");
  g_signal = 0;
  g_message_len = 0;
  const size_t n = std::min(std::strlen(message), sizeof g_message - 2);
  g_message[0] = '\n';  // off the progress bar's line
  std::memcpy(g_message + 1, message, n);
  g_message_len = n ? n + 1 : 0;  // an empty message prints nothing
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
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

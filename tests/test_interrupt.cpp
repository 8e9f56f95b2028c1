// core/interrupt.h: the first SIGINT/SIGTERM inside a scope only raises a
// flag; the same signal again within kSameRequestSeconds is the same request
// (GNU timeout delivers it twice); a later one ends the process at once with
// 128 + signal; outside a scope nothing is caught.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "unroll/core/interrupt.h"

using namespace unroll;

namespace {
void after_the_window() {
  std::this_thread::sleep_for(std::chrono::duration<double>(kSameRequestSeconds + 0.05));
}

// Runs f in a child process; its exit status, or -signal if a signal killed it.
template <class F>
int in_child(F f) {
  pid_t pid = ::fork();
  if (pid == 0) {
    f();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}
}  // namespace

TEST(Interrupt, FirstSignalOnlyAsksToStop) {
  for (int sig : {SIGINT, SIGTERM}) {
    EXPECT_EQ(interrupt_requested(), 0);
    {
      InterruptScope scope("test: stopping\n", "test: quitting\n");
      EXPECT_EQ(interrupt_requested(), 0);
      ::raise(sig);  // handled synchronously on this thread
      EXPECT_EQ(interrupt_requested(), sig);
    }
    EXPECT_EQ(interrupt_requested(), 0) << "the scope's end clears the request";
  }
}

TEST(Interrupt, TheSameSignalTwiceAtOnceIsOneRequest) {
  EXPECT_EQ(in_child([] {
              InterruptScope scope("", "");
              ::raise(SIGTERM);
              ::raise(SIGTERM);  // as GNU timeout sends it: to the child, then to its group
              ::_exit(interrupt_requested() == SIGTERM ? 7 : 8);
            }),
            7);
}

TEST(Interrupt, ALaterSecondSignalQuitsAtOnce) {
  for (int sig : {SIGINT, SIGTERM})
    EXPECT_EQ(in_child([sig] {
                InterruptScope scope("", "");
                ::raise(sig);
                after_the_window();
                ::raise(sig);
              }),
              128 + sig)
        << "killed by the signal, or not quit";
}

TEST(Interrupt, TheScopeRestoresTheOldHandler) {
  EXPECT_EQ(in_child([] {
              { InterruptScope scope("", ""); }
              ::raise(SIGTERM);
            }),
            -SIGTERM);
}

// core/interrupt.h: the first SIGINT/SIGTERM inside a scope only raises a
// flag; a second ends the process at once with 128 + signal; outside a scope
// nothing is caught.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unroll/core/interrupt.h"

using namespace unroll;

TEST(Interrupt, FirstSignalOnlyAsksToStop) {
  for (int sig : {SIGINT, SIGTERM}) {
    EXPECT_EQ(interrupt_requested(), 0);
    {
      InterruptScope scope("test: stopping\n");
      EXPECT_EQ(interrupt_requested(), 0);
      ::raise(sig);  // handled synchronously on this thread
      EXPECT_EQ(interrupt_requested(), sig);
    }
    EXPECT_EQ(interrupt_requested(), 0) << "the scope's end clears the request";
  }
}

TEST(Interrupt, SecondSignalQuitsAtOnceAndTheScopeRestoresTheOldHandler) {
  for (int sig : {SIGINT, SIGTERM}) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      InterruptScope scope("");
      ::raise(sig);
      ::raise(sig);
      ::_exit(0);  // not reached
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of quitting";
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
  }
  // After the scope, the default action again: the signal kills.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    { InterruptScope scope(""); }
    ::raise(SIGTERM);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

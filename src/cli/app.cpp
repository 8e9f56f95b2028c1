// The unroll program's command line: the subcommands wired together, the
// option checks they share, and what every command does on the way out
// (main.cpp runs it).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/gemm.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/shell.h"
#include "unroll/train/trainer.h"

namespace unroll::cli {

void add_threads_option(CLI::App& sub, int& threads) {
  threads = int(std::max(1u, std::thread::hardware_concurrency()));
  sub.add_option("--threads", threads, "Threads for matrix products and element-wise loops")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
}

void apply_threads(int threads) { set_threads(threads); }

namespace {
CLI::Validator number_check(const char* desc, bool strict) {
  return CLI::Validator(
      [strict](std::string& in) -> std::string {
        double v;
        try {
          size_t used = 0;
          v = std::stod(in, &used);
          if (used != in.size()) throw 0;
        } catch (...) {
          return "'" + in + "' is not a number";
        }
        if (strict ? !(v > 0) : !(v >= 0))
          return std::string("must be ") + (strict ? "greater than 0" : "0 or more") + " (got " +
                 in + ")";
        return {};
      },
      desc);
}
}  // namespace

CLI::Validator positive() { return number_check("POSITIVE", true); }

CLI::Validator seed_check() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        // Digits only: CLI11 would wrap "-1" and saturate overflowing values silently.
        const std::string max = "18446744073709551615";  // 2^64 - 1
        bool digits = !in.empty() && in.find_first_not_of("0123456789") == std::string::npos;
        std::string d = digits ? in.substr(std::min(in.find_first_not_of('0'), in.size() - 1)) : "";
        if (!digits || d.size() > max.size() || (d.size() == max.size() && d > max))
          return "a seed is a whole number from 0 to " + max + " (got '" + in + "')";
        return {};
      },
      "0..2^64-1");
}
CLI::Validator non_negative() { return number_check("NONNEGATIVE", false); }

CLI::Validator duration_check() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        try {
          if (!(parse_duration(in) > 0))
            return "'" + in +
                   "' would stop before the first step: give a positive duration such as 90s or 5m";
        } catch (const Error& e) {
          return e.what();
        }
        return {};
      },
      "DURATION");
}

namespace {
std::string g_command_line = "unroll";
}

const std::string& command_line() { return g_command_line; }

namespace {
int g_exit_code = 0;
Comm* g_comm = &single_process();
}  // namespace
Comm& process_comm() { return *g_comm; }
void set_process_comm(Comm& c) { g_comm = &c; }
void set_exit_code(int code) { g_exit_code = code; }

void check_stdout() {
  // std::cout shares stdout's buffer (sync_with_stdio), so one flush sends
  // both; a write that failed earlier leaves the error flag set.
  errno = 0;
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout;
  if (!failed) return;
  int e = errno;
  if (!e) {  // an earlier write failed and its reason is gone: one byte asks again
    const char newline = '\n';
    if (::write(STDOUT_FILENO, &newline, 1) < 0) e = errno;
  }
  std::clearerr(stdout);  // said once: the exit path must not report it again
  std::cout.clear();
  throw Error(std::string("cannot write to standard output: ") +
              (e ? std::strerror(e) : "write error") + " (is the disk full, or the reader gone?)");
}
int exit_code() { return g_exit_code; }

int with_interrupts(const std::string& dir, const std::string& resume, bool quiet,
                    const std::function<int()>& train) {
  const std::string first =
      "unroll: stopping after this step and saving a checkpoint (Ctrl-C again to quit at once)\n";
  const std::string quit = "unroll: quitting at once; the checkpoints last written in '" + dir +
                           "' are kept" +
                           (resume.empty() ? std::string() : "; continue with: " + resume) + "\n";
  InterruptScope scope(quiet ? "" : first.c_str(), quiet ? "" : quit.c_str());
  const int sig = train();
  if (sig) set_exit_code(interrupt_exit_code(sig));
  return sig;
}

std::vector<int64_t> test_nan_steps() {
  std::vector<int64_t> steps;
  const char* env = std::getenv("UNROLL_TEST_NAN_STEPS");
  for (std::string s = env ? env : ""; !s.empty();) {
    const size_t comma = s.find(',');
    try {
      steps.push_back(std::stoll(s.substr(0, comma)));
    } catch (...) {
      throw Error("UNROLL_TEST_NAN_STEPS='" + std::string(env) +
                  "' is not a list of step numbers like 3,7");
    }
    s = comma == std::string::npos ? "" : s.substr(comma + 1);
  }
  return steps;
}

void set_command_line(int argc, char** argv) {
  std::string s = "unroll";
  for (int i = 1; i < argc; ++i) s += " " + shell_quote(argv[i]);
  g_command_line = s;
}

void add_commands(CLI::App& app) {
  app.set_version_flag("--version", std::string("unroll ") + UNROLL_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  add_train(app);
  add_sample(app);
  add_eval(app);
  add_info(app);
  add_cells(app);
  add_gradients(app);
  add_classify(app);
  add_tag(app);
  add_conditional(app);
  add_report(app);
  add_hello(app);
  add_bench(app);
}

// CLI11's message, in the user's terms where its own wording is internal.
std::string parse_error_text(const CLI::ParseError& e) {
  const std::string what = e.what();
  // "--out: At Most 1 required but received 2" (an option given twice)
  const std::string twice = ": At Most 1 required but received ";
  const size_t at = what.find(twice);
  if (at != std::string::npos)
    return what.substr(0, at) + " was given " + what.substr(at + twice.size()) +
           " times; give it once";
  return what;
}

}  // namespace unroll::cli

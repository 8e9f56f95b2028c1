// The unroll program's command line: the subcommands wired together, the
// option checks they share, and what every command does on the way out
// (main.cpp runs it).
#include <unistd.h>

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <regex>
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
// A number as people write it in decimal: digits, a point, an exponent. Not
// hex (0x10), nan or inf, which strtod would also take.
bool read_decimal(const std::string& in, double* v) {
  if (in.empty() || in.find_first_not_of("0123456789.eE+-") != std::string::npos ||
      in.find_first_of("0123456789") == std::string::npos)
    return false;
  char* end = nullptr;
  *v = std::strtod(in.c_str(), &end);  // beyond a double: ±HUGE_VAL or a tiny value
  return end == in.c_str() + in.size();
}

// Positive (or 0 with non-negative) numbers that fit a float, the type most
// such options have: every message names both ends of the range.
CLI::Validator number_check(const char* desc, bool strict) {
  return CLI::Validator(
      [strict](std::string& in) -> std::string {
        double v = 0;
        if (!read_decimal(in, &v)) return "'" + in + "' is not a number";
        const bool ok = (strict ? v >= FLT_TRUE_MIN : v == 0 || v >= FLT_TRUE_MIN) && v <= FLT_MAX;
        if (!ok)
          return std::string("must be ") + (strict ? "" : "0 or ") +
                 "a number from 1.4e-45 to 3.4e38 (got " + in + ")";
        return {};
      },
      desc);
}

// Every FLOAT option: a decimal number, never nan, inf or hex (a range check
// alone lets nan through: no comparison with it is true).
CLI::Validator decimal_check() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        double v = 0;
        if (!read_decimal(in, &v) || !std::isfinite(v)) return "'" + in + "' is not a number";
        return {};
      },
      "");
}

void check_float_options(CLI::App* app) {
  for (CLI::Option* o : app->get_options())
    if (o->get_type_name().rfind("FLOAT", 0) == 0) o->check(decimal_check());
  for (CLI::App* sub : app->get_subcommands({})) check_float_options(sub);
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
  check_float_options(&app);
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
  std::smatch m;
  // "--top-p: Value 0 not in range 0.000001 to 1.000000"
  static const std::regex range("^(\\S+): Value (.*) not in range (\\S+) to (\\S+)$");
  if (std::regex_match(what, m, range)) {
    auto g = [](const std::string& x) {
      char b[32];
      std::snprintf(b, sizeof b, "%g", std::strtod(x.c_str(), nullptr));
      return std::string(b);
    };
    return m[1].str() + ": '" + m[2].str() + "' is not one of the accepted values, " + g(m[3]) +
           " to " + g(m[4]);
  }
  // "Could not convert: --top-k = 1e3" (a whole number was expected)
  static const std::regex convert("^Could not convert: (\\S+) = (.*)$");
  if (std::regex_match(what, m, convert))
    return m[1].str() + ": '" + m[2].str() + "' is not a whole number in the accepted range";
  // "--resume: 1 required TEXT missing"
  static const std::regex missing("^(\\S+): [0-9]+ required \\S+ missing$");
  if (std::regex_match(what, m, missing)) return m[1].str() + " needs a value";
  return what;
}

}  // namespace unroll::cli

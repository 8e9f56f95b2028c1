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
#include <string>
#include <thread>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/gemm.h"
#include "unroll/core/interrupt.h"
#include "unroll/core/shell.h"
#include "unroll/text/utf8.h"
#include "unroll/train/trainer.h"

namespace unroll::cli {

void add_threads_option(CLI::App& sub, int& threads) {
  threads = int(std::max(1u, std::thread::hardware_concurrency()));
  sub.add_option("--threads", threads, "Threads for matrix products and element-wise loops")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
}

void apply_threads(int threads) { set_threads(threads); }

void add_snapshot_options(CLI::App& sub, std::string& spec, std::string& budget) {
  sub.add_option("--snapshot-every", spec,
                 "Keep the weights along the way in RUN/snapshots/ (step 0 always): N (every N "
                 "steps), NxF (at N, N*F, N*F^2, ...: 100x2, dense early) or a list (10,50,300); "
                 "default none")
      ->group("Reporting");
  sub.add_option("--snapshot-budget", budget,
                 "At most this much in RUN/snapshots/ (500M, 2G, 300k): past it the older "
                 "snapshots are thinned, never the first or the last; default no limit")
      ->group("Reporting");
}

bool read_decimal(const std::string& in, double* v) {
  if (in.empty() || in.find_first_not_of("0123456789.eE+-") != std::string::npos ||
      in.find_first_of("0123456789") == std::string::npos)
    return false;
  char* end = nullptr;
  *v = std::strtod(in.c_str(), &end);  // beyond a double: ±HUGE_VAL or a tiny value
  return end == in.c_str() + in.size();
}

namespace {

// Positive (or 0 with non-negative) numbers that fit a float, the type most
// such options have. A whole number below the bottom is told so plainly
// ("must be more than 0"); a decimal out of range gets both ends of the range.
CLI::Validator number_check(const char* desc, bool strict) {
  return CLI::Validator(
      [strict](std::string& in) -> std::string {
        double v = 0;
        if (!read_decimal(in, &v)) return "'" + in + "' is not a number";
        const bool whole = in.find_first_of(".eE") == std::string::npos;
        if (whole && (strict ? v <= 0 : v < 0))
          return std::string("must be ") + (strict ? "more than 0" : "0 or more") + " (got " + in +
                 ")";
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

// Every INT option: a whole number that a 64-bit integer holds (beyond it,
// the conversion would saturate silently: --steps 2^64 meant no limit).
CLI::Validator whole_check() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        const size_t digits = in.rfind('-', 0) == 0 ? 1 : 0;
        if (in.size() == digits || in.find_first_not_of("0123456789", digits) != std::string::npos)
          return "'" + in + "' is not a whole number";
        errno = 0;
        std::strtoll(in.c_str(), nullptr, 10);
        if (errno == ERANGE) return "'" + in + "' is too large";
        return {};
      },
      "");
}

void check_number_options(CLI::App* app) {
  for (CLI::Option* o : app->get_options()) {
    const std::string type = o->get_type_name();
    if (type.rfind("FLOAT", 0) == 0) o->check(decimal_check());
    if (type.rfind("INT", 0) == 0) o->check(whole_check());
  }
  for (CLI::App* sub : app->get_subcommands({})) check_number_options(sub);
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
            return "must be more than 0, such as 90s or 5m (leave --time out for no time limit; "
                   "got '" +
                   in + "')";
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

std::string for_stdout(const std::string& text) {
  static const bool terminal = ::isatty(STDOUT_FILENO);
  return terminal ? escape_controls(text) : text;
}

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
  add_import(app);
  add_export(app);
  add_hello(app);
  add_bench(app);
  check_number_options(&app);
}

// CLI11's message, in the user's terms where its own wording is internal.
std::string parse_error_text(const CLI::ParseError& e) {
  // Plain string operations, no std::regex: the message holds the user's
  // value, which may be 100,000 characters long (std::regex recursed per
  // character and crashed on such input).
  const std::string what = e.what();
  auto shown = [](const std::string& value) {  // a long value, shortened
    return value.size() <= 80
               ? value
               : value.substr(0, 40) + "... (" + std::to_string(value.size()) + " characters)";
  };
  auto starts = [&](const std::string& p) { return what.compare(0, p.size(), p) == 0; };
  // "--out: At Most 1 required but received 2" (an option given twice)
  const std::string twice = ": At Most 1 required but received ";
  if (const size_t at = what.find(twice); at != std::string::npos)
    return what.substr(0, at) + " was given " + what.substr(at + twice.size()) +
           " times; give it once";
  // "--top-p: Value 0 not in range 0.000001 to 1.000000"
  const size_t colon = what.find(": Value ");
  const size_t range = what.rfind(" not in range ");
  if (colon != std::string::npos && range != std::string::npos && range > colon) {
    const std::string ends = what.substr(range + 14);
    const size_t to = ends.find(" to ");
    if (to != std::string::npos) {
      auto g = [](const std::string& x) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", std::strtod(x.c_str(), nullptr));
        return std::string(b);
      };
      return what.substr(0, colon) + ": '" + shown(what.substr(colon + 8, range - colon - 8)) +
             "' is not one of the accepted values, " + g(ends.substr(0, to)) + " to " +
             g(ends.substr(to + 4));
    }
  }
  // "Could not convert: --top-k = 1e3" (a whole number was expected)
  const std::string convert = "Could not convert: ";
  if (starts(convert)) {
    const size_t eq = what.find(" = ", convert.size());
    if (eq != std::string::npos)
      return what.substr(convert.size(), eq - convert.size()) + ": '" + shown(what.substr(eq + 3)) +
             "' is not a whole number in the accepted range";
  }
  // "--resume: 1 required TEXT missing"
  const size_t required = what.find(" required ");
  if (what.size() > 8 && what.compare(what.size() - 8, 8, " missing") == 0 &&
      required != std::string::npos && what.find(": ") < required)
    return what.substr(0, what.find(": ")) + " needs a value";
  // Anything else ("--cell: VALUE not in {...}"): a very long value cut in the middle.
  if (what.size() > 300)
    return what.substr(0, 100) + "... (" + std::to_string(what.size()) + " characters) ..." +
           what.substr(what.size() - 150);
  return what;
}

}  // namespace unroll::cli

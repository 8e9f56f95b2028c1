// unroll — train, sample, evaluate and look inside recurrent networks.
#include <malloc.h>

#include <csignal>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <new>
#include <thread>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/gemm.h"
#include "unroll/core/interrupt.h"

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
          return std::string("must be ") + (strict ? "greater than 0" : "0 or more") + " (got " + in + ")";
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

namespace {
std::string g_command_line = "unroll";
}

const std::string& command_line() { return g_command_line; }

namespace {
int g_exit_code = 0;
Comm* g_comm = &single_process();
}
Comm& process_comm() { return *g_comm; }
void set_process_comm(Comm& c) { g_comm = &c; }
void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

int with_interrupts(const std::string& dir, const std::string& resume, bool quiet,
                    const std::function<int()>& train) {
  const std::string first = "unroll: stopping after this step and saving a checkpoint (Ctrl-C again to quit at once)\n";
  const std::string quit = "unroll: quitting at once; the checkpoints last written in '" + dir + "' are kept" +
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
      throw Error("UNROLL_TEST_NAN_STEPS='" + std::string(env) + "' is not a list of step numbers like 3,7");
    }
    s = comma == std::string::npos ? "" : s.substr(comma + 1);
  }
  return steps;
}

void set_command_line(int argc, char** argv) {
  std::string s = "unroll";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                          "0123456789-_=+./:,@%") == std::string::npos;
    if (!plain) {  // single-quoted for a POSIX shell
      std::string q = "'";
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      a = q + "'";
    }
    s += " " + a;
  }
  g_command_line = s;
}

}  // namespace unroll::cli

namespace {
// A failed command: one line on stderr. With several ranks the others may be
// waiting for this one in a collective, so the whole job ends at once.
int fail(unroll::Comm& comm, const std::string& what) {
  // An error every rank meets (a bad option, a missing file) is best told
  // once: rank 0's report and abort usually end the others before they speak.
  if (comm.rank() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::cerr << "unroll: error: " << (comm.rank() > 0 ? "rank " + std::to_string(comm.rank()) + ": " : "") << what
            << "\n" << std::flush;
  if (comm.size() > 1) comm.abort(1);
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  // Serve blocks of 256 KiB and more straight from mmap, so that memory freed
  // (by oneDNN's packing buffers, say) goes back to the system instead of
  // staying in the heap: 9 MiB less peak RSS for LSTM 3×512. (64 KiB would catch
  // the small per-step packing buffers too, and cost 10% speed: docs/performance.md.)
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // A write past the file-size limit (ulimit -f, or a quota) fails with EFBIG
  // and is reported like a full disk, instead of SIGXFSZ killing the process.
  ::signal(SIGXFSZ, SIG_IGN);
  unroll::cli::set_command_line(argc, argv);
  // Under mpirun: MPI, and only training spreads over the ranks.
  std::unique_ptr<unroll::Comm> mpi;
  try {
    mpi = unroll::make_mpi_comm(&argc, &argv);
  } catch (const unroll::Error& e) {
    std::cerr << "unroll: error: " << e.what() << "\n";
    return 1;
  }
  if (mpi) unroll::cli::set_process_comm(*mpi);
  unroll::Comm& comm = unroll::cli::process_comm();
  if (comm.size() > 1 && (argc < 2 || std::string(argv[1]) != "train")) {
    if (comm.root())
      std::cerr << "unroll: error: only 'unroll train' runs on several MPI ranks (this is rank 0 of "
                << comm.size() << "); run other commands without mpirun\n";
    return 2;
  }
  CLI::App app{"unroll: train, sample and look inside recurrent neural networks", "unroll"};
  app.set_version_flag("--version", std::string("unroll ") + UNROLL_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  unroll::cli::add_train(app);
  unroll::cli::add_sample(app);
  unroll::cli::add_eval(app);
  unroll::cli::add_info(app);
  unroll::cli::add_cells(app);
  unroll::cli::add_gradients(app);
  unroll::cli::add_classify(app);
  unroll::cli::add_tag(app);
  unroll::cli::add_conditional(app);
  unroll::cli::add_report(app);
  unroll::cli::add_hello(app);
  unroll::cli::add_bench(app);
  try {
    if (argc > 1 && argv[1][0] != '-') {
      bool known = false;
      std::string names;
      for (const CLI::App* sub : app.get_subcommands({})) {
        known = known || sub->get_name() == argv[1];
        names += (names.empty() ? "" : ", ") + sub->get_name();
      }
      if (!known) {
        std::cerr << "unroll: error: unknown command '" << argv[1] << "' (commands: " << names
                  << "; see 'unroll --help')\n";
        return 2;
      }
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = "unroll";
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {  // down to the innermost command
      sub = sub->get_subcommands().front();
      where += " " + sub->get_name();
    }
    if (comm.root())  // every rank parses the same command line: one message
      std::cerr << "unroll: error: " << e.what() << " (see '" << where << " --help')\n";
    return 2;
  } catch (const std::bad_alloc&) {
    return fail(comm, "out of memory: the model or the batch is too large for this machine (try a smaller "
                      "--hidden, --layers, --batch or --seq)");
  } catch (const std::exception& e) {  // unroll::Error and the rest
    return fail(comm, e.what());
  }
  return unroll::cli::exit_code();
}

// unroll — train, sample, evaluate and look inside recurrent networks. The
// commands are wired in app.cpp; here the process is set up and every
// failure becomes one line on stderr and an exit status.
#include <malloc.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <thread>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/inspect/page.h"
#include "unroll/train/metrics.h"

namespace {
// A failed command: one line on stderr. With several ranks the others may be
// waiting for this one in a collective, so the whole job ends at once.
int fail(unroll::Comm& comm, const std::string& what) {
  // An error every rank meets (a bad option, a missing file) is best told
  // once: rank 0's report and abort usually end the others before they speak.
  if (comm.rank() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::cerr << "unroll: error: "
            << (comm.rank() > 0 ? "rank " + std::to_string(comm.rank()) + ": " : "") << what << "\n"
            << std::flush;
  if (comm.size() > 1) comm.abort(1);
  return 1;
}

// Help and version text, then the exit status: 1 if it could not be written.
int printed(int rc) {
  try {
    unroll::cli::check_stdout();
  } catch (const std::exception& e) {
    std::cerr << "unroll: error: " << e.what() << "\n";
    return 1;
  }
  return rc;
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
  // Training draws its run's report page (inspect/) through a hook: train/ sits below inspect/.
  unroll::set_run_report_writer(unroll::write_run_report_page);
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
  // Training commands: train, classify train, tag train, conditional.
  auto trains = [&]() {
    if (argc < 2) return false;
    const std::string c = argv[1], sub = argc > 2 ? argv[2] : "";
    return c == "train" || c == "conditional" ||
           ((c == "classify" || c == "tag") && sub == "train");
  };
  if (comm.size() > 1 && !trains()) {
    if (comm.root())
      std::cerr << "unroll: error: only training (unroll train, classify train, tag train, "
                   "conditional) runs on several MPI ranks (this is rank 0 of "
                << comm.size() << "); run other commands without mpirun\n";
    return 2;
  }
  CLI::App app{"unroll: train, sample and look inside recurrent neural networks", "unroll"};
  unroll::cli::add_commands(app);
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
    unroll::cli::check_stdout();  // output that never arrived is a failure
  } catch (const CLI::CallForHelp& e) {
    return printed(app.exit(e));
  } catch (const CLI::CallForAllHelp& e) {
    return printed(app.exit(e));
  } catch (const CLI::CallForVersion& e) {
    return printed(app.exit(e));
  } catch (const CLI::ParseError& e) {
    std::string where = "unroll";
    for (const CLI::App* sub = &app;
         !sub->get_subcommands().empty();) {  // down to the innermost command
      sub = sub->get_subcommands().front();
      where += " " + sub->get_name();
    }
    if (comm.root())  // every rank parses the same command line: one message
      std::cerr << "unroll: error: " << unroll::cli::parse_error_text(e) << " (see '" << where
                << " --help')\n";
    return 2;
  } catch (const std::bad_alloc&) {
    return fail(
        comm,
        "out of memory: the model or the batch is too large for this machine (try a smaller "
        "--hidden, --layers, --batch or --seq)");
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the filesystem refuses (a symbolic-link loop, a permission),
    // without the library's "filesystem error: status:" wording.
    return fail(comm, "cannot use '" + e.path1().string() + "': " + e.code().message());
  } catch (const std::exception& e) {  // unroll::Error and the rest
    return fail(comm, e.what());
  }
  return unroll::cli::exit_code();
}

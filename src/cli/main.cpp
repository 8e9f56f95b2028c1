// unroll — train, sample, evaluate and look inside recurrent networks.
#include <iostream>
#include <thread>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/gemm.h"

namespace unroll::cli {

void add_threads_option(CLI::App& sub, int& threads) {
  threads = int(std::max(1u, std::thread::hardware_concurrency()));
  sub.add_option("--threads", threads, "Threads for matrix products and element-wise loops")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
}

void apply_threads(int threads) { set_threads(threads); }

}  // namespace unroll::cli

int main(int argc, char** argv) {
  CLI::App app{"unroll: train, sample and look inside recurrent neural networks", "unroll"};
  app.set_version_flag("--version", std::string("unroll ") + UNROLL_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  unroll::cli::add_train(app);
  unroll::cli::add_sample(app);
  unroll::cli::add_eval(app);
  unroll::cli::add_info(app);
  unroll::cli::add_hello(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "unroll: error: " << e.what() << " (see 'unroll --help')\n";
    return 2;
  } catch (const unroll::Error& e) {
    std::cerr << "unroll: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "unroll: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

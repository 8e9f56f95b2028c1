// The unroll subcommands: each registers its options on a CLI11 subcommand
// and runs through the library. main.cpp wires them together.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <utility>

#include "unroll/core/comm.h"
#include "unroll/model/config.h"

namespace unroll::cli {

// Every subcommand, the version flag and the rules above them (app.cpp).
void add_commands(CLI::App& app);

// A parse error in the user's terms where CLI11's own wording is internal
// ("--out was given 2 times; give it once").
std::string parse_error_text(const CLI::ParseError& e);

void add_train(CLI::App& app);
void add_sample(CLI::App& app);
void add_eval(CLI::App& app);
void add_info(CLI::App& app);
void add_hello(CLI::App& app);
void add_bench(CLI::App& app);
void add_cells(CLI::App& app);
void add_gradients(CLI::App& app);
void add_classify(CLI::App& app);
void add_tag(CLI::App& app);
void add_conditional(CLI::App& app);
void add_report(CLI::App& app);
void add_import(CLI::App& app);
void add_export(CLI::App& app);

// Validators with short messages that name the accepted values.
CLI::Validator positive();        // > 0
CLI::Validator non_negative();    // >= 0
CLI::Validator seed_check();      // a whole number in [0, 2^64)
CLI::Validator duration_check();  // 90s, 5m, 1h30m (parse_duration), more than 0

// A number as people write it in decimal: digits, a point, an exponent, a
// sign; not hex (0x10), nan, inf or spaces, all of which strtod would take.
// False if `in` is not one; *v may then be ±HUGE_VAL or 0 when it is beyond
// a double.
bool read_decimal(const std::string& in, double* v);

// Values that options spell (each throws Error with the accepted form):
// --split TRAIN[,VAL[,TEST]] → (train, val): one value leaves the rest to
// validation, two the rest to test, three must add up to 1;
std::pair<double, double> parse_split(const std::string& text);
// --fresh CELL:LAYERS:HIDDEN[:SCALE] ("lstm:2:256:0.5") → the model, and the
// scale of its orthogonal W_hh in (0, 1000] in *scale.
ModelConfig parse_fresh(const std::string& spec, int vocab, double* scale);

// The command line as typed, quoted for a shell: pages and JSON record it so
// that the numbers can be reproduced.
const std::string& command_line();
void set_command_line(int argc, char** argv);

// --snapshot-every SPEC and --snapshot-budget SIZE on a training subcommand (train/snapshots.h).
void add_snapshot_options(CLI::App& sub, std::string& spec, std::string& budget);

// --threads N on a subcommand; applied before it runs.
void add_threads_option(CLI::App& sub, int& threads);
void apply_threads(int threads);

// The processes of this run: MPI's under mpirun (only `train` uses them),
// else the single process.
Comm& process_comm();
void set_process_comm(Comm& c);

// The process's exit status when a command returns normally (0 unless set),
// e.g. 130 after training stopped for Ctrl-C and saved its checkpoint.
void set_exit_code(int code);
int exit_code();

// Flushes standard output and throws Error ("cannot write to standard
// output: No space left on device") if any write to it failed: main calls it
// after every command, and long outputs (sample) as they go, so that output
// lost to a full disk or a closed pipe is never an exit status of 0.
void check_stdout();

// Text for standard output: on a terminal with its control characters shown,
// not obeyed (escape_controls: ESC, BEL, bidirectional overrides); into a
// file or a pipe as it is.
std::string for_stdout(const std::string& text);

// Runs a training under Ctrl-C and SIGTERM handling (core/interrupt.h): the
// first signal stops it after the step and saves, a second quits at once
// (with a message naming the run folder `dir`; `resume` is the command that
// continues it, if any). `train` returns the signal that stopped it, or 0;
// the exit status is then 128 + that signal. `quiet`: print nothing (MPI
// ranks other than 0).
int with_interrupts(const std::string& dir, const std::string& resume, bool quiet,
                    const std::function<int()>& train);

// Fault injection for the tests: UNROLL_TEST_NAN_STEPS="3,7" makes those
// training steps' arithmetic non-finite (see Trainer::poison_steps).
std::vector<int64_t> test_nan_steps();

}  // namespace unroll::cli

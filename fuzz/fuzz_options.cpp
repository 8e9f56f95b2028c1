// libFuzzer target: what a user types. The input is split at NUL bytes into
// command-line arguments and parsed by the real `unroll` command line (every
// command and option: ranges, sets, the number, seed and duration checks,
// options that exclude each other), stopped before any command runs; the
// outcome must be a completed parse or a CLI11 parse error with a message. The value parsers that
// run inside the commands (--split,
// --fresh, --time) and the user's regular expressions (cells --probe, RE2)
// are fed the arguments too: they may only throw unroll::Error, and a regex
// probe must finish and mark characters of the text.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "commands.h"
#include "fuzz_util.h"
#include "unroll/core/error.h"
#include "unroll/core/shell.h"
#include "unroll/inspect/probes.h"
#include "unroll/text/utf8.h"
#include "unroll/train/trainer.h"

namespace {

// Thrown once parsing and every check are done, before any command runs:
// CLI11 calls the main app's parse-complete callback ahead of the commands'.
struct Parsed {};

// What a POSIX shell makes of a word shell_quote wrote: the word back.
std::string unquote(const std::string& q) {
  std::string out;
  bool in = false;
  for (size_t i = 0; i < q.size(); ++i) {
    if (q[i] == '\'')
      in = !in;
    else if (!in && q[i] == '\\' && i + 1 < q.size())
      out += q[++i];  // outside quotes, \' is a quote
    else
      out += q[i];
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args;
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0)
      args.push_back(cur), cur.clear();
    else
      cur += char(data[i]);
  }
  args.push_back(cur);
  if (args.size() > 64) return 0;

  // The options, as main() parses them.
  {
    CLI::App app{"unroll", "unroll"};
    unroll::cli::add_commands(app);
    app.parse_complete_callback([] { throw Parsed(); });
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
    try {
      app.parse(reversed);
      __builtin_trap();  // a command would have run
    } catch (const Parsed&) {
    } catch (const CLI::ParseError& e) {
      if (unroll::cli::parse_error_text(e).empty() && e.get_exit_code() != 0) __builtin_trap();
    }
  }

  for (const std::string& a : args) {
    fuzz::returns_or_errs([&] {
      const double s = unroll::parse_duration(a);
      if (!(s >= 0) || !std::isfinite(s)) __builtin_trap();
    });
    fuzz::returns_or_errs([&] {
      const auto [train, val] = unroll::cli::parse_split(a);
      if (!(train >= 0 && train <= 1 && val >= 0 && val <= 1)) __builtin_trap();
    });
    fuzz::returns_or_errs([&] {
      double scale = 0;
      const unroll::ModelConfig c = unroll::cli::parse_fresh(a, 10, &scale);
      if (!(scale > 0 && scale <= 1000) || c.layers < 1 || c.hidden < 1) __builtin_trap();
    });
    if (unquote(unroll::shell_quote(a)) != a) __builtin_trap();
  }

  // A regex probe: the first argument the pattern, the second the text.
  if (args.size() >= 2 && args[0].size() <= 256 && args[1].size() <= 4096) {
    fuzz::returns_or_errs([&] {
      const std::u32string text = unroll::decode_utf8(args[1], "text");
      const unroll::Probe p = unroll::regex_probe("p", args[0], text);
      if (p.values.size() != text.size()) __builtin_trap();
      for (float v : p.values)
        if (v != 0.0f && v != 1.0f) __builtin_trap();
    });
  }
  return 0;
}

// End-to-end tests of the `unroll` command-line program: every test runs the
// real binary (UNROLL_BIN) as a child process in a fresh temporary folder, with
// stdout and stderr captured separately, and checks exit codes, output and the
// files left behind. Models are tiny so the whole file runs in seconds.
#include <gtest/gtest.h>

#include <functional>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/snapshots.h"

using namespace clitest;

namespace {

// ===========================================================================
// 1-2. hello, --version, --help

TEST_F(CliTest, HelloLearnsToSayHello) {
  Proc r = unroll({"hello"});
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_FALSE(r.out.empty()) << describe(r);
  std::string out = r.out;
  if (out.back() == '\n') out.pop_back();
  const std::string last = out.substr(out.rfind('\n') + 1);
  EXPECT_EQ(last, "hello") << describe(r);
}

TEST_F(CliTest, VersionPrintsAVersion) {
  Proc r = unroll({"--version"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("unroll [0-9]+\\.[0-9]+\\.[0-9]+")))
      << describe(r);
  EXPECT_EQ(split_lines(r.out).size(), 1u) << describe(r);
}

TEST_F(CliTest, TrainHelpListsOptionsWithDefaults) {
  Proc r = unroll({"train", "--help"});
  ASSERT_EQ(r.code, 0) << describe(r);
  // Each option's first help line shows "=default".
  const std::map<std::string, std::string> defaults = {
      {"--hidden", "128"}, {"--layers", "2"}, {"--batch", "50"},   {"--seq", "50"},
      {"--cell", "lstm"},  {"--lr", "0.002"}, {"--optim", "adam"}, {"--eval-every", "500"}};
  const auto lines = split_lines(r.out);
  for (auto& [opt, def] : defaults) {
    bool found = false;
    for (auto& l : lines) {
      // "  --hidden INT:INT in [1 - 65536]=128" or "  -o,--out TEXT=run"
      if (std::regex_search(l, std::regex("^\\s*(-[a-z],)?" + opt + " "))) {
        found = true;
        EXPECT_TRUE(contains(l, "=" + def)) << opt << " should show default " << def << ": " << l;
      }
    }
    EXPECT_TRUE(found) << opt << " is not listed\n" << describe(r);
  }
}

TEST_F(CliTest, EverySubcommandHasHelp) {
  const std::map<std::string, std::vector<std::string>> opts = {
      {"sample",
       {"--prime", "--temperature", "--top-k", "--top-p", "--greedy", "--beam", "--seed"}},
      {"eval", {"files", "--batch", "--seq"}},
      {"info", {"--json"}},
      {"hello", {"--hidden", "--steps"}}};
  for (auto& [cmd, names] : opts) {
    Proc r = unroll({cmd, "--help"});
    ASSERT_EQ(r.code, 0) << describe(r);
    for (auto& n : names) EXPECT_TRUE(contains(r.out, n)) << cmd << " --help lacks " << n;
  }
}

// Every command (and every command of a command group) answers --help with
// exit 0, and every option it lists comes with a one-line explanation.
// Every command and sub-command that `unroll --help` lists, walked through
// their own --help: {"train"}, {"classify", "eval"}, ...
std::vector<std::vector<std::string>> every_command(
    const std::function<Proc(std::vector<std::string>)>& run) {
  auto section = [](const std::string& help, const std::string& title) {
    std::vector<std::string> out;
    bool in = false;
    for (auto& l : split_lines(help)) {
      if (l == title + ":")
        in = true;
      else if (in && (l.empty() || l[0] != ' '))
        in = false;
      else if (in)
        out.push_back(l);
    }
    return out;
  };
  auto names_of = [](const std::vector<std::string>& lines) {
    std::vector<std::string> names;
    for (auto& l : lines)
      if (l.size() > 2 && l[2] != ' ') names.push_back(l.substr(2, l.find(' ', 2) - 2));
    return names;
  };
  Proc top = run({"--help"});
  EXPECT_EQ(top.code, 0) << describe(top);
  std::vector<std::vector<std::string>> commands;
  for (auto& c : names_of(section(top.out, "Subcommands"))) {
    Proc r = run({c, "--help"});
    EXPECT_EQ(r.code, 0) << c << "\n" << describe(r);
    auto subs = names_of(section(r.out, "Subcommands"));
    if (subs.empty()) commands.push_back({c});
    for (auto& sub : subs) commands.push_back({c, sub});
  }
  return commands;
}

TEST_F(CliTest, EveryCommandsHelpExplainsEveryOption) {
  const auto commands = every_command([&](std::vector<std::string> a) { return unroll(a); });
  EXPECT_GE(commands.size(), 16u);  // 10 commands, and train/eval/predict of classify and tag
  for (auto& cmd : commands) {
    Proc r = unroll(cat(cmd, {"--help"}));
    const std::string what = cmd[0] + (cmd.size() > 1 ? " " + cmd[1] : "");
    ASSERT_EQ(r.code, 0) << what << "\n" << describe(r);
    // An option line: "  --name TYPE=default   Explanation", the explanation on
    // the same line or on the next, deeper one.
    const auto lines = split_lines(r.out);
    int options = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      if (l.rfind("  -", 0) != 0) continue;
      ++options;
      // What is left of the line without the option's names, its type
      // ("INT:INT in [1 - 64]", "TEXT:{a,b}"), its default ("=adam") and its
      // exclusions ("Excludes: --x") must hold words; or the next, deeper line does.
      std::string rest = std::regex_replace(l, std::regex("^\\s*(-\\w,)?--[a-z0-9-]+"), "");
      for (const char* pat : {"\\{[^}]*\\}", "\\[[^\\]]*\\]", "=\\S+", "--[a-z0-9-]+",
                              "\\b[A-Z]+\\b", "Excludes:", "Needs:"})
        rest = std::regex_replace(rest, std::regex(pat), "");
      const std::regex words("[a-z]{3,}");
      const bool same_line = std::regex_search(rest, words);
      const bool next_line = i + 1 < lines.size() && lines[i + 1].rfind("        ", 0) == 0 &&
                             std::regex_search(lines[i + 1], words);
      EXPECT_TRUE(same_line || next_line) << what << ": no explanation for " << l;
      // An option that takes a value shows its default ("=50"), is required,
      // or says in words what happens without it ("default: ...", when it is
      // required, or "Also" for an optional extra output).
      const bool takes_value =
          std::regex_search(l, std::regex("^\\s*(-\\w,)?--[a-z0-9-]+ (TEXT|INT|UINT|FLOAT)"));
      if (takes_value && l.find('=') == std::string::npos &&
          l.find("REQUIRED") == std::string::npos) {
        const std::string text = l + (next_line ? " " + lines[i + 1] : "");
        EXPECT_TRUE(std::regex_search(text, std::regex("default|required|\\s{2}Also ")))
            << what << ": says nothing of its default: " << l;
      }
    }
    EXPECT_GE(options, 1) << what;
  }
}

// Every option with a range or a set of values in its help refuses a value
// outside it, before any work, with one line that names the option and what it
// accepts.
TEST_F(CliTest, EveryBoundedOptionRefusesValuesOutsideItsRange) {
  const std::regex range(
      "^\\s*(?:-\\w,)?(--[a-z0-9-]+) (INT|UINT|FLOAT):\\w+ in \\[(\\S+) - (\\S+)\\]");
  const std::regex set("^\\s*(?:-\\w,)?(--[a-z0-9-]+) TEXT:\\{([^}]*)\\}");
  const std::regex sign("^\\s*(?:-\\w,)?(--[a-z0-9-]+) (?:INT|FLOAT):(POSITIVE|NONNEGATIVE)");
  int tried = 0;
  for (auto& cmd : every_command([&](std::vector<std::string> a) { return unroll(a); })) {
    Proc help = unroll(cat(cmd, {"--help"}));
    for (auto& l : split_lines(help.out)) {
      std::smatch m;
      std::string opt, bad;
      std::vector<std::string> needles;
      if (std::regex_search(l, m, range)) {
        opt = m[1];
        const double lo = std::stod(m[3]), hi = std::stod(m[4]);
        // Above the top, or below the bottom when the top is out of reach.
        const double v = hi < 1e9 ? (m[2] == "FLOAT" ? hi * 2 + 1 : hi + 1) : lo - 1;
        std::ostringstream o;
        o << std::setprecision(12) << v;
        bad = o.str();
        auto g = [](double x) {  // as the message prints the ends
          char b[32];
          std::snprintf(b, sizeof b, "%g", x);
          return std::string(b);
        };
        needles = {"accepted values, " + g(lo) + " to " + g(hi)};
      } else if (std::regex_search(l, m, set)) {
        opt = m[1], bad = "bogus";
        std::stringstream members(m[2].str());
        for (std::string x; std::getline(members, x, ',');) needles.push_back(x);
      } else if (std::regex_search(l, m, sign)) {
        opt = m[1], bad = m[2] == "POSITIVE" ? "0" : "-1";
        needles = {m[2] == "POSITIVE" ? "must be more than 0 (got 0)"
                                      : "must be 0 or more (got -1)"};
      } else {
        continue;
      }
      ++tried;
      const std::string what =
          cmd[0] + (cmd.size() > 1 ? " " + cmd[1] : "") + " " + opt + " " + bad;
      Proc r = unroll(cat(cmd, {opt, bad}));
      EXPECT_EQ(r.code, 2) << what << "\n" << describe(r);
      EXPECT_EQ(split_lines(r.err).size(), 1u) << what << "\n" << describe(r);
      EXPECT_EQ(r.err.rfind("unroll: error: " + opt, 0), 0u) << what << "\n" << describe(r);
      for (auto& n : needles)
        EXPECT_TRUE(contains(r.err, n)) << what << ": no '" << n << "'\n" << describe(r);
    }
  }
  EXPECT_GE(tried, 80) << "fewer bounded options than expected: did the help format change?";
}

TEST_F(CliTest, NoSubcommandIsAnError) {
  Proc r = unroll({});
  expect_clean_error(r, {"subcommand"});
}

// `unroll bogus` should say that 'bogus' is not a subcommand.
TEST_F(CliTest, UnknownSubcommandIsNamed) {
  Proc r = unroll({"trian", "x.txt"});
  expect_clean_error(r, {"trian"});
}

// ===========================================================================
// 3. Train, info, eval and sample on English-like text

TEST_F(CliTest, TrainWritesLatestAndBestCheckpoints) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "run";
  Proc r = unroll(cat({"train", text, "--out", out.string()}, kTiny));
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::is_regular_file(out / "latest.safetensors")) << listing(out);
  EXPECT_TRUE(fs::is_regular_file(out / "best.safetensors")) << listing(out);
  // Nothing else is left behind (no temporary files from atomic saves).
  for (auto& e : fs::directory_iterator(out)) {
    const std::string n = e.path().filename().string();
    EXPECT_TRUE(n == "latest.safetensors" || n == "best.safetensors" || n == "metrics.jsonl" ||
                n == "config.json" || n == "report.html" ||
                n == ".lock")  // .lock: the run folder's one-writer lock (core/file.h)
        << "stray file " << n;
  }
  // Each eval line ends with the epoch it was reached in, which grows with the step.
  double last_epoch = 0;
  for (int step : {10, 20, 30}) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(
        r.out, m,
        std::regex("eval step " + std::to_string(step) +
                   ": val loss [0-9.]+ nats[^\n]*, epoch ([0-9.]+)( \\(best\\))?\n")))
        << "no eval line for step " << step << "\n"
        << describe(r);
    const double epoch = std::stod(m[1]);
    EXPECT_GT(epoch, last_epoch) << describe(r);
    last_epoch = epoch;
  }
  EXPECT_TRUE(r.err.empty()) << describe(r);
}

// --snapshot-every (issue 21): the weights at step 0 and on the schedule, without optimizer
// moments, named so that they sort by step; a resume keeps the schedule; a bad schedule is
// one line that shows the forms.
TEST_F(CliTest, TrainKeepsSnapshotsOnTheSchedule) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "run";
  std::vector<std::string> args = cat({"train", text, "--out", out.string()}, kTiny);
  args.insert(args.end(), {"--snapshot-every", "5x2"});
  std::replace(args.begin(), args.end(), std::string("30"), std::string("12"));  // --steps 12
  Proc r = unroll(args);
  ASSERT_EQ(r.code, 0) << describe(r);
  auto steps_kept = [&]() {
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(out / "snapshots"))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  EXPECT_EQ(steps_kept(),
            (std::vector<std::string>{"step-000000000.safetensors", "step-000000005.safetensors",
                                      "step-000000010.safetensors", "step-000000012.safetensors"}))
      << "on the schedule, and the last step";
  const unroll::Checkpoint first =
      unroll::load_checkpoint((out / "snapshots" / "step-000000000.safetensors").string());
  const unroll::Checkpoint last =
      unroll::load_checkpoint((out / "snapshots" / "step-000000010.safetensors").string());
  EXPECT_EQ(first.progress["step"], 0);
  EXPECT_EQ(last.progress["step"], 10);
  EXPECT_EQ(last.progress["snapshot"], true);
  EXPECT_TRUE(last.opt_m.empty() && last.opt_v.empty()) << "a snapshot holds no optimizer moments";
  EXPECT_FALSE(std::equal(first.model->params.begin(), first.model->params.end(),
                          last.model->params.begin()))
      << "step 0 is the initialisation, step 10 after ten updates";
  // info says what a snapshot is; a run's checkpoint does not.
  Proc info = unroll({"info", (out / "snapshots" / "step-000000010.safetensors").string()});
  ASSERT_EQ(info.code, 0) << describe(info);
  EXPECT_TRUE(contains(info.out, "snapshot    the weights only")) << info.out;
  info = unroll({"info", (out / "latest.safetensors").string()});
  EXPECT_FALSE(contains(info.out, "snapshot")) << info.out;
  // The resume goes on with the stored schedule: 20 is the next step on it, then the last, 25.
  r = unroll({"train", "--resume", out.string(), "--steps", "25", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(steps_kept().size(), 6u);
  EXPECT_TRUE(fs::exists(out / "snapshots" / "step-000000020.safetensors"));
  EXPECT_TRUE(fs::exists(out / "snapshots" / "step-000000025.safetensors"));
  for (const char* bad : {"0", "5x1", "x2", "10,abc", "ten"})
    expect_clean_error(
        unroll(
            cat({"train", text, "--out", (dir_ / "bad").string(), "--snapshot-every", bad}, kTiny)),
        {"--snapshot-every", "100x2"}, dir_ / "bad");
}

// --snapshot-budget: past it the older snapshots are thinned, the first and
// the last stay; a resume keeps the budget and clears a killed write's temporary file.
TEST_F(CliTest, SnapshotBudgetThinsAndAResumeKeepsIt) {
  const std::string text = file("en.txt", english_text(300));
  auto steps_in = [&](const fs::path& run) {
    std::vector<int64_t> steps;
    for (const unroll::SnapshotFile& f : unroll::list_snapshots(run.string()))
      steps.push_back(f.step);
    return steps;
  };
  auto train = [&](const fs::path& out, std::vector<std::string> extra) {
    std::vector<std::string> args = cat({"train", text, "--out", out.string()}, kTiny);
    std::replace(args.begin(), args.end(), std::string("30"), std::string("12"));  // --steps 12
    args.insert(args.end(), extra.begin(), extra.end());
    return unroll(args);
  };
  Proc r = train(dir_ / "all", {"--snapshot-every", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_EQ(steps_in(dir_ / "all").size(), 13u);
  const auto size = fs::file_size(unroll::snapshot_path((dir_ / "all").string(), 12));
  // Room for four and a half: four stay, 0 and 12 among them.
  const fs::path out = dir_ / "run";
  r = train(out, {"--snapshot-every", "1", "--snapshot-budget", std::to_string(size * 9 / 2)});
  ASSERT_EQ(r.code, 0) << describe(r);
  std::vector<int64_t> kept = steps_in(out);
  ASSERT_EQ(kept.size(), 4u) << describe(r);
  EXPECT_EQ(kept.front(), 0);
  EXPECT_EQ(kept.back(), 12);
  EXPECT_TRUE(contains(r.out + r.err, "over --snapshot-budget")) << describe(r);
  // A killed write left a temporary file; the resume removes it and keeps the budget.
  const fs::path stale = out / "snapshots" / "step-000000013.safetensors.tmp.999999999";
  std::ofstream(stale) << "partial";
  r = unroll({"train", "--resume", out.string(), "--steps", "20", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(stale));
  kept = steps_in(out);
  EXPECT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept.front(), 0);
  EXPECT_EQ(kept.back(), 20);
  // A resume may set a smaller budget (the disk filled up): here one of room for one and a
  // half, so the first and the last stay and the log says the budget is too small for them.
  r = unroll({"train", "--resume", out.string(), "--steps", "22", "--threads", "1",
              "--snapshot-budget", std::to_string(size * 3 / 2)});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(steps_in(out), (std::vector<int64_t>{0, 22}));
  EXPECT_TRUE(contains(r.out + r.err, "smaller than the snapshots that always stay"))
      << describe(r);
  // A new run into a folder that holds another run's snapshots (killed before its first
  // checkpoint) is refused: they would pass for this run's.
  fs::create_directories(dir_ / "killed" / "snapshots");
  fs::copy_file(unroll::snapshot_path(out.string(), 0),
                unroll::snapshot_path((dir_ / "killed").string(), 0));
  expect_clean_error(train(dir_ / "killed", {"--snapshot-every", "1"}),
                     {"snapshots of an earlier run", "remove that folder"});
  expect_clean_error(train(dir_ / "bad", {"--snapshot-every", "1", "--snapshot-budget", "5MB"}),
                     {"--snapshot-budget", "500M"}, dir_ / "bad");
  expect_clean_error(train(dir_ / "bad", {"--snapshot-budget", "5M"}),
                     {"--snapshot-budget", "--snapshot-every"}, dir_ / "bad");
}

TEST_F(CliTest, InfoDescribesTheCheckpoint) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  const std::string ck = (dir_ / "run" / "latest.safetensors").string();

  Proc r = unroll({"info", ck});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "lstm")) << describe(r);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("vocabulary\\s+([0-9]+)"))) << describe(r);
  const size_t V = std::stoul(m[1]);
  // The text's distinct characters: the vocabulary must hold exactly them.
  {
    std::vector<char32_t> cps;
    ASSERT_TRUE(decode_utf8(read_file(text), &cps));
    std::sort(cps.begin(), cps.end());
    cps.erase(std::unique(cps.begin(), cps.end()), cps.end());
    EXPECT_EQ(V, cps.size()) << describe(r);
  }
  const size_t expected = lstm1_param_count(V, 16);
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("parameters\\s+([0-9]+)"))) << describe(r);
  EXPECT_EQ(std::stoul(m[1]), expected) << describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("step\\s+30\\b"))) << describe(r);
  // Epochs as a fraction, as the training log counts them: 30 steps of one chunk each.
  ASSERT_TRUE(std::regex_search(last_train_.out, m, std::regex("([0-9]+) chunks per epoch")))
      << describe(last_train_);
  const double per_epoch = std::stod(m[1]);
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\\(epoch ([0-9.]+)\\)"))) << describe(r);
  EXPECT_NEAR(std::stod(m[1]), 30.0 / per_epoch, 0.006) << describe(r);

  Proc j = unroll({"info", "--json", ck});
  ASSERT_EQ(j.code, 0) << describe(j);
  ASSERT_TRUE(std::regex_search(j.out, m, std::regex("\"parameters\"\\s*:\\s*([0-9]+)")))
      << describe(j);
  EXPECT_EQ(std::stoul(m[1]), expected) << describe(j);
  EXPECT_TRUE(contains(j.out, "\"lstm\"")) << describe(j);
  EXPECT_EQ(j.out.find_first_not_of(" \n"), j.out.find('{')) << "not a JSON object\n"
                                                             << describe(j);
}

// `unroll train` announces "(N parameters)"; it should be the same count that
// `unroll info` reports.
TEST_F(CliTest, TrainAndInfoAgreeOnParameterCount) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  std::smatch m;
  const std::string train_out = last_train_.out;
  ASSERT_TRUE(std::regex_search(train_out, m, std::regex("\\(([0-9]+) parameters\\)")))
      << describe(last_train_);
  const size_t announced = std::stoul(m[1]);
  Proc r = unroll({"info", (dir_ / "run" / "latest.safetensors").string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("parameters\\s+([0-9]+)"))) << describe(r);
  EXPECT_EQ(announced, std::stoul(m[1]))
      << "train says " << announced << " parameters, info says " << m[1] << "\n"
      << describe(last_train_) << "\n"
      << describe(r);
}

TEST_F(CliTest, EvalPrintsLossBitsAndPerplexityConsistently) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  const std::string held_out = file("held.txt", english_text(60, 99));
  Proc r =
      unroll({"eval", (dir_ / "run" / "best.safetensors").string(), held_out, "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  double loss = 0, bits = 0, ppl = 0, tokens = 0;
  ASSERT_TRUE(eval_value(r.out, "loss", &loss)) << describe(r);
  ASSERT_TRUE(eval_value(r.out, "bits/char", &bits)) << describe(r);
  ASSERT_TRUE(eval_value(r.out, "perplexity", &ppl)) << describe(r);
  ASSERT_TRUE(eval_value(r.out, "tokens", &tokens)) << describe(r);
  ASSERT_TRUE(std::isfinite(loss) && loss > 0) << describe(r);
  EXPECT_NEAR(ppl, std::exp(loss), std::exp(loss) * 2e-4 + 1e-3) << describe(r);
  EXPECT_NEAR(bits, loss / std::log(2.0), 3e-4) << describe(r);
  EXPECT_GT(tokens, 0) << describe(r);
  EXPECT_LE(tokens, double(count_code_points(read_file(held_out)))) << describe(r);
  // 30 steps of training must beat (or at least not be far from) a uniform guess.
  Proc info = unroll({"info", (dir_ / "run" / "best.safetensors").string()});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(info.out, m, std::regex("vocabulary\\s+([0-9]+)")))
      << describe(info);
  EXPECT_LT(loss, std::log(std::stod(m[1]))) << describe(r);
}

TEST_F(CliTest, SampleStartsWithPrimeAndIsReproducibleWithASeed) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  const std::string ck = (dir_ / "run" / "latest.safetensors").string();
  const std::string prime = "The quick brown";
  auto sample = [&](const std::string& seed) {
    return unroll({"sample", ck, "--prime", prime, "-n", "50", "--seed", seed, "--threads", "1"});
  };
  Proc a = sample("3");
  ASSERT_EQ(a.code, 0) << describe(a);
  EXPECT_EQ(a.out.rfind(prime, 0), 0u) << "does not start with the prime\n" << describe(a);
  size_t bad = 0;
  EXPECT_TRUE(decode_utf8(a.out, nullptr, &bad)) << "invalid UTF-8 at " << bad << "\n"
                                                 << describe(a);
  std::string gen = a.out.substr(std::min(prime.size(), a.out.size()));
  if (!gen.empty() && gen.back() == '\n') gen.pop_back();
  EXPECT_EQ(count_code_points(gen), 50u) << "-n 50 should generate 50 characters\n" << describe(a);

  Proc b = sample("3");
  ASSERT_EQ(b.code, 0) << describe(b);
  EXPECT_EQ(a.out, b.out) << "same seed, different text";

  Proc c = sample("4");
  ASSERT_EQ(c.code, 0) << describe(c);
  EXPECT_NE(a.out, c.out) << "seeds 3 and 4 gave the same 50 characters: is --seed used?";
}

TEST_F(CliTest, EverySamplingModeProducesText) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  const std::string ck = (dir_ / "run" / "latest.safetensors").string();
  const std::string prime = "The cat";
  const std::vector<std::vector<std::string>> modes = {
      {"--greedy"},    {"--top-k", "3"},         {"--top-p", "0.9"},
      {"--beam", "3"}, {"--temperature", "0.5"}, {"--top-k", "1"}};
  std::map<std::string, std::string> outs;
  for (auto& mode : modes) {
    Proc r = unroll(
        cat({"sample", ck, "--prime", prime, "-n", "50", "--seed", "3", "--threads", "1"}, mode));
    ASSERT_EQ(r.code, 0) << describe(r);
    EXPECT_EQ(r.out.rfind(prime, 0), 0u) << describe(r);
    EXPECT_TRUE(decode_utf8(r.out)) << describe(r);
    std::string gen = r.out.substr(std::min(prime.size(), r.out.size()));
    if (!gen.empty() && gen.back() == '\n') gen.pop_back();
    EXPECT_EQ(count_code_points(gen), 50u) << describe(r);
    outs[mode[0] + (mode.size() > 1 ? " " + mode[1] : "")] = r.out;
  }
  // Greedy decoding ignores the seed, and top-k 1 is greedy.
  Proc g2 = unroll(
      {"sample", ck, "--prime", prime, "-n", "50", "--seed", "77", "--greedy", "--threads", "1"});
  ASSERT_EQ(g2.code, 0) << describe(g2);
  EXPECT_EQ(g2.out, outs["--greedy"]) << "greedy output depends on the seed";
  EXPECT_EQ(outs["--top-k 1"], outs["--greedy"]) << "top-k 1 differs from greedy";
}

TEST_F(CliTest, SampleRejectsSamplingOptionsWithGreedyOrBeam) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  const std::string ck = (dir_ / "run" / "latest.safetensors").string();
  // Greedy and beam pick by score alone; a temperature or top-k next to them
  // would be silently ignored, so the command refuses the combination.
  const std::vector<std::vector<std::string>> bad = {{"--greedy", "--temperature", "0.5"},
                                                     {"--greedy", "--top-k", "3"},
                                                     {"--beam", "3", "--top-p", "0.9"},
                                                     {"--beam", "3", "--temperature", "2"},
                                                     {"--beam", "3", "--greedy"}};
  for (auto& opts : bad) {
    Proc r = unroll(cat({"sample", ck, "-n", "5", "--threads", "1"}, opts));
    EXPECT_NE(r.code, 0) << describe(r);
    EXPECT_NE(r.err.find("excludes"), std::string::npos) << describe(r);
  }
}

// ===========================================================================
// 4. Korean

TEST_F(CliTest, KoreanTextTrainsAndSamplesHangul) {
  const std::string text = file("ko.txt", korean_text(300));
  const fs::path out = dir_ / "run";
  ASSERT_NO_FATAL_FAILURE(train_ok(text, out));
  EXPECT_TRUE(fs::exists(out / "best.safetensors")) << listing(out);
  const std::string prime = "안녕";
  Proc r = unroll({"sample", (out / "latest.safetensors").string(), "--prime", prime, "-n", "200",
                   "--seed", "5", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  std::vector<char32_t> cps;
  size_t bad = 0;
  ASSERT_TRUE(decode_utf8(r.out, &cps, &bad)) << "invalid UTF-8 at byte " << bad << "\n"
                                              << describe(r);
  ASSERT_EQ(r.out.rfind(prime, 0), 0u) << describe(r);
  ASSERT_GE(cps.size(), 2u);
  size_t hangul = 0;
  for (size_t i = 2; i < cps.size(); ++i) hangul += is_hangul_syllable(cps[i]);
  EXPECT_GE(hangul, 1u) << "no Hangul syllable generated\n" << describe(r);
  size_t generated = cps.size() - 2 - (cps.back() == U'\n' ? 1 : 0);
  EXPECT_EQ(generated, 200u) << describe(r);

  Proc e = unroll({"eval", (out / "best.safetensors").string(), text, "--threads", "1"});
  ASSERT_EQ(e.code, 0) << describe(e);
  double loss = 0;
  EXPECT_TRUE(eval_value(e.out, "loss", &loss) && std::isfinite(loss)) << describe(e);

  // The same prime typed as decomposed jamo (NFD) is read as the syllables it spells.
  const std::string jamo =
      "\xe1\x84\x8b\xe1\x85\xa1\xe1\x86\xab\xe1\x84\x82\xe1\x85\xa7\xe1\x86\xbc";
  Proc d = unroll({"sample", (out / "latest.safetensors").string(), "--prime", jamo, "-n", "20",
                   "--seed", "5", "--threads", "1"});
  ASSERT_EQ(d.code, 0) << describe(d);
  EXPECT_EQ(d.out.rfind(prime, 0), 0u) << "the NFD prime was not read as NFC\n" << describe(d);
}

// ===========================================================================
// 5. Resume reproduces an uninterrupted run exactly

// "step N | epoch E | loss L | lr R | grad norm G | ..." -> the part before tok/s.
std::map<int, std::string> step_lines(const std::string& out) {
  std::map<int, std::string> m;
  std::regex re("^step ([0-9]+) \\|(.*\\| grad norm [^|]*)\\|");
  for (auto& l : split_lines(out)) {
    std::smatch s;
    if (std::regex_search(l, s, re)) m[std::stoi(s[1])] = s[2];
  }
  return m;
}

TEST_F(CliTest, ResumeMatchesAnUninterruptedRun) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path A = dir_ / "A", B = dir_ / "B";
  const std::vector<std::string> common = {
      "--hidden",     "16", "--layers",       "1", "--batch",       "4", "--seq",     "8",
      "--eval-every", "10", "--sample-every", "0", "--print-every", "1", "--threads", "1"};
  Proc a = unroll(cat(cat({"train", text, "--out", A.string()}, common), {"--steps", "20"}));
  ASSERT_EQ(a.code, 0) << describe(a);
  Proc b1 = unroll(cat(cat({"train", text, "--out", B.string()}, common), {"--steps", "10"}));
  ASSERT_EQ(b1.code, 0) << describe(b1);
  Proc b2 = unroll({"train", "--resume", B.string(), "--steps", "20", "--threads", "1"});
  ASSERT_EQ(b2.code, 0) << describe(b2);

  for (const char* name : {"latest.safetensors", "best.safetensors"}) {
    const std::string da = data_section(A / name), db = data_section(B / name);
    ASSERT_FALSE(da.empty()) << name << " of A has no data section";
    EXPECT_EQ(da.size(), db.size()) << name;
    EXPECT_TRUE(da == db) << name
                          << ": tensor data of the resumed run differs from the uninterrupted run";
  }

  const auto la = step_lines(a.out), lb = step_lines(b2.out);
  for (int s = 11; s <= 20; ++s) {
    ASSERT_TRUE(la.count(s)) << "no line for step " << s << "\n" << describe(a);
    ASSERT_TRUE(lb.count(s)) << "no line for step " << s << "\n" << describe(b2);
    EXPECT_EQ(la.at(s), lb.at(s)) << "step " << s;
  }
  for (int s = 1; s <= 10; ++s) EXPECT_FALSE(lb.count(s)) << "resumed run repeated step " << s;

  std::smatch ma, mb;
  std::regex ev("eval step 20: val loss ([0-9.]+)");
  ASSERT_TRUE(std::regex_search(a.out, ma, ev)) << describe(a);
  ASSERT_TRUE(std::regex_search(b2.out, mb, ev)) << describe(b2);
  EXPECT_EQ(ma[1], mb[1]);

  Proc ia = unroll({"info", (B / "latest.safetensors").string()});
  EXPECT_TRUE(std::regex_search(ia.out, std::regex("step\\s+20\\b"))) << describe(ia);
}

// ===========================================================================
// 6. Bad input: a one-line error, a non-zero exit, nothing written

TEST_F(CliTest, TrainMissingFile) {
  const fs::path out = dir_ / "out";
  Proc r = unroll(cat({"train", (dir_ / "missing.txt").string(), "--out", out.string()}, kTiny));
  expect_clean_error(r, {"missing.txt", "no such file"}, out);
}

TEST_F(CliTest, TrainOneOfSeveralFilesMissing) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "out";
  Proc r =
      unroll(cat({"train", text, (dir_ / "missing.txt").string(), "--out", out.string()}, kTiny));
  expect_clean_error(r, {"missing.txt"}, out);
}

TEST_F(CliTest, TrainDirectoryGivenAsFile) {
  fs::create_directories(dir_ / "texts");
  const fs::path out = dir_ / "out";
  Proc r = unroll(cat({"train", (dir_ / "texts").string(), "--out", out.string()}, kTiny));
  expect_clean_error(r, {"texts", "directory"}, out);
}

TEST_F(CliTest, TrainEmptyFile) {
  const std::string f = file("empty.txt", "");
  const fs::path out = dir_ / "out";
  Proc r = unroll(cat({"train", f, "--out", out.string()}, kTiny));
  expect_clean_error(r, {"empty.txt", "empty"}, out);
}

TEST_F(CliTest, TrainTextShorterThanOneBatchSuggestsSmallerBatch) {
  const std::string f =
      file("short.txt", "abcdefghij abcdefghij abcdefghij abcdefghij abcdefghij\n");
  const fs::path out = dir_ / "out";
  std::vector<std::string> opts = {"--hidden",  "16", "--layers", "1", "--batch",        "8",
                                   "--seq",     "8",  "--steps",  "5", "--sample-every", "0",
                                   "--threads", "1"};
  Proc r = unroll(cat({"train", f, "--out", out.string()}, opts));
  expect_clean_error(r, {"short", "--batch", "--seq"}, out);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex("--batch ([0-9]+)"))) << describe(r);
  const std::string suggested = m[1];
  EXPECT_LT(std::stoi(suggested), 8) << "the suggested --batch should be smaller\n" << describe(r);
  opts[5] = suggested;
  Proc ok = unroll(cat({"train", f, "--out", out.string()}, opts));
  EXPECT_EQ(ok.code, 0) << "the suggested --batch " << suggested << " does not work\n"
                        << describe(ok);
  EXPECT_TRUE(fs::exists(out / "latest.safetensors")) << listing(out);

  // Same for the suggested --seq, if there is one.
  if (std::regex_search(r.err, m, std::regex("--seq ([0-9]+)"))) {
    const fs::path out2 = dir_ / "out2";
    auto opts2 = opts;
    opts2[5] = "8";
    opts2[7] = m[1];
    Proc ok2 = unroll(cat({"train", f, "--out", out2.string()}, opts2));
    EXPECT_EQ(ok2.code, 0) << "the suggested --seq " << m[1] << " does not work\n" << describe(ok2);
  }
}

TEST_F(CliTest, TrainInvalidUtf8NamesTheByteOffset) {
  const std::string f = file("bad.txt", std::string("abc\xff") + "def ghi jkl mno pqr stu vwx\n");
  const fs::path out = dir_ / "out";
  Proc r = unroll(cat({"train", f, "--out", out.string()}, kTiny));
  expect_clean_error(r, {"bad.txt", "utf-8"}, out);
  EXPECT_TRUE(std::regex_search(r.err, std::regex("[^0-9]3[^0-9]"))) << "offset 3 not named\n"
                                                                     << describe(r);
}

TEST_F(CliTest, TrainBinaryFileWithNulBytes) {
  std::string bin = "hello world";
  bin += std::string(1, '\0') + "binary" + std::string(3, '\0');
  for (int i = 0; i < 200; ++i) bin += char(i % 7 == 0 ? 0 : 'a' + i % 26);
  const std::string f = file("data.bin", bin);
  const fs::path out = dir_ / "out";
  Proc r = unroll(cat({"train", f, "--out", out.string()}, kTiny));
  expect_clean_error(r, {"data.bin"}, out);
  EXPECT_TRUE(contains(lower(r.err), "binary") || contains(r.err, "NUL")) << describe(r);
}

TEST_F(CliTest, TrainUnknownFlag) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "out";
  Proc r = unroll(cat({"train", text, "--out", out.string(), "--hiddden", "16"}, kTiny));
  expect_clean_error(r, {"--hiddden"}, out);
}

TEST_F(CliTest, TrainOutOfRangeValues) {
  const std::string text = file("en.txt", english_text(300));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--hidden", "0"}, {"--dropout", "2"}, {"--lr", "-1"}, {"--layers", "0"}, {"--batch", "0"}};
  for (auto& [opt, val] : cases) {
    SCOPED_TRACE(opt + " " + val);
    const fs::path out = dir_ / ("out" + opt);
    Proc r = unroll(cat(cat({"train", text, "--out", out.string()}, kTiny), {opt, val}));
    expect_clean_error(r, {opt, val}, out);
  }
}

// Range errors should be readable: no 300-digit numbers (DBL_MAX spelled out).
TEST_F(CliTest, RangeErrorMessagesAreReadable) {
  const std::string text = file("en.txt", english_text(50));
  const std::vector<std::vector<std::string>> cmds = {
      cat({"train", text, "--out", (dir_ / "o").string()}, {"--lr", "-1"}),
      {"sample", "x.safetensors", "--temperature", "0"},
      cat({"train", text, "--out", (dir_ / "o").string()}, {"--clip", "-1"})};
  for (auto& c : cmds) {
    Proc r = unroll(c);
    expect_clean_error(r, {}, dir_ / "o");
    EXPECT_LT(r.err.size(), 200u) << "an overlong error message\n" << describe(r);
    EXPECT_FALSE(contains(r.err, "17976931348623157")) << "DBL_MAX printed in full\n"
                                                       << describe(r);
  }
}

TEST_F(CliTest, TrainBadSplitAndDuration) {
  const std::string text = file("en.txt", english_text(300));
  const std::vector<std::vector<std::string>> cases = {
      {"--split", "abc"}, {"--split", "0.9,0.2"}, {"--time", "soon"}};
  for (auto& c : cases) {
    SCOPED_TRACE(c[0] + " " + c[1]);
    const fs::path out = dir_ / "out";
    Proc r = unroll(cat(cat({"train", text, "--out", out.string()}, kTiny), c));
    expect_clean_error(r, {c[0] == "--time" ? c[1] : "--split"}, out);
  }
}

// metrics.jsonl survives SIGKILL mid-run (every line parses and is whole),
// and a resume continues it without repeating a step.
TEST_F(CliTest, MetricsSurviveKillAndResumeContinuesThem) {
  const std::string text = file("t.txt", english_text(400));
  const fs::path out = dir_ / "run";
  Proc r = run_program("/usr/bin/timeout",
                       {"-s",
                        "KILL",
                        "3",
                        UNROLL_BIN,
                        "train",
                        text,
                        "--out",
                        out.string(),
                        "--hidden",
                        "32",
                        "--layers",
                        "1",
                        "--batch",
                        "4",
                        "--seq",
                        "16",
                        "--steps",
                        "100000000",
                        "--eval-every",
                        "5",
                        "--sample-every",
                        "7",
                        "--print-every",
                        "1",
                        "--threads",
                        "1"},
                       dir_, io_);
  ASSERT_TRUE(r.code == 137 || r.signaled) << "expected a kill\n" << describe(r);
  ASSERT_TRUE(fs::exists(out / "latest.safetensors")) << listing(out);
  auto records = [&]() {
    const std::string bytes = read_file(out / "metrics.jsonl");
    EXPECT_TRUE(!bytes.empty() && bytes.back() == '\n') << "a torn last line";
    std::vector<nlohmann::json> v;
    for (auto& l : split_lines(bytes))
      v.push_back(nlohmann::json::parse(l));  // throws on a bad line
    return v;
  };
  auto before = records();
  int64_t steps_before = 0;
  for (auto& j : before) steps_before += j["kind"] == "step";
  ASSERT_GT(steps_before, 5) << "too few steps in 3 s to test anything";
  EXPECT_TRUE(fs::exists(out / "config.json"));

  r = unroll({"info", (out / "latest.safetensors").string(), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const int64_t saved = nlohmann::json::parse(r.out)["progress"]["step"];
  r = unroll({"train", "--resume", out.string(), "--steps", std::to_string(saved + 30)});
  ASSERT_EQ(r.code, 0) << describe(r);
  int64_t last = 0, evals = 0, samples = 0;
  for (auto& j : records()) {
    if (j["kind"] == "step") {
      EXPECT_GT(j["step"].get<int64_t>(), last) << j.dump();  // strictly increasing: no step twice
      last = j["step"];
      for (const char* k : {"epoch", "tokens", "train_loss", "lr", "grad_norm", "clipped",
                            "tokens_per_s", "elapsed"})
        EXPECT_TRUE(j.contains(k)) << k << " missing: " << j.dump();
    }
    if (j["kind"] == "eval") {
      ++evals;
      for (const char* k : {"val_loss", "val_bits_per_token", "val_perplexity", "grad_norm_mean"})
        EXPECT_TRUE(j.contains(k)) << k << " missing: " << j.dump();
    }
    samples += j["kind"] == "sample";
  }
  EXPECT_EQ(last, saved + 30);
  EXPECT_GE(evals, 2);
  EXPECT_GE(samples, 1);
}

// On a terminal, progress is one bar redrawn in place (percentage, loss,
// speed, ETA); into a file or pipe, plain lines that a log keeps.
TEST_F(CliTest, ProgressBarOnATerminalPlainLinesOtherwise) {
  const std::string text = file("t.txt", english_text(100));
  const std::string cmd =
      std::string(UNROLL_BIN) + " train " + text + " --out " + (dir_ / "tty").string() +
      " --hidden 16 --layers 1 --batch 4 --seq 8 --steps 60 --eval-every 30 --sample-every 0"
      " --print-every 10 --threads 1";
  Proc r =
      run_program("/usr/bin/script", {"-qec", cmd, "/dev/null"}, dir_, io_);  // a pseudo-terminal
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "\r[")) << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("\\] +[0-9]+% \\| step 10 \\| loss [0-9.]+ \\| [0-9]+ tok/s \\| ETA")))
      << r.out;
  EXPECT_TRUE(contains(r.out, "100% | step 60")) << r.out;
  EXPECT_FALSE(contains(r.out, "step 10 | epoch")) << r.out;
  r = unroll({"train",          text, "--out",         (dir_ / "plain").string(),
              "--hidden",       "16", "--layers",      "1",
              "--batch",        "4",  "--seq",         "8",
              "--steps",        "60", "--eval-every",  "30",
              "--sample-every", "0",  "--print-every", "10",
              "--threads",      "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(contains(r.out, "\r")) << r.out;
  EXPECT_TRUE(contains(r.out, "step 10 | epoch")) << r.out;
}

TEST_F(CliTest, ResumeFolderWithoutCheckpoint) {
  const fs::path run = dir_ / "emptyrun";
  fs::create_directories(run);
  Proc r = unroll({"train", "--resume", run.string(), "--steps", "5", "--threads", "1"});
  expect_clean_error(r, {"emptyrun"}, run);
  EXPECT_TRUE(contains(lower(r.err), "resume") || contains(lower(r.err), "checkpoint") ||
              contains(r.err, "latest.safetensors"))
      << describe(r);
  // A folder that does not exist is not created either.
  const fs::path none = dir_ / "nosuchrun";
  Proc r2 = unroll({"train", "--resume", none.string(), "--steps", "5", "--threads", "1"});
  expect_clean_error(r2, {"nosuchrun"}, none);
  EXPECT_FALSE(fs::exists(none));
}

TEST_F(CliTest, TrainRefusesToOverwriteAnExistingRun) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "run";
  ASSERT_NO_FATAL_FAILURE(train_ok(text, out));
  const std::string before = read_file(out / "latest.safetensors");
  const std::string best_before = read_file(out / "best.safetensors");
  Proc r = unroll(cat({"train", text, "--out", out.string()}, kTiny));
  expect_clean_error(r, {"--resume"});
  EXPECT_EQ(read_file(out / "latest.safetensors"), before) << "the run was overwritten";
  EXPECT_EQ(read_file(out / "best.safetensors"), best_before) << "the run was overwritten";
}

TEST_F(CliTest, TrainOutIsAnExistingFile) {
  const std::string text = file("en.txt", english_text(300));
  const std::string blocker = file("notadir", "keep me\n");
  Proc r = unroll(cat({"train", text, "--out", blocker}, kTiny));
  expect_clean_error(r, {"notadir"});
  EXPECT_EQ(read_file(blocker), "keep me\n");
}

TEST_F(CliTest, TrainOutInsideAFileFailsBeforeTraining) {
  const std::string text = file("en.txt", english_text(300));
  file("notadir", "keep me\n");
  Proc r = unroll(cat({"train", text, "--out", (dir_ / "notadir" / "run").string()}, kTiny));
  expect_clean_error(r, {"run folder", "notadir"});
  EXPECT_EQ(r.out.find("step "), std::string::npos) << "trained before failing:\n" << describe(r);
}

TEST_F(CliTest, NonFiniteOptionValuesAreRejected) {
  const std::string text = file("en.txt", english_text(300));
  for (auto bad : std::vector<std::vector<std::string>>{{"--forget-bias", "inf"},
                                                        {"--forget-bias", "nan"},
                                                        {"--clip", "inf"},
                                                        {"--optim", "sgd", "--momentum", "nan"},
                                                        {"--sample-temperature", "inf"}}) {
    const fs::path out = dir_ / "run";
    Proc r = unroll(cat(cat({"train", text, "--out", out.string()}, kTiny), bad));
    expect_clean_error(r, {bad[bad.size() - 2]}, out);
  }
}

TEST_F(CliTest, SeedsOutsideUint64AreRejectedNotWrapped) {
  const std::string text = file("en.txt", english_text(300));
  for (std::string bad : {"-1", "18446744073709551616", "1e5", "12abc"}) {
    const fs::path out = dir_ / "run";
    Proc r = unroll(cat(cat({"train", text, "--out", out.string()}, kTiny), {"--seed", bad}));
    expect_clean_error(r, {"--seed", bad}, out);
  }
  // The largest seed is a seed.
  Proc ok = unroll({"hello", "--seed", "18446744073709551615", "--steps", "1"});
  EXPECT_EQ(ok.code, 0) << describe(ok);
}

TEST_F(CliTest, ResumeNamesTheTrainingFileThatChanged) {
  const std::string a = file("a.txt", english_text(300));
  const std::string b = file("b.txt", english_text(200));
  const fs::path out = dir_ / "run";
  Proc t = unroll(cat({"train", a, b, "--out", out.string()}, kTiny));
  ASSERT_EQ(t.code, 0) << describe(t);
  std::string changed = read_file(b);
  std::reverse(changed.begin(), changed.end());  // same characters, different text
  file("b.txt", changed);
  Proc r = unroll({"train", "--resume", out.string(), "--steps", "40"});
  expect_clean_error(r, {"b.txt", "changed"});
  EXPECT_EQ(r.err.find("a.txt"), std::string::npos) << "names the unchanged file\n" << describe(r);
}

TEST_F(CliTest, ZeroTimeAndHugeTemperatureAreRejected) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "run";
  expect_clean_error(
      unroll(cat(cat({"train", text, "--out", out.string()}, kTiny), {"--time", "0s"})),
      {"--time", "more than 0"}, out);
  ASSERT_NO_FATAL_FAILURE(train_ok(text, out));
  expect_clean_error(unroll({"sample", (out / "latest.safetensors").string(), "-t", "1e300"}),
                     {"--temperature", "3.4e38"});
}

// --init pytorch (issue 18): recorded in the checkpoint with its forget-gate
// bias of 0, kept by a resume, and not changeable there.
TEST_F(CliTest, InitIsRecordedAndFixedForTheRun) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run", {"--init", "pytorch", "--embed", "8"}));
  Proc info = unroll({"info", (dir_ / "run" / "latest.safetensors").string(), "--json"});
  ASSERT_EQ(info.code, 0) << describe(info);
  const auto model = nlohmann::json::parse(info.out).at("model");
  EXPECT_EQ(model.at("init"), "pytorch");
  EXPECT_EQ(model.at("forget_bias"), 0.0);
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "fb", {"--init", "pytorch", "--forget-bias", "1"}));
  info = unroll({"info", (dir_ / "fb" / "latest.safetensors").string(), "--json"});
  EXPECT_EQ(nlohmann::json::parse(info.out).at("model").at("forget_bias"), 1.0);
  expect_clean_error(
      unroll({"train", "--resume", (dir_ / "run").string(), "--init", "uniform", "--steps", "40"}),
      {"--init", "--resume"});
  Proc r =
      unroll({"train", "--resume", (dir_ / "run").string(), "--steps", "40", "--threads", "1"});
  EXPECT_EQ(r.code, 0) << describe(r);
}

TEST_F(CliTest, LearningRateSchedulesRunAndSayWhatTheyNeed) {
  const std::string text = file("en.txt", english_text(300));
  // Cosine with a warm-up: rises to --lr, then falls to --lr-min at the last step.
  ASSERT_NO_FATAL_FAILURE(
      train_ok(text, dir_ / "cos",
               {"--lr-schedule", "cosine", "--warmup", "5", "--lr-min", "1e-4", "--weight-decay",
                "0.01", "--betas", "0.8,0.99", "--eps", "1e-6", "--print-every", "1"}));
  std::map<int, double> lr;
  std::istringstream lines(read_file(dir_ / "cos" / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("kind") == "step") lr[j.at("step").get<int>()] = j.at("lr").get<double>();
  }
  ASSERT_EQ(lr.size(), 30u);
  EXPECT_NEAR(lr[1], 2e-3 / 5, 1e-9);
  EXPECT_NEAR(lr[5], 2e-3, 1e-9);
  EXPECT_NEAR(lr[30], 1e-4, 1e-9);
  for (int s = 6; s < 30; ++s) EXPECT_GT(lr[s], lr[s + 1]) << "step " << s;
  const auto cfg = nlohmann::json::parse(read_file(dir_ / "cos" / "config.json")).at("train");
  EXPECT_EQ(cfg.at("lr_schedule"), "cosine");
  EXPECT_EQ(cfg.at("optim").at("weight_decay").get<double>(), 0.01f);
  EXPECT_EQ(cfg.at("optim").at("beta1").get<double>(), 0.8f);
  EXPECT_EQ(cfg.at("optim").at("beta2").get<double>(), 0.99f);
  EXPECT_EQ(cfg.at("optim").at("eps").get<double>(), 1e-6f);
  EXPECT_EQ(cfg.at("lr_total"), 30);
  // A resume keeps the end of the cosine: ten more steps stay at --lr-min.
  Proc more =
      unroll({"train", "--resume", (dir_ / "cos").string(), "--steps", "40", "--threads", "1"});
  ASSERT_EQ(more.code, 0) << describe(more);
  {
    std::istringstream after(read_file(dir_ / "cos" / "metrics.jsonl"));
    for (std::string line; std::getline(after, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.at("kind") == "step" && j.at("step").get<int>() > 30) {
        EXPECT_NEAR(j.at("lr").get<double>(), 1e-4, 1e-9);
      }
    }
  }

  // With --time alone the end is estimated once 10% of the time has passed:
  // the full rate until then, the estimate said and kept in the checkpoint,
  // and the rate falling from there on.
  {
    // A small model, so that 3 s hold many steps even in the sanitizer build on a busy machine.
    Proc t = unroll({"train",          text,     "--out",         (dir_ / "t").string(),
                     "--lr-schedule",  "cosine", "--lr-min",      "1e-5",
                     "--time",         "3s",     "--eval-every",  "0",
                     "--sample-every", "0",      "--print-every", "1",
                     "--threads",      "1",      "--hidden",      "32",
                     "--layers",       "1",      "--batch",       "8",
                     "--seq",          "16"});
    ASSERT_EQ(t.code, 0) << describe(t);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(t.out, m, std::regex("the --time limit ends near step (\\d+)")))
        << describe(t);
    const auto info = nlohmann::json::parse(
        unroll({"info", "--json", (dir_ / "t" / "latest.safetensors").string()}).out);
    EXPECT_EQ(info.at("train").at("lr_total").get<int>(), std::stoi(m[1]));
    int set_at = -1;
    std::vector<std::pair<int, double>> rates;
    std::istringstream all(read_file(dir_ / "t" / "metrics.jsonl"));
    for (std::string line; std::getline(all, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.at("kind") == "schedule") set_at = j.at("step").get<int>();
      if (j.at("kind") == "step")
        rates.emplace_back(j.at("step").get<int>(), j.at("lr").get<double>());
    }
    ASSERT_GT(set_at, 0) << "no schedule record";
    ASSERT_GT(rates.back().first, set_at + 1) << describe(t);
    for (auto [step, rate] : rates) {
      if (step <= set_at) {
        EXPECT_NEAR(rate, 2e-3, 1e-9) << "step " << step;
      }
    }
    EXPECT_LT(rates.back().second, 2e-3 * 0.9) << "the rate should fall after the estimate";
  }
  expect_clean_error(unroll({"train", text, "--out", (dir_ / "p").string(), "--lr-schedule",
                             "plateau", "--split", "1", "--steps", "10"}),
                     {"plateau", "validation"});
  expect_clean_error(unroll({"train", text, "--out", (dir_ / "m").string(), "--lr-schedule",
                             "cosine", "--lr-min", "0.5", "--steps", "10"}),
                     {"--lr-min", "below --lr"});
  expect_clean_error(
      unroll({"train", text, "--out", (dir_ / "m").string(), "--lr-min", "1e-4", "--steps", "10"}),
      {"--lr-min", "cosine"});
  expect_clean_error(
      unroll({"train", text, "--out", (dir_ / "m").string(), "--patience", "3", "--steps", "10"}),
      {"--patience", "plateau"});
  expect_clean_error(unroll({"train", text, "--out", (dir_ / "m").string(), "--lr-schedule",
                             "cosine", "--warmup", "10", "--steps", "10"}),
                     {"warm-up", "last step"});
  for (const char* bad : {"0.9", "1,0.9", "0.9,-0.1", "a,b"})
    expect_clean_error(
        unroll({"train", text, "--out", (dir_ / "m").string(), "--betas", bad, "--steps", "10"}),
        {"--betas"});
  expect_clean_error(
      unroll({"train", "--resume", (dir_ / "cos").string(), "--betas", "0.9,0.9", "--steps", "50"}),
      {"--betas", "--resume"});
  expect_clean_error(
      unroll({"train", "--resume", (dir_ / "cos").string(), "--warmup", "9", "--steps", "40"}),
      {"--warmup", "--resume"});
}

TEST_F(CliTest, RegularisedTiedModelTrainsSamplesAndSaysWhatItUsed) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(
      train_ok(text, dir_ / "run",
               {"--embed", "16", "--tie", "--dropout", "0.2", "--dropout-in", "0.3",
                "--locked-dropout", "--embed-dropout", "0.1", "--weight-drop", "0.3"}));
  const std::string ck = (dir_ / "run" / "best.safetensors").string();
  Proc info = unroll({"info", ck});
  ASSERT_EQ(info.code, 0) << describe(info);
  EXPECT_TRUE(contains(info.out,
                       "dropout 0.2 (input 0.3) locked, embedding dropout 0.1, weight drop 0.3, "
                       "head tied to the embedding"))
      << info.out;
  Proc sample = unroll({"sample", ck, "-n", "40", "--seed", "1"});
  EXPECT_EQ(sample.code, 0) << describe(sample);
  Proc ev = unroll({"eval", ck, text});
  EXPECT_EQ(ev.code, 0) << describe(ev);
  expect_clean_error(
      unroll({"train", "--resume", (dir_ / "run").string(), "--weight-drop", "0", "--steps", "40"}),
      {"--weight-drop", "--resume"});
  expect_clean_error(
      unroll({"train", text, "--out", (dir_ / "bad").string(), "--embed", "8", "--tie"}),
      {"--tie", "--hidden", "--embed 8"}, dir_ / "bad");
  expect_clean_error(
      unroll({"train", text, "--out", (dir_ / "bad").string(), "--dropout-in", "0.2"}),
      {"--dropout-in", "--embed"}, dir_ / "bad");
  expect_clean_error(unroll({"train", text, "--out", (dir_ / "bad").string(), "--locked-dropout"}),
                     {"--locked-dropout", "rate"}, dir_ / "bad");
}

TEST_F(CliTest, ResumeRefusesOptionsItCannotChange) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  for (auto opt : std::vector<std::vector<std::string>>{
           {"--hidden", "64"}, {"--out", (dir_ / "elsewhere").string()}, {"--seed", "5"}}) {
    Proc r = unroll(cat({"train", "--resume", (dir_ / "run").string(), "--steps", "40"}, opt));
    expect_clean_error(r, {opt[0], "--resume"});
    EXPECT_FALSE(fs::exists(dir_ / "elsewhere"));
  }
}

TEST_F(CliTest, ResumeWithNothingLeftSaysSoAndKeepsTheCheckpoint) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  const std::string before = read_file(dir_ / "run" / "latest.safetensors");
  Proc r =
      unroll({"train", "--resume", (dir_ / "run").string(), "--steps", "10", "--threads", "1"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "nothing to train")) << describe(r);
  EXPECT_EQ(read_file(dir_ / "run" / "latest.safetensors"), before);
  // --time on a resume means this much more training, whatever the stored --steps.
  r = unroll({"train", "--resume", (dir_ / "run").string(), "--time", "1s", "--eval-every", "0",
              "--threads", "1"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(contains(r.out, "nothing to train")) << describe(r);
  EXPECT_NE(read_file(dir_ / "run" / "latest.safetensors"), before);
}

// ---- sample and eval

class CliTrained : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (HasFatalFailure()) return;
    text_ = file("en.txt", english_text(300));
    ASSERT_NO_FATAL_FAILURE(train_ok(text_, dir_ / "run"));
    ck_ = (dir_ / "run" / "latest.safetensors").string();
  }
  std::string text_, ck_;
};

TEST_F(CliTrained, SamplePrimeWithUnknownCharacters) {
  // The generated text has no 'Z' and no CJK characters.
  ASSERT_FALSE(contains(read_file(text_), "Z"));
  Proc r = unroll({"sample", ck_, "--prime", "Zebra", "-n", "10", "--seed", "1"});
  expect_clean_error(r, {"'Z'", "vocabulary"});
  EXPECT_TRUE(r.out.empty()) << "partial output before the error\n" << describe(r);

  Proc r2 = unroll({"sample", ck_, "--prime", "The 漢", "-n", "10", "--seed", "1"});
  expect_clean_error(r2, {"漢"});
  EXPECT_TRUE(r2.out.empty()) << describe(r2);
}

TEST_F(CliTrained, SampleMissingCheckpoint) {
  Proc r = unroll({"sample", (dir_ / "nope.safetensors").string(), "-n", "10", "--seed", "1"});
  expect_clean_error(r, {"nope.safetensors", "no such file"});
  EXPECT_TRUE(r.out.empty()) << describe(r);
}

TEST_F(CliTrained, SampleTruncatedCheckpoint) {
  const std::string full = read_file(ck_);
  const std::string half = file("half.safetensors", full.substr(0, full.size() / 2));
  Proc r = unroll({"sample", half, "-n", "10", "--seed", "1"});
  expect_clean_error(r, {"half.safetensors"});
  EXPECT_TRUE(r.out.empty()) << describe(r);
  // Cut inside the header, too, and just after the length prefix.
  for (size_t cut : {size_t(4), size_t(8), size_t(100), full.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const std::string p = file("cut.safetensors", full.substr(0, cut));
    Proc rc = unroll({"sample", p, "-n", "10", "--seed", "1"});
    expect_clean_error(rc, {"cut.safetensors"});
  }
}

TEST_F(CliTrained, SampleRandomBytesCheckpoint) {
  std::mt19937 rng(42);
  std::string junk(5000, '\0');
  for (char& c : junk) c = char(rng() & 0xFF);
  const std::string p = file("random.safetensors", junk);
  Proc r = unroll({"sample", p, "-n", "10", "--seed", "1"});
  expect_clean_error(r, {"random.safetensors"});
  EXPECT_TRUE(r.out.empty()) << describe(r);
  // Also a plausible small header length followed by garbage.
  std::string fake = junk;
  fake[0] = 50;
  for (int i = 1; i < 8; ++i) fake[i] = 0;
  const std::string p2 = file("fake.safetensors", fake);
  Proc r2 = unroll({"info", p2});
  expect_clean_error(r2, {"fake.safetensors"});
}

TEST_F(CliTrained, SampleCheckpointIsADirectory) {
  Proc r = unroll({"sample", (dir_ / "run").string(), "-n", "10", "--seed", "1"});
  expect_clean_error(r, {"run"});
}

TEST_F(CliTrained, EvalDataWithUnknownCharacters) {
  const std::string f = file("unk.txt", "The quick ~ fox 漢 jumps\n");
  // --data FILE, the older spelling of the positional file, still works.
  Proc r = unroll({"eval", ck_, "--data", f});
  expect_clean_error(r, {"'~'", "漢", "vocabulary"});
  EXPECT_TRUE(r.out.empty()) << describe(r);
}

TEST_F(CliTrained, EvalMissingAndInvalidData) {
  Proc r = unroll({"eval", ck_, (dir_ / "missing.txt").string()});
  expect_clean_error(r, {"missing.txt"});
  const std::string bad = file("bad.txt", std::string("The \xc3\x28 cat\n"));
  Proc r2 = unroll({"eval", ck_, bad});
  expect_clean_error(r2, {"bad.txt", "utf-8"});
  expect_clean_error(unroll({"eval", ck_}), {"no text to evaluate", "FILE"});
}

// ===========================================================================
// 7. unroll gradients from the command line

TEST_F(CliTest, GradientsScalarExamplePrintsThreeNineTwentySeven) {
  Proc r = unroll({"gradients", "--scalar", "3", "--steps", "3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (auto [t, v] : std::vector<std::pair<int, int>>{{1, 3}, {2, 9}, {3, 27}})
    EXPECT_TRUE(std::regex_search(
        r.out, std::regex("\\n\\s*" + std::to_string(t) + "\\s+" + std::to_string(v) + "\\n")))
        << "no line 't = " << t << ": " << v << "'\n"
        << describe(r);
}

TEST_F(CliTest, GradientsRefusesOptionsItWouldIgnore) {
  const std::string text = file("en.txt", english_text(100));
  // --scalar alone writes nothing: page, JSON and CSV options make no sense with it.
  for (auto extra :
       std::vector<std::vector<std::string>>{{"--json-file", (dir_ / "s.json").string()},
                                             {"-o", (dir_ / "s.html").string()},
                                             {"--csv"},
                                             {"--text", text}})
    expect_clean_error(unroll(cat({"gradients", "--scalar", "3"}, extra)), {extra[0], "--scalar"});
  // The scalar example's own options need --scalar.
  Proc r = unroll({"gradients", "--fresh", "rnn:1:8", "--text", text, "--steps", "5"});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "--scalar")) << describe(r);
  // A page path in a missing folder fails before any measuring.
  Proc p = unroll({"gradients", "--fresh", "rnn:1:8", "--text", text, "-o",
                   (dir_ / "nodir" / "g.html").string()});
  expect_clean_error(p, {"nodir", "does not exist"});
  EXPECT_FALSE(contains(p.err, "measuring")) << describe(p);
}

TEST_F(CliTest, GradientsJsonRecordsTheWholeCommand) {
  const std::string text = file("en.txt", english_text(100));
  const std::string json = (dir_ / "g.json").string();
  Proc r = unroll({"gradients", "--fresh", "rnn:1:8:0.5", "--text", text, "-K", "5", "--repeats",
                   "2", "--seed", "7", "--init-seed", "9", "--json-file", json, "-o",
                   (dir_ / "g.html").string(), "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string j = read_file(json);
  for (const char* o : {"--repeats 2", "--seed 7", "--init-seed 9", "-K 5", "rnn:1:8:0.5"})
    EXPECT_TRUE(contains(j, o)) << o << " missing from the recorded command";
}

TEST_F(CliTest, GradientsCsvHasEveryDistanceWithFullPrecision) {
  const std::string text = file("en.txt", english_text(400));
  const int K = 40;
  Proc r = unroll({"gradients", "--fresh", "rnn:1:8:0.5", "--text", text, "--csv", "-K",
                   std::to_string(K), "--repeats", "1", "--batch", "4", "--warmup", "2", "-o",
                   (dir_ / "g.html").string(), "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), size_t(K + 2)) << describe(r);
  EXPECT_EQ(lines[0], "model,layer,k,loss_grad,loss_grad_rel,jacobian");
  double prev_jac = 2;
  for (int k = 0; k <= K; ++k) {
    // The label holds commas only inside its quotes: take the fields after it.
    const std::string& l = lines[k + 1];
    auto fields =
        split_lines(std::regex_replace(l.substr(l.rfind('"') + 2), std::regex(","), "\n"));
    ASSERT_EQ(fields.size(), 5u) << l;
    EXPECT_EQ(std::stoi(fields[1]), k) << l;
    const double rel = std::stod(fields[3]), jac = std::stod(fields[4]);
    if (k == 0) {
      EXPECT_EQ(rel, 1.0) << l;
    }
    // W_hh = 0.5 × orthogonal: every factor of the Jacobian product is below 0.5,
    // so it shrinks at every step and stays far from 0 at k = 40 (~1e-13).
    EXPECT_GT(jac, 0) << "printed as zero: precision lost\n" << l;
    EXPECT_LT(jac, prev_jac) << l;
    prev_jac = jac;
  }
}

// ===========================================================================

}  // namespace

// Reliability of training (issue 9), with real signals sent to a real child
// process: Ctrl-C and SIGTERM save a checkpoint and a resume continues bit for
// bit; a second Ctrl-C quits at once; SIGKILL at any moment leaves a loadable
// checkpoint; non-finite steps stop (or are skipped) with the last checkpoint
// kept; a read-only run folder is reported and its checkpoint kept.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "cli_util.h"

using namespace clitest;

namespace {

// The number of "step" records in a run's metrics.jsonl (with --print-every 1:
// the steps taken so far).
int64_t steps_logged(const fs::path& run) {
  const std::string m = read_file(run / "metrics.jsonl");
  int64_t n = 0;
  for (size_t at = m.find("\"kind\":\"step\""); at != std::string::npos;
       at = m.find("\"kind\":\"step\"", at + 1))
    ++n;
  return n;
}

// Polls until the run has logged `n` steps; false if it took longer than 60 s.
bool wait_for_steps(const fs::path& run, int64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(run / "metrics.jsonl") && steps_logged(run) >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// 4,000 classifier examples, "odd" or "even" by position, of 12 random letters each: a
// task no epoch finishes quickly, for runs that are stopped from outside.
std::string labelled_noise(unsigned seed) {
  std::string data;
  std::mt19937 rng(seed);
  for (int i = 0; i < 4000; ++i) {
    std::string w;
    for (int k = 0; k < 12; ++k) w += char('a' + rng() % 26);
    data += std::string(i % 2 ? "odd" : "even") + "\t" + w + "\n";
  }
  return data;
}

const std::vector<std::string> kSmall = {"--hidden", "32", "--layers",      "1", "--batch",   "4",
                                         "--seq",    "16", "--print-every", "1", "--threads", "1"};

class Reliability : public CliTest {
 protected:
  // A text long enough that no run below ends by itself before it is stopped.
  std::string text() { return file("en.txt", english_text(400)); }

  // The progress the checkpoint holds ("step", "skipped_batches", ...).
  nlohmann::json progress(const fs::path& ck) {
    Proc r = unroll({"info", ck.string(), "--json"});
    EXPECT_EQ(r.code, 0) << describe(r);
    return r.code == 0 ? nlohmann::json::parse(r.out)["progress"] : nlohmann::json();
  }

  // A finished 10-step run in `run`, with checkpoints at steps 5 and 10.
  void train_ten_steps(const std::string& text_file, const fs::path& run) {
    Proc r = unroll(cat(
        {"train", text_file, "--out", run.string(), "--steps", "10", "--eval-every", "5"}, kSmall));
    ASSERT_EQ(r.code, 0) << describe(r);
  }

  Child start(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    return spawn(UNROLL_BIN, args, dir_, io_, env);
  }
};

// Ctrl-C (SIGINT) and SIGTERM: the step ends, latest.safetensors is saved
// there, the exit status is 128 + signal, and --resume then reaches the same
// parameters, bit for bit, as a run that was never stopped.
TEST_F(Reliability, InterruptSavesAndResumeContinuesBitForBit) {
  const std::string t = text();
  const int64_t total = 3000;
  for (auto [sig, cell] :
       std::vector<std::pair<int, std::string>>{{SIGINT, "lstm"}, {SIGTERM, "gru"}}) {
    SCOPED_TRACE(cell + (sig == SIGINT ? " SIGINT" : " SIGTERM"));
    const fs::path A = dir_ / ("A" + cell), B = dir_ / ("B" + cell);
    const auto common =
        cat(kSmall, {"--cell", cell, "--eval-every", "400", "--sample-every", "700"});
    Proc a = unroll(
        cat(cat({"train", t, "--out", A.string()}, common), {"--steps", std::to_string(total)}));
    ASSERT_EQ(a.code, 0) << describe(a);

    Child c = start(
        cat(cat({"train", t, "--out", B.string()}, common), {"--steps", std::to_string(total)}));
    ASSERT_TRUE(wait_for_steps(B, 30)) << "the run did not get going";
    ::kill(c.pid, sig);
    Proc b = finish(c);
    ASSERT_EQ(b.code, 128 + sig) << "the run ended before the signal, or not by it\n"
                                 << describe(b);
    EXPECT_FALSE(b.signaled) << describe(b);
    EXPECT_TRUE(contains(b.err, "stopping after this step")) << describe(b);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(b.out, m, std::regex("interrupted at step (\\d+)")))
        << describe(b);
    const int64_t stopped = std::stoll(m[1]);
    EXPECT_TRUE(contains(b.out, "unroll train --resume " + B.string() + " --threads 1"))
        << describe(b);
    EXPECT_LT(stopped, total);
    EXPECT_GE(stopped, 30);
    EXPECT_EQ(progress(B / "latest.safetensors")["step"], stopped)
        << "the checkpoint is not at the step reached";
    for (auto& e : fs::directory_iterator(B))
      EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos)
          << "left behind: " << e.path();

    Proc r = unroll(
        {"train", "--resume", B.string(), "--steps", std::to_string(total), "--threads", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    const std::string da = data_section(A / "latest.safetensors"),
                      db = data_section(B / "latest.safetensors");
    ASSERT_FALSE(da.empty());
    EXPECT_TRUE(da == db) << "the interrupted and resumed run differs from the uninterrupted one";
    // Every step is in the record once.
    int64_t last = 0;
    for (auto& l : split_lines(read_file(B / "metrics.jsonl"))) {
      auto j = nlohmann::json::parse(l);
      if (j["kind"] != "step") continue;
      EXPECT_EQ(j["step"].get<int64_t>(), last + 1);
      last = j["step"];
    }
    EXPECT_EQ(last, total);
  }
}

// A second Ctrl-C quits at once, in the middle of a step (a model whose step
// takes most of a second): exit status 130, the message, and the checkpoint
// of the step before still loads and resumes. The same signal twice within a
// quarter second (as GNU timeout sends it) is one request: a graceful save.
TEST_F(Reliability, SecondInterruptQuitsAtOnceAndKeepsACheckpoint) {
  const std::string t = text();
  const std::vector<std::string> slow = {
      "--hidden",     "512", "--layers",       "2", "--batch",   "50",
      "--seq",        "50",  "--print-every",  "1", "--threads", "1",
      "--eval-every", "2",   "--sample-every", "0", "--steps",   "100000000"};
  for (int round = 0; round < 1; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const fs::path run = dir_ / std::to_string(round);
    Child c = start(cat({"train", t, "--out", run.string()}, slow));
    // Step 3 is logged: step 2's checkpoint is written and step 4 (no save) computes.
    ASSERT_TRUE(wait_for_steps(run, 3));
    ::kill(c.pid, SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(350));
    ::kill(c.pid, SIGINT);
    Proc r = finish(c);
    EXPECT_FALSE(r.signaled) << describe(r);
    EXPECT_EQ(r.code, 130) << describe(r);
    EXPECT_TRUE(contains(
        r.err, "quitting at once; the checkpoints last written in '" + run.string() + "' are kept"))
        << describe(r);
    EXPECT_FALSE(contains(r.out, "interrupted at step")) << describe(r);
    EXPECT_EQ(progress(run / "latest.safetensors")["step"], 2);
  }
  const fs::path run = dir_ / "twice";
  Child c = start(cat({"train", t, "--out", run.string()}, slow));
  ASSERT_TRUE(wait_for_steps(run, 1));
  ::kill(c.pid, SIGTERM);
  ::kill(c.pid, SIGTERM);
  Proc r = finish(c);
  EXPECT_FALSE(r.signaled) << describe(r);
  EXPECT_EQ(r.code, 143) << describe(r);
  EXPECT_TRUE(contains(r.out, "interrupted at step")) << describe(r);
  EXPECT_FALSE(contains(r.err, "quitting at once")) << describe(r);
  Proc again = unroll({"train", "--resume", run.string(), "--steps", "1", "--threads", "1"});
  EXPECT_EQ(again.code, 0) << describe(again);
}

// SIGKILL, which nothing can catch, at 20 moments of a run that writes a
// checkpoint every step: each time the previous checkpoint is whole (its
// checksum holds) and the run resumes from it.
TEST_F(Reliability, KillAtAnyMomentLeavesALoadableCheckpoint) {
  const std::string t = text();
  const fs::path run = dir_ / "run";
  std::mt19937 rng(5);
  int64_t last_step = 0;
  for (int k = 0; k < 20; ++k) {
    SCOPED_TRACE("kill " + std::to_string(k));
    std::vector<std::string> args =
        k == 0 ? cat({"train", t, "--out", run.string(), "--steps", "100000000", "--eval-every",
                      "1", "--sample-every", "0"},
                     kSmall)
               : std::vector<std::string>{"train",     "--resume",  run.string(), "--steps",
                                          "100000000", "--threads", "1"};
    const int64_t before = fs::exists(run / "metrics.jsonl") ? steps_logged(run) : 0;
    Child c = start(args);
    ASSERT_TRUE(wait_for_steps(run, before + 3));
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int>(0, 5000)(rng)));
    ::kill(c.pid, SIGKILL);
    Proc r = finish(c);
    ASSERT_TRUE(r.signaled) << describe(r);
    const int64_t step = progress(run / "latest.safetensors")["step"];
    EXPECT_GT(step, last_step) << "the checkpoint did not move on";
    last_step = step;
  }
  // The temporary files of the killed writes are cleared by the next run.
  Proc r = unroll({"train", "--resume", run.string(), "--steps", std::to_string(last_step + 5),
                   "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos)
        << "left behind: " << e.path();
}

// A step whose arithmetic is not finite (injected: the carried state becomes
// NaN) stops training with a message that names the step and the remedies;
// the checkpoint of the last evaluation stays as it was.
TEST_F(Reliability, NonFiniteStepStopsAndKeepsTheLastCheckpoint) {
  const std::string t = text();
  const fs::path run = dir_ / "run";
  Proc r = run_program(
      UNROLL_BIN,
      cat({"train", t, "--out", run.string(), "--steps", "20", "--eval-every", "5"}, kSmall), dir_,
      io_, 120, {"UNROLL_TEST_NAN_STEPS=7"});
  expect_clean_error(r, {"step 7", "not finite", "--lr", "--clip", "--on-nan skip",
                         "the last checkpoint", "kept"});
  // Before the first checkpoint, the message says there is none.
  Proc early = run_program(
      UNROLL_BIN,
      cat({"train", t, "--out", (dir_ / "early").string(), "--steps", "20", "--eval-every", "10"},
          kSmall),
      dir_, io_, 120, {"UNROLL_TEST_NAN_STEPS=3"});
  expect_clean_error(early, {"step 3", "no checkpoint was written yet"});
  EXPECT_EQ(progress(run / "latest.safetensors")["step"], 5);
  Proc s = unroll({"sample", (run / "latest.safetensors").string(), "-n", "20", "--seed", "1"});
  EXPECT_EQ(s.code, 0) << describe(s);
}

// --on-nan skip: the bad batches are dropped and counted (in the log, the
// metrics and the checkpoint), training goes on, and the parameters match a
// run that never met them except for those batches' updates: finite.
TEST_F(Reliability, OnNanSkipDropsTheBatchAndCountsIt) {
  const std::string t = text();
  const fs::path run = dir_ / "run";
  Proc r = run_program(UNROLL_BIN,
                       cat({"train", t, "--out", run.string(), "--steps", "12", "--eval-every", "6",
                            "--on-nan", "skip"},
                           kSmall),
                       dir_, io_, 120, {"UNROLL_TEST_NAN_STEPS=3,4,9"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (int s : {3, 4, 9})
    EXPECT_TRUE(contains(
        r.out, "step " + std::to_string(s) + ": loss or gradient not finite, batch skipped"))
        << describe(r);
  EXPECT_TRUE(contains(r.out, "3 batches skipped")) << describe(r);
  auto p = progress(run / "latest.safetensors");
  EXPECT_EQ(p["step"], 12);
  EXPECT_EQ(p["skipped_batches"], 3);
  Proc info = unroll({"info", (run / "latest.safetensors").string()});
  EXPECT_TRUE(contains(info.out, "skipped     3 batches")) << describe(info);
  int skips = 0;
  for (auto& l : split_lines(read_file(run / "metrics.jsonl")))
    skips += nlohmann::json::parse(l)["kind"] == "skip";
  EXPECT_EQ(skips, 3);
  double loss = 0;
  Proc e = unroll({"eval", (run / "latest.safetensors").string(), t});
  ASSERT_TRUE(eval_value(e.out, "loss", &loss)) << describe(e);
  EXPECT_TRUE(std::isfinite(loss) && loss < 4.5) << describe(e);
  // The count goes on across a resume; a model that is never finite again
  // stops after 100 batches in a row.
  std::string all;
  for (int s = 13; s <= 200; ++s) {
    if (!all.empty()) all += ',';
    all += std::to_string(s);
  }
  Proc again = run_program(UNROLL_BIN,
                           {"train", "--resume", run.string(), "--steps", "200", "--threads", "1"},
                           dir_, io_, 120, {"UNROLL_TEST_NAN_STEPS=" + all});
  EXPECT_NE(again.code, 0) << describe(again);
  EXPECT_TRUE(contains(again.err, "after 100 skipped batches in a row")) << describe(again);
  EXPECT_TRUE(contains(again.out, "103 batches so far")) << describe(again);
}

// classify train: Ctrl-C stops after the step, saves latest.safetensors and
// exits 130, and --resume goes on from there; a non-finite batch is skipped
// with --on-nan skip.
TEST_F(Reliability, ClassifierInterruptAndSkip) {
  const std::string f = file("ex.tsv", labelled_noise(3));
  const fs::path run = dir_ / "run";
  Child c = start({"classify", "train", f, "--out", run.string(), "--hidden", "64", "--batch", "4",
                   "--epochs", "1000", "--patience", "0", "--threads", "1"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(run / "metrics.jsonl") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(
        std::chrono::milliseconds(5));  // training has begun: signals are caught
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(c.pid, SIGINT);
  Proc r = finish(c);
  EXPECT_FALSE(r.signaled) << describe(r);
  EXPECT_EQ(r.code, 130) << describe(r);
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("interrupted at step \\d+ in epoch \\d+ \\(Ctrl-C\\): saved")))
      << describe(r);
  EXPECT_TRUE(fs::exists(run / "latest.safetensors")) << listing(run);
  // The message names the command that continues the run; it does, for five more steps.
  std::smatch at;
  ASSERT_TRUE(std::regex_search(r.out, at, std::regex("interrupted at step (\\d+)"))) << r.out;
  EXPECT_TRUE(contains(r.out, "continue with: unroll classify train --resume")) << describe(r);
  const std::string more = std::to_string(std::stoll(at[1]) + 5);
  Proc resumed =
      unroll({"classify", "train", "--resume", run.string(), "--steps", more, "--threads", "1"});
  ASSERT_EQ(resumed.code, 0) << describe(resumed);
  EXPECT_TRUE(contains(resumed.out, "done: " + more + " steps")) << describe(resumed);

  const fs::path run2 = dir_ / "run2";
  Proc s = run_program(UNROLL_BIN,
                       {"classify", "train", f, "--out", run2.string(), "--hidden", "8", "--epochs",
                        "1", "--on-nan", "skip", "--threads", "1"},
                       dir_, io_, 120, {"UNROLL_TEST_NAN_STEPS=2,5"});
  ASSERT_EQ(s.code, 0) << describe(s);
  EXPECT_TRUE(
      contains(s.out, "step 5: loss or gradient not finite, batch skipped (2 batches so far)"))
      << describe(s);
  Proc stop = run_program(UNROLL_BIN,
                          {"classify", "train", f, "--out", (dir_ / "run3").string(), "--hidden",
                           "8", "--epochs", "1", "--threads", "1"},
                          dir_, io_, 120, {"UNROLL_TEST_NAN_STEPS=2"});
  expect_clean_error(stop, {"step 2", "not finite", "--on-nan skip"});
}

// A damaged latest.safetensors: the resume says what is wrong, and how to go
// on from best.safetensors instead.
TEST_F(Reliability, DamagedLatestCheckpointPointsToTheBestOne) {
  const std::string t = text();
  const fs::path run = dir_ / "run";
  ASSERT_NO_FATAL_FAILURE(train_ten_steps(t, run));
  const std::string bytes = read_file(run / "latest.safetensors");
  write_file(run / "latest.safetensors", bytes.substr(0, bytes.size() / 2));
  Proc resume = unroll({"train", "--resume", run.string(), "--steps", "20", "--threads", "1"});
  expect_clean_error(resume, {"latest.safetensors", "cp " + (run / "best.safetensors").string()});
  fs::copy_file(run / "best.safetensors", run / "latest.safetensors",
                fs::copy_options::overwrite_existing);
  Proc again = unroll({"train", "--resume", run.string(), "--steps", "20", "--threads", "1"});
  EXPECT_EQ(again.code, 0) << describe(again);
}

// A full disk during training (a file-size limit, as prlimit sets it, makes
// writes past it fail like a full disk): the failed checkpoint write is
// reported with the file and the reason, and the previous checkpoint stays.
TEST_F(Reliability, DiskFullDuringTrainingIsReportedAndTheCheckpointKept) {
  const std::string t = text();
  const fs::path run = dir_ / "run";
  ASSERT_NO_FATAL_FAILURE(train_ten_steps(t, run));
  const std::string before = read_file(run / "latest.safetensors");
  // Room for the small files (settings, metrics, report) but not a checkpoint.
  const std::string limit = std::to_string(before.size() / 2);
  Proc full = run_program("/usr/bin/prlimit",
                          {"--fsize=" + limit, UNROLL_BIN, "train", "--resume", run.string(),
                           "--steps", "20", "--threads", "1"},
                          dir_, io_);
  EXPECT_FALSE(full.signaled) << "killed (SIGXFSZ?)\n" << describe(full);
  EXPECT_EQ(full.code, 1) << describe(full);
  EXPECT_TRUE(contains(full.err, "unroll: error: cannot write")) << describe(full);
  EXPECT_TRUE(contains(full.err, "File too large")) << describe(full);
  EXPECT_TRUE(read_file(run / "latest.safetensors") == before) << "the checkpoint changed";
  for (auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos)
        << "left behind: " << e.path();
}

// A run folder that became read-only: the resume cannot write and says so
// before training; the checkpoint there is untouched. Run as the unprivileged
// user 'nobody' (setpriv), since root writes into any folder.
TEST_F(Reliability, ReadOnlyRunFolderIsReportedAndTheCheckpointKept) {
  const std::string t = text();
  const fs::path run = dir_ / "run";
  ASSERT_NO_FATAL_FAILURE(train_ten_steps(t, run));
  const std::string before = read_file(run / "latest.safetensors");
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    ASSERT_TRUE(fs::exists("/usr/bin/setpriv")) << "setpriv (util-linux) is needed to drop root";
    prefix = {"--reuid=65534", "--regid=65534", "--clear-groups", UNROLL_BIN};
    // nobody may read the text and the run, and go through the test's folder.
    ::chmod(dir_.c_str(), 0755);
    ::chmod(t.c_str(), 0644);
    for (auto& e : fs::directory_iterator(run)) ::chmod(e.path().c_str(), 0644);
  }
  ASSERT_EQ(::chmod(run.c_str(), 0555), 0);
  const std::vector<std::string> args = {"train", "--resume",  run.string(), "--steps",
                                         "20",    "--threads", "1"};
  Proc ro =
      prefix.empty() ? unroll(args) : run_program("/usr/bin/setpriv", cat(prefix, args), dir_, io_);
  ::chmod(run.c_str(), 0755);
  EXPECT_NE(ro.code, 0) << describe(ro);
  EXPECT_TRUE(contains(ro.err, "unroll: error: cannot write")) << describe(ro);
  EXPECT_TRUE(contains(ro.err, run.string())) << describe(ro);
  EXPECT_TRUE(contains(lower(ro.err), "permission denied")) << describe(ro);
  EXPECT_TRUE(read_file(run / "latest.safetensors") == before) << "the checkpoint changed";
  EXPECT_EQ(progress(run / "latest.safetensors")["step"], 10);
}

}  // namespace

// A run folder has one writer (issue 20): while a run trains, a second `train --resume`
// of it, a second fresh run into it, and a classifier trained into it are refused with
// one line that names the holder's process, and the run's metrics.jsonl goes on intact.
// When the holder dies of SIGKILL the kernel frees the lock and the resume proceeds.
TEST_F(Reliability, RunFolderHasOneWriterAndAKilledHolderFreesIt) {
  const std::string t = text();
  const fs::path run = dir_ / "run";
  Child c = start(cat({"train", t, "--out", run.string(), "--steps", "100000000", "--eval-every",
                       "2", "--sample-every", "0"},
                      kSmall));
  ASSERT_TRUE(wait_for_steps(run, 3)) << "the run did not get going";
  ASSERT_TRUE(fs::exists(run / "latest.safetensors"));
  const std::string pid = std::to_string(c.pid);
  Proc r = unroll({"train", "--resume", run.string(), "--steps", "100000000", "--threads", "1"});
  expect_clean_error(r, {"in use", "process " + pid, "kill " + pid});
  Proc f = unroll(cat({"train", t, "--out", (run / "inner").string(), "--steps", "5"}, kSmall));
  EXPECT_EQ(f.code, 0) << "a folder inside the run is another folder\n" << describe(f);
  const std::string labelled =
      file("l.tsv", "a\tgood fun\nb\tbad dull\na\tfine day\nb\tawful day\n");
  Proc k = unroll({"classify", "train", labelled, "--out", run.string(), "--epochs", "1",
                   "--hidden", "8", "--threads", "1"});
  expect_clean_error(k, {"in use", "process " + pid});
  // The first run is still writing its record, step after step.
  const int64_t logged = steps_logged(run);
  ASSERT_TRUE(wait_for_steps(run, logged + 3)) << "the first run stopped logging";
  ::kill(c.pid, SIGKILL);
  Proc killed = finish(c);
  ASSERT_TRUE(killed.signaled) << describe(killed);
  const int64_t step = progress(run / "latest.safetensors")["step"];
  Proc again = unroll(
      {"train", "--resume", run.string(), "--steps", std::to_string(step + 3), "--threads", "1"});
  EXPECT_EQ(again.code, 0) << "the lock of a killed process must be free\n" << describe(again);
}

// The classifier's loop takes the same lock.
TEST_F(Reliability, ClassifierRunFolderHasOneWriter) {
  const std::string f = file("ex.tsv", labelled_noise(4));
  const fs::path run = dir_ / "run";
  const std::vector<std::string> args = {
      "classify", "train",    f,      "--out",      run.string(), "--hidden",  "64", "--batch",
      "4",        "--epochs", "1000", "--patience", "0",          "--threads", "1"};
  Child c = start(args);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(run / "metrics.jsonl") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(fs::exists(run / "metrics.jsonl")) << "the classifier did not start";
  Proc second = unroll(args);
  expect_clean_error(second, {"in use", "process " + std::to_string(c.pid)});
  ::kill(c.pid, SIGKILL);
  finish(c);
}

// Data-parallel training over MPI (issue 10), with real `mpirun` jobs of the
// real program: 2 ranks with B/2 streams each reach the parameters of 1 rank
// with B streams; a checkpoint of N ranks resumes on M; a killed rank ends the
// job instead of hanging it; misuse gives one clear error. Built (label mpi)
// when CMake finds MPI; scripts/test.sh installs it and requires it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "unroll/train/checkpoint.h"

using namespace clitest;

namespace {

const std::string kMpirun = "/usr/bin/mpirun";

class Mpi : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ASSERT_TRUE(fs::exists(kMpirun))
        << "mpirun is missing: apt-get install openmpi-bin (scripts/setup.sh --tests)";
    text_ =
        file("en.txt", english_text(60));  // about 20 chunks of 8 x 12: epochs end within the runs
  }
  // `unroll ARGS` on n ranks (as root, more ranks than cores allowed), with
  // `env` ("NAME=value") passed to every rank.
  Proc mpirun(int n, const std::vector<std::string>& args,
              const std::vector<std::string>& env = {}) {
    std::vector<std::string> pass;
    for (auto& e : env) pass.insert(pass.end(), {"-x", e.substr(0, e.find('='))});
    return run_program(
        kMpirun,
        cat(cat({"--allow-run-as-root", "--oversubscribe", "-np", std::to_string(n)}, pass),
            cat({UNROLL_BIN}, args)),
        dir_, io_, 300, env);
  }
  std::vector<std::string> train_args(const fs::path& out, const std::string& cell, int steps,
                                      int eval_every = 10) {
    return {"train",          text_,
            "--out",          out.string(),
            "--cell",         cell,
            "--hidden",       "24",
            "--layers",       "2",
            "--batch",        "8",
            "--seq",          "12",
            "--steps",        std::to_string(steps),
            "--eval-every",   std::to_string(eval_every),
            "--sample-every", "0",
            "--threads",      "1"};
  }
  std::string text_;
};

// The largest difference between two checkpoints' parameters, optimizer
// moments and carried states, relative to the largest magnitude.
double max_relative_difference(const fs::path& a, const fs::path& b) {
  unroll::Checkpoint x = unroll::load_checkpoint(a.string()),
                     y = unroll::load_checkpoint(b.string());
  double diff = 0, scale = 1e-12;
  auto compare = [&](const auto& u, const auto& v, const char* what) {
    EXPECT_EQ(u.size(), v.size()) << what;
    for (size_t i = 0; i < std::min(u.size(), v.size()); ++i) {
      diff = std::max(diff, double(std::fabs(u[i] - v[i])));
      scale = std::max(scale, double(std::fabs(u[i])));
    }
  };
  compare(x.model->params, y.model->params, "parameters");
  compare(x.opt_m, y.opt_m, "optimizer.m");
  const auto* xl = dynamic_cast<const unroll::LanguageModel<float>*>(x.model.get());
  const auto* yl = dynamic_cast<const unroll::LanguageModel<float>*>(y.model.get());
  EXPECT_EQ(!xl, !yl) << "one checkpoint holds a language model, the other not";
  if (xl && yl) {
    compare(xl->state_h, yl->state_h, "state.h");
    compare(xl->state_c, yl->state_c, "state.c");
  }
  EXPECT_EQ(x.progress["step"], y.progress["step"]);
  return diff / scale;
}

// The equivalence that defines data parallelism here: the summed gradient of
// 2 × 4 streams is the gradient of 8, so after 30 steps (with checkpoints,
// state carried across chunks, an epoch boundary, and the first batch of the
// second epoch skipped as non-finite) the two runs agree to float rounding,
// for LSTM and GRU.
TEST_F(Mpi, TwoRanksWithHalfTheStreamsEqualOneRank) {
  Proc probe = unroll(train_args(dir_ / "probe", "lstm", 1));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(probe.out, m, std::regex("(\\d+) chunks per epoch")))
      << describe(probe);
  const int chunks = std::stoi(m[1]);
  ASSERT_LT(chunks, 25) << "the runs should cross an epoch";
  const std::vector<std::string> nan = {"UNROLL_TEST_NAN_STEPS=" + std::to_string(chunks + 1)};
  for (const std::string cell : {"lstm", "gru"}) {
    SCOPED_TRACE(cell);
    const fs::path one = dir_ / ("one-" + cell), two = dir_ / ("two-" + cell);
    Proc a = run_program(UNROLL_BIN, cat(train_args(one, cell, 30), {"--on-nan", "skip"}), dir_,
                         io_, 300, nan);
    ASSERT_EQ(a.code, 0) << describe(a);
    Proc b = mpirun(2, cat(train_args(two, cell, 30), {"--on-nan", "skip"}), nan);
    ASSERT_EQ(b.code, 0) << describe(b);
    for (const Proc* r : {&a, &b})
      EXPECT_TRUE(
          contains(r->out, "step " + std::to_string(chunks + 1) + ": loss or gradient not finite"))
          << describe(*r);
    Proc info = unroll({"info", "--json", (two / "latest.safetensors").string()});
    EXPECT_GE(nlohmann::json::parse(info.out)["progress"]["epoch"].get<int>(), 2) << info.out;
    EXPECT_TRUE(contains(b.out, "2 ranks of 4 streams")) << describe(b);
    // Rank 0 alone speaks: the lines of one rank, and the all-reduce's share.
    EXPECT_EQ(std::count(b.out.begin(), b.out.end(), '\n'),
              std::count(a.out.begin(), a.out.end(), '\n') + 1)
        << describe(a) << describe(b);
    EXPECT_TRUE(contains(b.out, "2 ranks: the gradient all-reduce took")) << describe(b);
    const double d =
        max_relative_difference(one / "latest.safetensors", two / "latest.safetensors");
    EXPECT_LT(d, 1e-4) << "parameters, optimizer state or carried state differ";
    EXPECT_GT(d, 0.0) << "suspiciously identical: is the second run really on 2 ranks?";
    std::smatch ma, mb;
    const std::regex ev("eval step 30: val loss ([0-9.]+)");
    ASSERT_TRUE(std::regex_search(a.out, ma, ev) && std::regex_search(b.out, mb, ev))
        << describe(b);
    EXPECT_NEAR(std::stod(ma[1]), std::stod(mb[1]), 2e-4);
  }
}

// Every task trains data-parallel through the one run loop: a classifier
// (bidirectional, with an odd batch that leaves one rank a smaller share), a
// tagger and a conditional model on 2 ranks, each with half of every batch,
// end where one rank ends, to float rounding; a run begun on 2 ranks resumes
// on 1.
TEST_F(Mpi, EveryTaskOnTwoRanksEqualsOneRank) {
  std::string labelled, tagged;
  for (int i = 0; i < 90; ++i) {
    const bool a = i % 2;
    labelled += std::string(a ? "vowel\t" : "other\t");
    for (int k = 0; k < 3 + i % 6; ++k) labelled += (a ? "aeiou" : "kxzqw")[(i * 7 + k * 3) % 5];
    labelled += "\n";
    for (int t = 0; t < 3 + i % 5; ++t)
      tagged += std::string((i + t) % 3 ? "cat\tNOUN" : "the\tDET") + "\n";
    tagged += "\n";
  }
  const std::string ex = file("ex.tsv", labelled), tags = file("tags.tsv", tagged);
  const std::vector<std::vector<std::string>> tasks = {
      {"classify", "train", ex, "--bidirectional", "--batch", "7"},
      {"tag", "train", tags, "--batch", "8"},
      {"conditional", ex, "--batch", "8"}};
  for (const auto& task : tasks) {
    SCOPED_TRACE(task[0]);
    const std::vector<std::string> opts = {"--hidden", "12", "--epochs", "2", "--threads", "1"};
    const fs::path one = dir_ / (task[0] + "-one"), two = dir_ / (task[0] + "-two");
    Proc a = unroll(cat(cat(task, {"--out", one.string()}), opts));
    ASSERT_EQ(a.code, 0) << describe(a);
    Proc b = mpirun(2, cat(cat(task, {"--out", two.string()}), opts));
    ASSERT_EQ(b.code, 0) << describe(b);
    EXPECT_TRUE(contains(b.out, "2 ranks share every batch")) << describe(b);
    EXPECT_TRUE(contains(b.out, "best checkpoint:")) << describe(b);
    const double d =
        max_relative_difference(one / "latest.safetensors", two / "latest.safetensors");
    EXPECT_LT(d, 1e-4) << "parameters or optimizer state differ";
    EXPECT_GT(d, 0.0) << "suspiciously identical: is the second run really on 2 ranks?";
  }
  // Two epochs on 2 ranks, a third on 1: as three on 1.
  const std::vector<std::string> opts = {"--hidden", "12", "--threads", "1"};
  Proc a = unroll(cat(
      {"tag", "train", tags, "--out", (dir_ / "three").string(), "--epochs", "3", "--batch", "8"},
      opts));
  ASSERT_EQ(a.code, 0) << describe(a);
  Proc r = unroll(
      {"tag", "train", "--resume", (dir_ / "tag-two").string(), "--epochs", "3", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_LT(max_relative_difference(dir_ / "three" / "latest.safetensors",
                                    dir_ / "tag-two" / "latest.safetensors"),
            1e-4);
  // config.json records the ranks of the start and of each resume.
  const auto cfg = nlohmann::json::parse(read_file(dir_ / "tag-two" / "config.json"));
  EXPECT_EQ(cfg["ranks"], 2) << cfg.dump(2);
  ASSERT_EQ(cfg["resumes"].size(), 1u) << cfg.dump(2);
  EXPECT_EQ(cfg["resumes"][0]["ranks"], 1) << cfg.dump(2);
  // A batch smaller than the ranks that share it is refused before any step.
  Proc small = mpirun(2, {"classify", "train", ex, "--out", (dir_ / "small").string(), "--batch",
                          "1", "--hidden", "4", "--threads", "1"});
  EXPECT_NE(small.code, 0) << describe(small);
  EXPECT_TRUE(contains(small.err, "--batch 1 is smaller than the 2 ranks")) << describe(small);
}

// A checkpoint written by 2 ranks resumes on 1, and one written by 1 resumes
// on 2: both end where an uninterrupted single-rank run ends.
TEST_F(Mpi, CheckpointsMoveBetweenRankCounts) {
  const fs::path straight = dir_ / "straight", two_then_one = dir_ / "two-one",
                 one_then_two = dir_ / "one-two";
  ASSERT_EQ(unroll(train_args(straight, "lstm", 40)).code, 0);
  Proc r = mpirun(2, train_args(two_then_one, "lstm", 20));
  ASSERT_EQ(r.code, 0) << describe(r);
  r = unroll({"train", "--resume", two_then_one.string(), "--steps", "40", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = unroll(train_args(one_then_two, "lstm", 20));
  ASSERT_EQ(r.code, 0) << describe(r);
  r = mpirun(2, {"train", "--resume", one_then_two.string(), "--steps", "40", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_LT(
      max_relative_difference(straight / "latest.safetensors", two_then_one / "latest.safetensors"),
      1e-4);
  EXPECT_LT(
      max_relative_difference(straight / "latest.safetensors", one_then_two / "latest.safetensors"),
      1e-4);
  // 8 streams do not split over 3 ranks: one clear line, from rank 0.
  Proc three =
      mpirun(3, {"train", "--resume", straight.string(), "--steps", "50", "--threads", "1"});
  EXPECT_NE(three.code, 0);
  EXPECT_TRUE(contains(three.err, "unroll: error: --batch 8 does not split evenly over 3 ranks"))
      << describe(three);
}

// Reduce-on-plateau: rank 0 alone validates, so every rank must take its
// cuts of the learning rate. A rate far too high makes validation stall and
// the rate fall several times; the 2-rank run cuts at the same steps and ends
// where the 1-rank run ends (a rank that kept the full rate would pull the
// summed gradients, and so rank 0's parameters, away).
TEST_F(Mpi, PlateauCutsReachEveryRank) {
  const fs::path one = dir_ / "one", two = dir_ / "two";
  const std::vector<std::string> plateau = {"--lr",       "0.05", "--lr-schedule", "plateau",
                                            "--lr-decay", "0.5",  "--patience",    "1",
                                            "--clip",     "0"};
  Proc a = unroll(cat(train_args(one, "lstm", 40, 2), plateau));
  ASSERT_EQ(a.code, 0) << describe(a);
  Proc b = mpirun(2, cat(train_args(two, "lstm", 40, 2), plateau));
  ASSERT_EQ(b.code, 0) << describe(b);
  auto cuts = [&](const fs::path& run) {
    Proc info = unroll({"info", "--json", (run / "latest.safetensors").string()});
    return nlohmann::json::parse(info.out)["progress"].value("plateau_cuts", -1);
  };
  EXPECT_GE(cuts(one), 2) << "the rate should have been cut: " << describe(a);
  EXPECT_EQ(cuts(one), cuts(two)) << describe(a) << describe(b);
  EXPECT_LT(max_relative_difference(one / "latest.safetensors", two / "latest.safetensors"), 1e-3);
}

// A rank killed mid-run ends the whole job within seconds, with mpirun's
// message naming it, and the run folder keeps a loadable checkpoint.
TEST_F(Mpi, AKilledRankEndsTheJobAndTheCheckpointStays) {
  const fs::path run = dir_ / "run";
  auto args = train_args(run, "gru", 100000000);
  Child c =
      spawn(kMpirun, cat({"--allow-run-as-root", "--oversubscribe", "-np", "2", UNROLL_BIN}, args),
            dir_, io_);
  // Wait for a checkpoint, then find rank 1 by its environment and kill it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(run / "latest.safetensors") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(run / "latest.safetensors"));
  pid_t victim = -1;
  for (auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string env = read_file(e.path() / "environ");
    const std::string cmd = read_file(e.path() / "cmdline");
    if (contains(cmd, run.string()) && contains(env, std::string("OMPI_COMM_WORLD_RANK=1") + '\0'))
      victim = pid_t(std::stol(name));
  }
  ASSERT_GT(victim, 0) << "rank 1 not found";
  const auto killed_at = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  Proc r = finish(c, 60);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_FALSE(r.timed_out) << "the job hung after a rank died\n" << describe(r);
  EXPECT_LT(took, 30.0);
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "rank 1") && contains(r.err, "signal 9")) << describe(r);
  Proc info = unroll({"info", (run / "latest.safetensors").string()});
  EXPECT_EQ(info.code, 0) << describe(info);
}

// Ctrl-C on mpirun: it passes SIGTERM to every rank, they stop after the same
// step, rank 0 saves there, and the run resumes.
TEST_F(Mpi, CtrlCOnMpirunSavesTheStepReached) {
  const fs::path run = dir_ / "run";
  // Little output: mpirun stops passing it on while it ends the job, and a
  // rank blocked on a full pipe could not save before SIGKILL.
  // Rank 0 has mpirun's default second between SIGTERM and SIGKILL to save.
  Child c = spawn(kMpirun,
                  cat({"--allow-run-as-root", "--oversubscribe", "-np", "2", UNROLL_BIN},
                      cat(train_args(run, "lstm", 100000000, 100), {"--print-every", "100"})),
                  dir_, io_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && !fs::exists(run / "latest.safetensors"))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(fs::exists(run / "latest.safetensors")) << describe(finish(c, 1));
  ::kill(c.pid, SIGINT);
  Proc r = finish(c, 60);
  EXPECT_FALSE(r.timed_out) << describe(r);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("interrupted at step (\\d+)"))) << describe(r);
  // Rank 0 alone reports it.
  size_t said = 0;
  for (auto& l : split_lines(r.out)) said += contains(l, "interrupted at step");
  EXPECT_EQ(said, 1u) << describe(r);
  // The command that continues it runs it on the same ranks.
  EXPECT_TRUE(contains(r.out, "continue with: mpirun -np 2 unroll train --resume")) << describe(r);
  Proc info = unroll({"info", "--json", (run / "latest.safetensors").string()});
  ASSERT_EQ(info.code, 0) << describe(info);
  EXPECT_EQ(nlohmann::json::parse(info.out)["progress"]["step"], std::stoll(m[1]));
  Proc again = unroll({"train", "--resume", run.string(), "--steps",
                       std::to_string(std::stoll(m[1]) + 5), "--threads", "1"});
  EXPECT_EQ(again.code, 0) << describe(again);
}

// Only training runs on several ranks; other commands say so once.
TEST_F(Mpi, OtherCommandsRefuseSeveralRanks) {
  Proc r = mpirun(2, {"info", "x.safetensors"});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err,
                       "only training (unroll train, classify train, tag train, "
                       "conditional) runs on several MPI ranks"))
      << describe(r);
  size_t ours = 0;  // mpirun adds its own note about the exit code
  for (auto& l : split_lines(r.err)) ours += l.rfind("unroll:", 0) == 0;
  EXPECT_EQ(ours, 1u) << describe(r);
  // One rank under mpirun is an ordinary run.
  Proc one = mpirun(1, {"hello"});
  EXPECT_EQ(one.code, 0) << describe(one);
}

}  // namespace

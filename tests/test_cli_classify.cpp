// End-to-end tests of `unroll classify` and `unroll tag` (tiny models on data
// the tests write): train, eval (text, JSON, page), predict, info, and clean
// errors for bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "unroll/train/checkpoint.h"

using namespace clitest;

namespace {

// Two made-up "languages" with disjoint letters: easy to tell apart.
void write_names(const fs::path& dir) {
  fs::create_directories(dir);
  std::string a, b;
  const std::string la = "aeiou", lb = "kxzqw";
  for (int i = 0; i < 60; ++i) {
    for (int k = 0; k < 3 + i % 4; ++k) a += la[(i * 7 + k * 3) % 5], b += lb[(i * 5 + k * 2) % 5];
    a += "\n", b += "\n";
  }
  write_file(dir / "Vowelish.txt", a);
  write_file(dir / "Consonantish.txt", b);
}

const std::vector<std::string> kSmall = {"--hidden", "16",   "--epochs",  "6",
                                         "--lr",     "0.02", "--threads", "1"};

TEST_F(CliTest, ClassifyTrainEvalPredictInfo) {
  write_names(dir_ / "names");
  const fs::path out = dir_ / "run";
  Proc r = unroll(cat({"classify", "train", (dir_ / "names").string(), "--out", out.string(),
                       "--cell", "gru", "--val-fraction", "0.25", "--seed", "3"},
                      kSmall));
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "90 training and 30 validation examples")) << describe(r);
  EXPECT_TRUE(contains(r.out, "confusion matrix")) << describe(r);
  ASSERT_TRUE(fs::exists(out / "best.safetensors")) << listing(out);
  const std::string best = (out / "best.safetensors").string();
  // The run's record: one eval line per epoch, each with validation scores.
  int evals = 0;
  for (auto& l : split_lines(read_file(out / "metrics.jsonl"))) {
    auto m = nlohmann::json::parse(l);
    if (m["kind"] == "eval") {
      EXPECT_EQ(m["epoch"], ++evals) << l;
      EXPECT_TRUE(m.contains("val_accuracy")) << l;
    }
  }
  EXPECT_EQ(evals, 6);
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "config.json"))["model"]["cell"], "gru");

  r = unroll({"classify", "eval", best, "--validation", "--json", "--html",
              (dir_ / "eval.html").string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["examples"], 30);
  EXPECT_GE(j["accuracy"].get<double>(), 0.9) << r.out;
  EXPECT_EQ(j["classes"], nlohmann::json({"Consonantish", "Vowelish"}));
  const std::string page = read_file(dir_ / "eval.html");
  EXPECT_TRUE(contains(page, "Confusion matrix"));
  EXPECT_TRUE(contains(page, "Consonantish"));

  write_file(dir_ / "new.txt", "aeae\nkxkx\n\nuoiu\n");
  r = unroll({"classify", "predict", best, (dir_ / "new.txt").string(), "--all"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const auto lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;  // the blank line stays blank
  EXPECT_EQ(lines[2], "") << r.out;
  EXPECT_EQ(lines[0].rfind("Vowelish\t", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("Consonantish\t", 0), 0u) << lines[1];
  EXPECT_TRUE(contains(lines[1], "\tkxkx")) << lines[1];
  EXPECT_TRUE(contains(lines[1], "Vowelish:")) << lines[1];

  // Blank input lines stay blank, so the output lines up with the input; an
  // empty input prints nothing.
  write_file(dir_ / "gaps.txt", "aeae\n\n  \nkxkx\n");
  r = unroll({"classify", "predict", best, (dir_ / "gaps.txt").string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(split_lines(r.out).size(), 4u) << r.out;
  EXPECT_EQ(split_lines(r.out)[1], "") << r.out;
  write_file(dir_ / "empty.txt", "");
  r = unroll({"classify", "predict", best, (dir_ / "empty.txt").string()});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out, "");

  r = unroll({"info", best});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "classify")) << r.out;
  EXPECT_TRUE(contains(r.out, "Consonantish")) << r.out;
}

// --clip-mode value works for classifiers as for language models (issue 20): recorded in
// config.json, and clamping every gradient element to 1e-9 (below Adam's eps) stops learning
// that the same run without clipping does.
TEST_F(CliTest, ClassifyClipsByValue) {
  write_names(dir_ / "names");
  double loss[2] = {0, 0};
  for (int clipped = 0; clipped < 2; ++clipped) {
    const fs::path out = dir_ / ("run" + std::to_string(clipped));
    Proc r = unroll(cat(
        {"classify", "train", (dir_ / "names").string(), "--out", out.string(), "--val-fraction",
         "0.25", "--seed", "3", "--clip-mode", "value", "--clip", clipped ? "1e-9" : "0"},
        kSmall));
    ASSERT_EQ(r.code, 0) << describe(r);
    EXPECT_EQ(nlohmann::json::parse(read_file(out / "config.json"))["train"]["clip_mode"], "value");
    Proc e = unroll(
        {"classify", "eval", (out / "latest.safetensors").string(), "--validation", "--json"});
    ASSERT_EQ(e.code, 0) << describe(e);
    loss[clipped] = nlohmann::json::parse(e.out)["loss"];
  }
  EXPECT_LT(loss[0], 0.35) << "unclipped, the names are learnt";
  EXPECT_GT(loss[1], 0.6) << "clamped to 1e-9, nothing is learnt (chance: ln 2 = 0.69)";
  expect_clean_error(unroll({"classify", "train", (dir_ / "names").string(), "--out",
                             (dir_ / "x").string(), "--clip-mode", "max"}),
                     {"--clip-mode", "norm", "value"});
}

// `classify eval --validation` evaluates the examples the run validated on; a --val file
// edited since is refused (its numbers would not compare), and evaluating it by name works.
TEST_F(CliTest, EvalValidationRefusesAChangedValFile) {
  std::string train, val;
  for (int i = 0; i < 40; ++i) {
    train += std::string(i % 2 ? "v\t" : "c\t") +
             std::string(i % 2 ? "aeiou" : "kxzqw").substr(i % 3, 3) + "\n";
    if (i < 10)
      val += std::string(i % 2 ? "v\t" : "c\t") +
             std::string(i % 2 ? "uoiea" : "wqzxk").substr(i % 3, 2) + "\n";
  }
  const std::string tr = file("train.tsv", train), va = file("val.tsv", val);
  const fs::path out = dir_ / "run";
  Proc r = unroll(cat({"classify", "train", tr, "--val", va, "--out", out.string()}, kSmall));
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string best = (out / "best.safetensors").string();
  r = unroll({"classify", "eval", best, "--validation"});
  ASSERT_EQ(r.code, 0) << describe(r);
  write_file(va, val + "v\tae\n");
  expect_clean_error(unroll({"classify", "eval", best, "--validation"}),
                     {"val.tsv", "changed since the run trained"});
  r = unroll({"classify", "eval", best, va});
  EXPECT_EQ(r.code, 0) << describe(r);
}

TEST_F(CliTest, ClassifyBadInputIsACleanError) {
  const std::string bad = file("bad.tsv", "pos\tgood\nneg bad\n");
  Proc r = unroll(cat({"classify", "train", bad, "--out", (dir_ / "run").string()}, kSmall));
  expect_clean_error(r, {"bad.tsv:2", "no tab"}, dir_ / "run");
  const std::string one = file("one.tsv", "pos\tgood\npos\tfine\n");
  r = unroll(cat(
      {"classify", "train", one, "--out", (dir_ / "run").string(), "--val-fraction", "0"}, kSmall));
  expect_clean_error(r, {"only one label"}, dir_ / "run");
  // A language model is not a classifier.
  const std::string text = file("t.txt", english_text(20));
  train_ok(text, dir_ / "lm");
  r = unroll({"classify", "predict", (dir_ / "lm" / "latest.safetensors").string(), text});
  expect_clean_error(r, {"is a language model", "'unroll sample' or 'unroll eval'",
                         "not a classifier", "unroll classify train"});
  // Neither data nor --validation: says what to give.
  r = unroll({"classify", "eval", (dir_ / "lm" / "latest.safetensors").string()});
  expect_clean_error(r, {"nothing to evaluate", "--validation"});
  // Usage errors point to the subcommand's own help.
  r = unroll({"classify", "train", bad, "--no-such-option"});
  expect_clean_error(r, {"unroll classify train --help"});
  r = unroll({"classify", "eval", (dir_ / "lm" / "latest.safetensors").string(), "--validation",
              "--html", ""});
  expect_clean_error(r, {"--html needs a file name"});
}

TEST_F(CliTest, ClassifyEvalNamesUnknownLabels) {
  std::string data;
  for (int i = 0; i < 20; ++i) data += std::string(i % 2 ? "yes\tab" : "no\tba") + "\n";
  const std::string train = file("train.tsv", data);
  Proc r = unroll(cat({"classify", "train", train, "--out", (dir_ / "run").string()}, kSmall));
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string test = file("test.tsv", "yes\tab\nmaybe\tab\n");
  r = unroll({"classify", "eval", (dir_ / "run" / "latest.safetensors").string(), test});
  expect_clean_error(r, {"test.tsv:2", "unknown label 'maybe'", "no, yes"});
}

TEST_F(CliTest, TagTrainEvalPredict) {
  std::string data;
  for (int s = 0; s < 80; ++s) {
    for (int t = 0; t < 3 + s % 5; ++t)
      data += std::string((s + t) % 3 ? "cat\tNOUN" : "the\tDET") + "\n";
    data += "\n";
  }
  const std::string train = file("train.tsv", data);
  const fs::path out = dir_ / "run";
  Proc r = unroll({"tag", "train", train, "--out", out.string(), "--hidden", "16", "--epochs", "15",
                   "--batch", "8", "--lr", "0.02", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "2 tags")) << r.out;
  const std::string best = (out / "best.safetensors").string();
  r = unroll({"tag", "eval", best, "--validation"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "accuracy 100.00%")) << r.out;
  const std::string in = file("in.txt", "the\ncat\n\ncat\n");
  r = unroll({"tag", "predict", best, in});
  ASSERT_EQ(r.code, 0) << describe(r);
  const auto lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0].rfind("the\tDET\t", 0), 0u) << r.out;
  EXPECT_EQ(lines[1].rfind("cat\tNOUN\t", 0), 0u) << r.out;
  EXPECT_EQ(lines[2], "") << r.out;
  // A tagger is neither a classifier nor a language model.
  r = unroll({"classify", "eval", best, "--validation"});
  expect_clean_error(r, {"a tagger", "not a classifier"});
  r = unroll({"sample", best});
  expect_clean_error(r, {"a tagger", "tag predict", "not a language model"});
}

// --snapshot-every works for every task through the one run loop: a conditional language
// model's snapshots are checkpoints that `unroll sample --category` reads.
TEST_F(CliTest, ConditionalKeepsSnapshots) {
  write_names(dir_ / "names");
  const fs::path out = dir_ / "run";
  Proc r = unroll(cat({"conditional", (dir_ / "names").string(), "--out", out.string(), "--steps",
                       "4", "--snapshot-every", "2"},
                      kSmall));
  ASSERT_EQ(r.code, 0) << describe(r);
  for (const char* name : {"step-000000000", "step-000000002", "step-000000004"})
    EXPECT_TRUE(fs::exists(out / "snapshots" / (std::string(name) + ".safetensors"))) << name;
  EXPECT_FALSE(fs::exists(out / "snapshots" / "step-000000001.safetensors"));
  r = unroll({"sample", (out / "snapshots" / "step-000000004.safetensors").string(), "--category",
              "Vowelish", "--length", "5"});
  EXPECT_EQ(r.code, 0) << describe(r);
}

TEST_F(CliTest, ConditionalTrainAndSampleByCategory) {
  write_names(dir_ / "names");
  const fs::path out = dir_ / "run";
  Proc r = unroll(cat(
      {"conditional", (dir_ / "names").string(), "--out", out.string(), "--val-fraction", "0.2"},
      {"--hidden", "32", "--epochs", "15", "--lr", "0.02", "--threads", "1"}));
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "2 categories")) << r.out;
  const std::string best = (out / "best.safetensors").string();
  r = unroll(
      {"sample", best, "--category", "Vowelish", "--samples", "8", "--seed", "1", "-t", "0.5"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const auto lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), 8u) << r.out;
  size_t vowels = 0, letters = 0;
  for (auto& l : lines)
    for (char ch : l) letters += 1, vowels += std::string("aeiou").find(ch) != std::string::npos;
  EXPECT_GT(letters, 8u) << r.out;
  EXPECT_GE(double(vowels), 0.9 * double(letters)) << r.out;
  r = unroll(
      {"sample", best, "--category", "Consonantish", "--samples", "8", "--seed", "1", "-t", "0.5"});
  ASSERT_EQ(r.code, 0) << describe(r);
  vowels = letters = 0;
  for (auto& l : split_lines(r.out))
    for (char ch : l) letters += 1, vowels += std::string("aeiou").find(ch) != std::string::npos;
  EXPECT_LE(double(vowels), 0.1 * double(letters)) << r.out;
  r = unroll({"sample", best});
  expect_clean_error(r, {"conditional", "--category", "Consonantish, Vowelish"});
  r = unroll({"sample", best, "--category", "Klingon"});
  expect_clean_error(r, {"Klingon", "Consonantish, Vowelish"});
  r = unroll({"eval", best, (dir_ / "names" / "Vowelish.txt").string()});
  expect_clean_error(r, {"conditional language model", "sample --category"});
  r = unroll({"info", best});
  EXPECT_TRUE(contains(r.out, "conditional")) << r.out;
}

// Every task's run goes through the one run loop, so every task resumes:
// stopped after a few steps and continued with --resume, a classifier, a
// tagger and a conditional model end with the same weights and optimizer
// state, bit for bit, as a run that never stopped (stopped mid-epoch, so
// the resumed run must redraw the same batches).
TEST_F(CliTest, EveryTaskResumesBitForBit) {
  write_names(dir_ / "names");
  std::string tagged;
  for (int s = 0; s < 40; ++s) {
    for (int t = 0; t < 3 + s % 5; ++t)
      tagged += std::string((s + t) % 3 ? "cat\tNOUN" : "the\tDET") + "\n";
    tagged += "\n";
  }
  const std::string tags = file("tags.tsv", tagged);
  const std::string names = (dir_ / "names").string();
  const std::vector<std::vector<std::string>> tasks = {
      {"classify", "train", names, "--dropout", "0.2", "--bidirectional"},
      {"tag", "train", tags},
      {"conditional", names}};
  for (const auto& task : tasks) {
    SCOPED_TRACE(task[0]);
    const std::vector<std::string> opts = {"--hidden", "8",    "--epochs", "3",         "--batch",
                                           "8",        "--lr", "0.01",     "--threads", "1"};
    const fs::path whole = dir_ / (task[0] + "-whole"), parts = dir_ / (task[0] + "-parts");
    Proc a = unroll(cat(cat(task, {"--out", whole.string()}), opts));
    ASSERT_EQ(a.code, 0) << describe(a);
    Proc b = unroll(cat(cat(task, {"--out", parts.string(), "--steps", "7"}), opts));
    ASSERT_EQ(b.code, 0) << describe(b);
    EXPECT_TRUE(contains(b.out, "done: 7 steps")) << describe(b);
    const std::string verb = task[0] == "conditional" ? "" : "train";
    std::vector<std::string> resume = {task[0]};
    if (!verb.empty()) resume.push_back(verb);
    Proc c = unroll(cat(resume, {"--resume", parts.string(), "--epochs", "3", "--threads", "1"}));
    ASSERT_EQ(c.code, 0) << describe(c);
    EXPECT_TRUE(contains(c.out, "resuming '" + parts.string() + "' at step 7")) << describe(c);
    // latest.safetensors is bit for bit the same. (best.safetensors may not be: the first part
    // validated where it stopped, at step 7, which the uninterrupted run never did.)
    for (const char* name : {"latest.safetensors"}) {
      SCOPED_TRACE(name);
      const unroll::Checkpoint x = unroll::load_checkpoint((whole / name).string());
      const unroll::Checkpoint y = unroll::load_checkpoint((parts / name).string());
      EXPECT_EQ(x.progress["step"], y.progress["step"]);
      EXPECT_TRUE(std::equal(x.model->params.begin(), x.model->params.end(),
                             y.model->params.begin(), y.model->params.end()));
      EXPECT_TRUE(std::equal(x.opt_m.begin(), x.opt_m.end(), y.opt_m.begin(), y.opt_m.end()));
      EXPECT_TRUE(std::equal(x.opt_v.begin(), x.opt_v.end(), y.opt_v.begin(), y.opt_v.end()));
      EXPECT_EQ(x.opt_t, y.opt_t);
    }
    // metrics.jsonl goes on from the checkpoint: an eval record per epoch and
    // one where the first part stopped, no step twice.
    std::vector<int64_t> evals;
    for (auto& l : split_lines(read_file(parts / "metrics.jsonl")))
      if (nlohmann::json::parse(l)["kind"] == "eval")
        evals.push_back(nlohmann::json::parse(l)["step"].get<int64_t>());
    ASSERT_EQ(evals.size(), 4u) << read_file(parts / "metrics.jsonl");
    EXPECT_NE(std::find(evals.begin(), evals.end(), 7), evals.end());
    EXPECT_TRUE(std::is_sorted(evals.begin(), evals.end()) &&
                std::adjacent_find(evals.begin(), evals.end()) == evals.end());
    // What cannot change is refused, naming the option; so is a run of another task.
    Proc bad = unroll(cat(resume, {"--resume", parts.string(), "--hidden", "9"}));
    expect_clean_error(bad, {"--hidden", "cannot change on --resume"});
    // A new run into the folder is refused too: it holds a run.
    Proc fresh = unroll(cat(cat(task, {"--out", parts.string()}), opts));
    expect_clean_error(fresh, {"already holds a run", "--resume"});
    Proc other = unroll(task[0] == "tag"
                            ? std::vector<std::string>{"conditional", "--resume", parts.string()}
                            : std::vector<std::string>{"tag", "train", "--resume", parts.string()});
    const std::string verb_of_run = task[0] == "conditional" ? "conditional" : task[0] + " train";
    expect_clean_error(other, {"cannot resume", "continue it with unroll " + verb_of_run +
                                                    " --resume " + parts.string()});
  }
}

// A resume refuses data that changed: the training examples (tokens or
// labels) and the validation file, whose losses would not compare with the
// stored best. Given a checkpoint file instead of the folder, it says so.
TEST_F(CliTest, ClassifyResumeRefusesChangedData) {
  const std::string train = file("train.tsv", "a\taaa\nb\tbbb\na\taab\nb\tbba\n");
  const std::string val = file("val.tsv", "a\taa\nb\tbb\n");
  const fs::path run = dir_ / "run";
  Proc r = unroll({"classify", "train", train, "--val", val, "--out", run.string(), "--hidden", "4",
                   "--steps", "2", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  write_file(val, "a\taa\n");
  Proc v = unroll({"classify", "train", "--resume", run.string(), "--steps", "4"});
  expect_clean_error(v, {"validation examples", "val.tsv", "changed"});
  write_file(val, "a\taa\nb\tbb\n");
  write_file(train, "a\taaa\nb\tbbb\na\taab\nb\tbbb\n");
  Proc t = unroll({"classify", "train", "--resume", run.string(), "--steps", "4"});
  expect_clean_error(t, {"training examples", "changed"});
  fs::remove(train);
  Proc gone = unroll({"classify", "train", "--resume", run.string(), "--steps", "4"});
  expect_clean_error(gone, {"cannot resume", "its data", "train.tsv"});
  Proc file = unroll({"classify", "train", "--resume", (run / "latest.safetensors").string()});
  expect_clean_error(file, {"the run folder, not a checkpoint", "--resume"});
}

TEST_F(CliTest, ClassifyAndTagHelpListOptions) {
  const std::map<std::vector<std::string>, std::vector<std::string>> opts = {
      {{"classify", "train", "--help"},
       {"--bidirectional", "--summary", "--class-weights", "--val", "--val-fraction", "--patience",
        "--separator", "--level", "--epochs", "--threads"}},
      {{"classify", "eval", "--help"}, {"--validation", "--html", "--json"}},
      {{"classify", "predict", "--help"}, {"--all"}},
      {{"tag", "train", "--help"}, {"--val", "--epochs", "--hidden"}}};
  for (auto& [args, names] : opts) {
    Proc r = unroll(args);
    ASSERT_EQ(r.code, 0) << describe(r);
    for (auto& n : names)
      EXPECT_TRUE(contains(r.out, n)) << args[0] << " " << args[1] << " lacks " << n;
  }
}

}  // namespace

// Issue 26: bugs a hostile new user found, each reproduced as they reported
// it, with its neighbours (the same mistake in other commands).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_util.h"

using namespace clitest;

namespace {

class Hardening : public CliTest {
 protected:
  // Runs a shell command line in the test folder; "$U" is the unroll program.
  Proc shell(const std::string& command, int timeout_s = 120) {
    return run_program("/bin/sh", {"-c", "U='" + std::string(UNROLL_BIN) + "'; " + command}, dir_,
                       io_, timeout_s);
  }
  // A tiny model trained on `text` into dir_/name; returns its best checkpoint.
  std::string trained(const std::string& text, const std::string& name = "run",
                      const std::vector<std::string>& extra = {}) {
    const std::string f = file(name + ".txt", text);
    train_ok(f, dir_ / name, extra);
    return (dir_ / name / "best.safetensors").string();
  }
};

// 1. A user's regex probe crashed cells (std::regex recursed per character)
// or hung it ((a+)+$ backtracked for ever).
TEST_F(Hardening, CellsProbesWithLongMatchesAndEvilPatternsFinish) {
  const std::string ck = trained(english_text(100) + "ab\n");
  file("aaa.txt", std::string(30000, 'a') + "b\n");
  for (const char* probe : {"x=a+", "x=.*", "x=[a-z]+", "x=(a|b)+"}) {
    Proc r = unroll({"cells", ck, "--text", "aaa.txt", "--max-chars", "30001", "-o", "c.html",
                     "--probe", probe, "--threads", "1"});
    EXPECT_EQ(r.code, 0) << describe(r);
  }
  file("evil.txt", std::string(5000, 'a') + "b\n");
  Proc r = run_unroll({"cells", ck, "--text", "evil.txt", "-o", "e.html", "--probe", "evil=(a+)+$",
                       "--threads", "1"},
                      dir_, io_, 60);
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(r.timed_out);
  expect_clean_error(
      unroll({"cells", ck, "--text", "evil.txt", "-o", "e.html", "--probe", "bad=(a"}),
      {"bad", "(a", "RE2"});
}

// 2. --epochs 0 / --steps 0 on a resume trained without end; a new run took
// them as the 10-epoch default. Both now refuse a run with no limit at all.
TEST_F(Hardening, ZeroLimitsMeanTheSameOnANewRunAndAResume) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "run";
  const std::vector<std::string> small = {"--hidden", "16",    "--layers", "1",         "--batch",
                                          "4",        "--seq", "8",        "--threads", "1"};
  for (auto zero : std::vector<std::vector<std::string>>{
           {"--epochs", "0"}, {"--steps", "0"}, {"--steps", "0", "--epochs", "0"}}) {
    expect_clean_error(unroll(cat(cat({"train", text, "--out", out.string()}, small), zero)),
                       {"never stop", "--time"}, out);
  }
  ASSERT_NO_FATAL_FAILURE(train_ok(text, out));
  const std::string before = read_file(out / "latest.safetensors");
  for (auto zero : std::vector<std::vector<std::string>>{{"--epochs", "0"}, {"--steps", "0"}}) {
    Proc r = unroll(cat({"train", "--resume", out.string(), "--threads", "1"}, zero));
    expect_clean_error(r, {"never stop"});
  }
  EXPECT_EQ(read_file(out / "latest.safetensors"), before);
  // A zero next to a real limit lifts only its own.
  Proc r = unroll(
      {"train", "--resume", out.string(), "--epochs", "0", "--steps", "35", "--threads", "1"});
  EXPECT_EQ(r.code, 0) << describe(r);
  Proc info = unroll({"info", (out / "latest.safetensors").string(), "--json"});
  ASSERT_EQ(info.code, 0) << describe(info);
  EXPECT_EQ(nlohmann::json::parse(info.out)["progress"]["step"], 35);
}

// 3. Output that could not be written (a full disk) ended with status 0.
TEST_F(Hardening, FailedWritesToStandardOutputFail) {
  const std::string ck = trained(english_text(300));
  const std::string text = file("t.txt", english_text(20));
  file("labels.txt", "pos\tgood fun\nneg\tbad dull\npos\tfun good\nneg\tdull bad\n");
  Proc cl = unroll({"classify", "train", "labels.txt", "--out", "cls", "--hidden", "8", "--epochs",
                    "1", "--val-fraction", "0", "--threads", "1"});
  ASSERT_EQ(cl.code, 0) << describe(cl);
  for (const std::string& cmd : std::vector<std::string>{
           "$U sample '" + ck + "' -n 100000 --seed 1", "$U sample '" + ck + "' -n 5 --seed 1",
           "$U info '" + ck + "'", "$U info '" + ck + "' --json",
           "$U eval '" + ck + "' '" + text + "'",
           "echo 'good fun' | $U classify predict cls/best.safetensors",
           std::string("$U train --help"), std::string("$U --version")}) {
    Proc r = shell("exec " + cmd + " > /dev/full", 60);
    EXPECT_EQ(r.code, 1) << describe(r);
    EXPECT_FALSE(r.signaled) << describe(r);
    EXPECT_TRUE(contains(r.err, "cannot write to standard output: No space left on device"))
        << describe(r);
    EXPECT_EQ(split_lines(r.err).size(), 1u) << describe(r);
  }
  // The same commands into a file still succeed.
  Proc ok = shell("$U sample '" + ck + "' -n 50 --seed 1 > out.txt");
  EXPECT_EQ(ok.code, 0) << describe(ok);
}

// 4. A tiny positive temperature printed the vocabulary's last token over
// and over; now it is greedy decoding, and the range names both ends.
TEST_F(Hardening, TinyTemperatureSamplesLikeGreedy) {
  const std::string ck = trained(english_text(300));
  Proc greedy = unroll({"sample", ck, "-n", "40", "--greedy", "--prime", "the "});
  ASSERT_EQ(greedy.code, 0) << describe(greedy);
  for (const char* t : {"1e-40", "1e-44", "1e-38", "1.5e-45"}) {
    Proc r = unroll({"sample", ck, "-n", "40", "--seed", "1", "-t", t, "--prime", "the "});
    ASSERT_EQ(r.code, 0) << describe(r);
    EXPECT_EQ(r.out, greedy.out) << "T = " << t;
  }
  for (auto opt : std::vector<std::vector<std::string>>{{"--top-k", "3"}, {"--top-p", "0.9"}}) {
    Proc r = unroll(
        cat({"sample", ck, "-n", "40", "--seed", "1", "-t", "1e-40", "--prime", "the "}, opt));
    EXPECT_EQ(r.out, greedy.out) << opt[0];
  }
  expect_clean_error(unroll({"sample", ck, "-t", "1e-46"}), {"--temperature", "1.4e-45", "3.4e38"});
  const std::string text = file("t2.txt", english_text(300));
  expect_clean_error(
      unroll(cat({"train", text, "--out", "r2", "--sample-temperature", "1e-46"}, kTiny)),
      {"--sample-temperature", "1.4e-45"}, dir_ / "r2");
}

// 5. A prime that holds characters the training text had composed (Hangul)
// next to ones it had decomposed (é as e + U+0301) was refused.
TEST_F(Hardening, PrimeIsNormalisedCharacterByCharacter) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "cafe\xcc\x81 \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 ";
  const std::string ck = trained(text);
  for (const std::string prime : {"\xed\x95\x9c \xc3\xa9", "\xc3\xa9", "\xed\x95\x9c",
                                  "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab \xc3\xa9"}) {
    Proc r = unroll({"sample", ck, "-n", "5", "--seed", "1", "--prime", prime});
    ASSERT_EQ(r.code, 0) << describe(r);
    EXPECT_EQ(r.out.rfind(prime == "\xc3\xa9" ? "e\xcc\x81" : "\xed\x95\x9c", 0), 0u)
        << describe(r);
  }
  expect_clean_error(unroll({"sample", ck, "--prime", "\xed\x95\x9c \xc3\xa9 Z"}),
                     {"'Z' (U+005A)"});
}

// 6. A byte-order mark inside a text (cat of files saved on Windows) stopped
// training after reading the whole corpus.
TEST_F(Hardening, ByteOrderMarkInsideATextIsACharacter) {
  std::string text = "\xef\xbb\xbf";  // the file's own mark: dropped
  for (int i = 0; i < 2000; ++i) text += "hello world \xef\xbb\xbf again\n";
  const std::string f = file("f.txt", text);
  Proc r = unroll({"train", f, "--out", "r", "--steps", "5", "--hidden", "16", "--layers", "1",
                   "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  Proc info = unroll({"info", "r/latest.safetensors", "--json"});
  ASSERT_EQ(info.code, 0);
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j.at("vocab_size"), 14);                    // h e l o ' ' w r d U+FEFF a g i n \n
  EXPECT_EQ(j.at("data").at("characters"), 2000 * 20);  // the file's own mark is not among them
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"eval", "r/latest.safetensors", f},
        {"sample", "r/latest.safetensors", "-n", "20", "--prime", "hello \xef\xbb\xbf"},
        {"cells", "r/latest.safetensors", "--text", f, "--max-chars", "500", "-o", "c.html"}}) {
    Proc u = unroll(cat(cmd, {"--threads", "1"}));
    EXPECT_EQ(u.code, 0) << describe(u);
  }
}

// 7. The resume hint after an interrupt was not quoted for a shell.
TEST_F(Hardening, ResumeHintWorksWhenPastedIntoAShell) {
  const std::string text = file("en.txt", english_text(400));
  const std::string out = "sp run 'q\"";
  Child c = spawn(UNROLL_BIN,
                  {"train", text, "--out", out, "--hidden", "16", "--layers", "1", "--batch", "4",
                   "--seq", "8", "--steps", "100000", "--print-every", "1", "--threads", "1"},
                  dir_, io_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(dir_ / out / "metrics.jsonl") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(c.pid, SIGINT);
  Proc r = finish(c);
  ASSERT_EQ(r.code, 130) << describe(r);
  const size_t at = r.out.find("continue with: ");
  ASSERT_NE(at, std::string::npos) << describe(r);
  std::string hint = r.out.substr(at + 15, r.out.find('\n', at) - at - 15);
  ASSERT_EQ(hint.rfind("unroll ", 0), 0u) << hint;
  EXPECT_TRUE(contains(hint, "'sp run '\\''q\"'")) << hint;
  Proc resumed = shell("\"$U\"" + hint.substr(6) + " --steps 1 --eval-every 0");
  EXPECT_EQ(resumed.code, 0) << describe(resumed);
  EXPECT_TRUE(contains(resumed.out, "nothing to train")) << describe(resumed);
  // The refusal to overwrite a run names the resume command quoted, too.
  Proc again = unroll(cat({"train", text, "--out", out}, kTiny));
  expect_clean_error(again, {"--resume 'sp run '\\''q\"'"});
}

// 8. gradients --fresh took scales beyond any meaning (1e40 printed -nan) and
// cut large figures short.
TEST_F(Hardening, GradientsFreshScaleIsBoundedAndFiguresAreWhole) {
  const std::string text = file("t.txt", english_text(50));
  for (const char* spec :
       {"rnn:1:8:1e40", "lstm:1:8:1e30", "rnn:1:8:1001", "rnn:1:8:0", "rnn:1:8:-1"})
    expect_clean_error(unroll({"gradients", "--fresh", spec, "--text", text, "-o", "g.html"}),
                       {"--fresh", "at most 1000"});
  Proc r = unroll({"gradients", "--fresh", "lstm:1:8:1000", "--text", text, "-o", "g.html", "-K",
                   "5", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  // "i 1000/1000, f 1000/1000, ...": the radius never above sigma_max, both whole.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(" i ([0-9.e+]+)/([0-9.e+]+)"))) << describe(r);
  const double rho = std::stod(m[1]), sigma = std::stod(m[2]);
  EXPECT_NEAR(sigma, 1000, 1);
  EXPECT_LE(rho, sigma * 1.0001);
  EXPECT_GT(rho, 100);
  EXPECT_FALSE(contains(r.out, "nan")) << describe(r);
}

// 9. Internal wording: the filesystem library's, CLI11's, and advice about an
// option the user did not use.
TEST_F(Hardening, ErrorsSayWhatIsWrongInTheUsersTerms) {
  const std::string text = file("en.txt", english_text(300));
  fs::create_symlink("loop1", dir_ / "loop1");
  Proc loop = unroll(cat({"train", text, "--out", "loop1"}, kTiny));
  expect_clean_error(loop, {"loop1", "Too many levels of symbolic links"});
  EXPECT_FALSE(contains(loop.err, "filesystem error")) << describe(loop);
  Proc resume = unroll({"train", "--resume", "loop1"});
  expect_clean_error(resume, {"loop1", "symbolic links"});

  expect_clean_error(unroll({"report", text}), {"is a file, not a run folder"});
  expect_clean_error(unroll({"report", "nowhere"}), {"'nowhere' does not exist"});

  const std::string one = file("one.txt", "a");
  Proc val = unroll(cat({"train", text, "--out", "v", "--val", one}, kTiny));
  expect_clean_error(val, {"--val", "fewer than 2"}, dir_ / "v");
  EXPECT_FALSE(contains(val.err, "--split")) << describe(val);

  Proc twice = unroll(cat({"train", text, "--out", "a", "--out", "b"}, kTiny));
  expect_clean_error(twice, {"--out was given 2 times; give it once"});
  EXPECT_FALSE(contains(twice.err, "At Most")) << describe(twice);
}

// The smaller ones: --time, --split, hello's --lr, the command history of a
// resumed run, the tokens eval scores, control characters in samples.
TEST_F(Hardening, DurationsAndSplitsAreReadStrictly) {
  const std::string text = file("en.txt", english_text(300));
  for (const char* t : {"", "2s3s", "inf", "nans", "-5s", "1h30"}) {
    Proc r = unroll(cat({"train", text, "--out", "r"}, cat(kTiny, {"--time", t})));
    expect_clean_error(r, {"--time"}, dir_ / "r");
    EXPECT_FALSE(contains(r.err, "negative")) << describe(r);
  }
  Proc cl = unroll({"classify", "train", text, "--out", "c", "--time", "2s3s"});
  expect_clean_error(cl, {"--time", "2s3s"}, dir_ / "c");
  for (const char* s :
       {"0.9,0.05,0.1", "0.9,0.05,0.05,0", "0.9;0.1", "0.9,x", "1.5", "0.9,", ",0.1"})
    expect_clean_error(unroll(cat({"train", text, "--out", "r", "--split", s}, kTiny)), {"--split"},
                       dir_ / "r");
  Proc three = unroll(cat({"train", text, "--out", "r3", "--split", "0.8,0.15,0.05"}, kTiny));
  ASSERT_EQ(three.code, 0) << describe(three);
  const auto cfg = nlohmann::json::parse(read_file(dir_ / "r3" / "config.json"));
  EXPECT_DOUBLE_EQ(cfg["train"]["val_frac"].get<double>(), 0.15);
}

TEST_F(Hardening, HelloWithAHugeLearningRateFailsInsteadOfPrintingNan) {
  Proc r = unroll({"hello", "--lr", "1e38"});
  expect_clean_error(r, {"diverged", "--lr 1e+38"});
  EXPECT_FALSE(contains(r.out, "nan")) << describe(r);
}

TEST_F(Hardening, ResumeKeepsTheCommandThatStartedTheRun) {
  const std::string text = file("en.txt", english_text(300));
  ASSERT_NO_FATAL_FAILURE(train_ok(text, dir_ / "run"));
  for (const char* steps : {"40", "50"}) {
    Proc r = unroll({"train", "--resume", "run", "--steps", steps, "--threads", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
  }
  const auto cfg = nlohmann::json::parse(read_file(dir_ / "run" / "config.json"));
  EXPECT_TRUE(contains(cfg.at("command").get<std::string>(), "--steps 30")) << cfg.dump(2);
  ASSERT_TRUE(cfg.contains("resumes")) << cfg.dump(2);
  ASSERT_EQ(cfg.at("resumes").size(), 2u) << cfg.dump(2);
  EXPECT_TRUE(contains(cfg.at("resumes")[0].at("command").get<std::string>(), "--steps 40"));
  EXPECT_EQ(cfg.at("resumes")[0].at("step"), 30);
  EXPECT_EQ(cfg.at("resumes")[1].at("step"), 40);
}

TEST_F(Hardening, EvalScoresEveryTokenButTheFirst) {
  const std::string ck = trained(english_text(300));
  const std::string t =
      file("t.txt", std::string("the cat sat on the mat. ").substr(0, 23));  // 23 characters
  for (int B : {1, 2, 4, 5}) {
    Proc r = unroll({"eval", ck, t, "--batch", std::to_string(B), "--seq", "3", "--threads", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    double tokens = 0;
    ASSERT_TRUE(eval_value(r.out, "tokens", &tokens)) << describe(r);
    EXPECT_EQ(tokens, 22) << "batch " << B;
  }
}

TEST_F(Hardening, TrainingSamplesShowControlCharactersInsteadOfObeyingThem) {
  std::string text;
  for (int i = 0; i < 300; ++i)
    text +=
        "\x1b[31mred\x1b[0m and \x07"
        "bell\r\n";
  const std::string f = file("esc.txt", text);
  Proc r =
      unroll({"train",        f,     "--out",     "r",  "--steps",  "20", "--sample-every", "5",
              "--sample-len", "300", "--hidden",  "16", "--layers", "1",  "--batch",        "4",
              "--seq",        "8",   "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  // Each sample as generated (metrics.jsonl keeps it) and as printed: the
  // printed one is the generated one with ESC, BEL and a lone CR written out.
  auto escaped = [](const std::string& raw) {
    std::string e;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\x1b')
        e += "\\x1b";
      else if (raw[i] == '\x07')
        e += "\\x07";
      else if (raw[i] == '\r' && (i + 1 == raw.size() || raw[i + 1] != '\n'))
        e += "\\x0d";
      else
        e += raw[i];
    }
    return e;
  };
  int samples = 0, with_controls = 0;
  for (const std::string& line : split_lines(read_file(dir_ / "r" / "metrics.jsonl"))) {
    const auto rec = nlohmann::json::parse(line);
    if (rec.at("kind") != "sample") continue;
    const std::string raw = rec.at("text");
    ++samples;
    with_controls += raw.find_first_of("\x1b\x07") != std::string::npos;
    EXPECT_TRUE(contains(r.out, "----\n" + escaped(raw) + "\n----")) << "sample " << samples << "\n"
                                                                     << describe(r);
  }
  EXPECT_EQ(samples, 4);
  EXPECT_GT(with_controls, 0) << "no sample held a control character: the test shows nothing";
  const std::string shown = r.out.substr(r.out.find("---- sample at step"));
  EXPECT_EQ(shown.find_first_of("\x1b\x07"), std::string::npos) << describe(r);
}

// The class report's table lined up only for labels whose code points each
// take their own columns; emoji sequences pushed their rows out.
TEST_F(Hardening, ClassReportTablesLineUpWithCjkAndEmojiLabels) {
  const std::vector<std::pair<std::string, int>> labels = {
      {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", 6},  // 한국어
      {"\xf0\x9f\x98\x80", 2},                      // 😀
      {"\xe2\x9d\xa4\xef\xb8\x8f", 2},              // ❤️
      {"\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7", 2},
      {"x", 1}};
  std::string lines;
  const char* words[] = {"good", "bad", "fun", "dull", "nice"};
  for (int i = 0; i < 100; ++i)
    lines += labels[i % 5].first + "\t" + words[i % 5] + " " + words[(i / 5) % 5] + "\n";
  file("l.txt", lines);
  Proc r = unroll({"classify", "train", "l.txt", "--out", "c", "--hidden", "8", "--epochs", "1",
                   "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const size_t columns = 6;  // the widest label
  // The scores table: label, padding to the widest, two spaces, then
  // precision right-aligned in 9 columns ("   0.1234"). The confusion
  // matrix: label, padding, a space, then counts right-aligned in 6 ("     3").
  const size_t matrix_at = r.out.find("confusion matrix");
  ASSERT_NE(matrix_at, std::string::npos) << r.out;
  const std::string scores = r.out.substr(0, matrix_at), matrix = r.out.substr(matrix_at);
  for (const auto& [label, width] : labels) {
    const std::regex row("\n" +
                         std::regex_replace(label, std::regex("[.^$|()\\[\\]{}*+?\\\\]"), "\\$&") +
                         " {" + std::to_string(columns - width + 5) + "}[0-9]");
    const std::regex mrow("\n" +
                          std::regex_replace(label, std::regex("[.^$|()\\[\\]{}*+?\\\\]"), "\\$&") +
                          " {" + std::to_string(columns - width + 1 + 5) + "}[0-9]");
    EXPECT_TRUE(std::regex_search(scores, row)) << "scores row of " << label << " misaligned\n"
                                                << r.out;
    EXPECT_TRUE(std::regex_search(matrix, mrow)) << "matrix row of " << label << " misaligned\n"
                                                 << r.out;
  }
}

// From the tester's pass over the fixes: the same mistakes one step further.

TEST_F(Hardening, NumbersAreFiniteDecimalsEverywhere) {
  const std::string text = file("en.txt", english_text(300));
  const fs::path out = dir_ / "r";
  // --epochs inf trained for ever, and stored null, which no resume could read.
  for (auto bad : std::vector<std::vector<std::string>>{{"--epochs", "inf"},
                                                        {"--steps", "inf"},
                                                        {"--dropout", "nan"},
                                                        {"--init-scale", "nan"},
                                                        {"--lr", "0x10"},
                                                        {"--lr", "1e39"},
                                                        {"--clip", "-0x1"},
                                                        {"--epochs", "1e400"}}) {
    Proc r = unroll(cat({"train", text, "--out", out.string()}, cat(kTiny, bad)));
    expect_clean_error(r, {bad[0]}, out);
    EXPECT_FALSE(contains(r.err, "init_scale")) << describe(r);
  }
  expect_clean_error(unroll({"gradients", "--scalar", "nan"}), {"--scalar", "not a number"});
  ASSERT_NO_FATAL_FAILURE(train_ok(text, out));
  const std::string ck = (out / "best.safetensors").string();
  expect_clean_error(unroll({"sample", ck, "-t", "1e-310"}),
                     {"--temperature", "1.4e-45", "3.4e38"});
  expect_clean_error(unroll({"sample", ck, "-t", "0"}), {"--temperature", "more than 0"});
  expect_clean_error(unroll({"sample", ck, "-t", "-0.5"}), {"--temperature", "1.4e-45", "3.4e38"});
  expect_clean_error(unroll({"cells", ck, "--text", text, "--threshold", "nan"}), {"--threshold"});
  // CLI11's own wording, in the user's terms.
  for (auto bad : std::vector<std::vector<std::string>>{
           {"--top-p", "0"}, {"--top-k", "1e3"}, {"--beam", "1.5"}, {"--length", ""}}) {
    Proc r = unroll(cat({"sample", ck}, bad));
    expect_clean_error(r, {bad[0]});
    EXPECT_FALSE(contains(r.err, "Value ") || contains(r.err, "Could not convert")) << describe(r);
  }
  Proc r = unroll({"train", "--resume"});
  expect_clean_error(r, {"--resume needs a value"});
}

// CLI11's message holds the value; std::regex over it recursed once per
// character and crashed on a 100,000-character value.
TEST_F(Hardening, AHugeOptionValueIsAShortErrorNotACrash) {
  const std::string huge = "1" + std::string(100000, '0');
  for (auto args :
       std::vector<std::vector<std::string>>{{"sample", "x.safetensors", "--top-p", huge},
                                             {"sample", "x.safetensors", "--beam", huge},
                                             {"train", "x.txt", "--cell", std::string(100000, 'x')},
                                             {"train", "x.txt", "--hidden", huge}}) {
    Proc r = unroll(args);
    expect_clean_error(r, {args[2]});
    EXPECT_LT(r.err.size(), 600u) << describe(r);
  }
}

TEST_F(Hardening, OutputsNeverOverwriteInputs) {
  const std::string ck = trained(english_text(300));
  const std::string text = file("t.txt", english_text(30));
  const std::string ck_bytes = read_file(ck), text_bytes = read_file(text);
  const std::vector<std::vector<std::string>> cmds = {
      {"cells", ck, "--text", text, "-o", ck},
      {"cells", ck, "--text", text, "-o", text},
      {"cells", ck, "--text", text, "-o", "c.html", "--json-file", "c.html"},
      {"cells", ck, "--text", text, "-o", "c.html", "--npy",
       (dir_ / "run" / ".." / "t.txt").string()},
      {"gradients", "--fresh", "rnn:1:4", "--text", text, "-o", text},
      {"gradients", ck, "--text", text, "--csv-file", ck},
      {"report", (dir_ / "run").string(), "-o", (dir_ / "run" / "metrics.jsonl").string()},
      {"report", (dir_ / "run").string(), "-o", ck}};
  for (const auto& cmd : cmds)
    expect_clean_error(unroll(cmd), {"which this command also reads or writes"});
  EXPECT_EQ(read_file(ck), ck_bytes);
  EXPECT_EQ(read_file(text), text_bytes);
  EXPECT_FALSE(fs::exists(dir_ / "c.html"));
  // A link to an input is the input.
  fs::create_symlink(text, dir_ / "alias.txt");
  expect_clean_error(unroll({"cells", ck, "--text", text, "-o", "alias.txt"}),
                     {"which this command also reads"});
  EXPECT_EQ(read_file(text), text_bytes);
}

TEST_F(Hardening, SymbolicLinkLoopsAndFilesAsFoldersAreNamed) {
  const std::string ck = trained(english_text(300));
  const std::string text = file("t.txt", english_text(30));
  fs::create_symlink("loopb", dir_ / "loopa");
  fs::create_symlink("loopa", dir_ / "loopb");
  expect_clean_error(unroll({"cells", ck, "--text", text, "-o", "loopa"}),
                     {"loopa", "symbolic links"});
  expect_clean_error(unroll({"report", (dir_ / "run").string(), "-o", "loopa"}),
                     {"loopa", "symbolic links"});
  EXPECT_TRUE(fs::is_symlink(dir_ / "loopa") && fs::is_symlink(dir_ / "loopb"))
      << "a link was replaced";
  expect_clean_error(unroll({"cells", ck, "--text", text, "-o", "t.txt/x.html"}),
                     {"'t.txt' is a file, not a folder"});
  expect_clean_error(unroll({"cells", ck, "--text", text, "-o", "loopa/x.html"}),
                     {"symbolic links"});
}

// --time 0.0001s took no step, wrote the run's record but no checkpoint,
// and the run could not be resumed.
TEST_F(Hardening, AnyTimeLimitTakesAStepAndLeavesAResumableRun) {
  const std::string text = file("en.txt", english_text(300));
  Proc r = unroll({"train", text, "--out", "r", "--time", "0.0001s", "--hidden", "8", "--layers",
                   "1", "--batch", "4", "--seq", "8", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(contains(r.out, "nothing to train")) << describe(r);
  ASSERT_TRUE(fs::exists(dir_ / "r" / "latest.safetensors")) << describe(r);
  Proc again = unroll({"train", "--resume", "r", "--time", "0.0001s", "--threads", "1"});
  EXPECT_EQ(again.code, 0) << describe(again);
}

TEST_F(Hardening, LabelsAndSamplesShowControlCharactersOnTheTerminal) {
  std::string lines;
  for (int i = 0; i < 40; ++i)
    lines +=
        std::string(i % 2 ? "\x1b[31mred" : "plain") + "\tgood fun " + std::to_string(i % 3) + "\n";
  file("l.txt", lines);
  Proc r = unroll({"classify", "train", "l.txt", "--out", "c", "--hidden", "8", "--epochs", "1",
                   "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string report = r.out.substr(r.out.find("precision"));
  EXPECT_EQ(report.find('\x1b'), std::string::npos) << describe(r);
  EXPECT_TRUE(contains(report, "\\x1b[31mred")) << describe(r);
  Proc info = unroll({"info", "c/best.safetensors"});
  EXPECT_EQ(info.out.find('\x1b'), std::string::npos) << describe(info);
  // sample: escaped on a terminal, as generated into a file.
  std::string esc;
  for (int i = 0; i < 300; ++i) esc += "\x1b[31mred\n";
  const std::string ck = trained(esc, "esc");
  const std::string cmd = std::string(UNROLL_BIN) + " sample " + ck + " -n 30 --seed 1 --prime r";
  Proc tty = run_program("/usr/bin/script", {"-qec", cmd, "/dev/null"}, dir_, io_);
  ASSERT_EQ(tty.code, 0) << describe(tty);
  EXPECT_EQ(tty.out.find('\x1b'), std::string::npos) << describe(tty);
  Proc piped = unroll({"sample", ck, "-n", "30", "--seed", "1", "--prime", "r"});
  EXPECT_NE(piped.out.find('\x1b'), std::string::npos) << describe(piped);
  // classify predict: labels and texts from the user's files.
  const std::string predict = "printf 'x\\033[2Jy\\n' | " + std::string(UNROLL_BIN) +
                              " classify predict c/best.safetensors";
  Proc p_tty = run_program("/usr/bin/script", {"-qec", predict, "/dev/null"}, dir_, io_);
  ASSERT_EQ(p_tty.code, 0) << describe(p_tty);
  EXPECT_EQ(p_tty.out.find('\x1b'), std::string::npos) << describe(p_tty);
  EXPECT_TRUE(contains(p_tty.out, "x\\x1b[2Jy")) << describe(p_tty);
}

TEST_F(Hardening, GradientsRefuseOverflowedStatesAndReportNotesBadRecords) {
  const std::string text = file("t.txt", english_text(50));
  Proc r = unroll(
      {"gradients", "--fresh", "rnn-relu:1:8:1000", "--text", text, "-K", "40", "--threads", "1"});
  EXPECT_EQ(r.code, 1) << describe(r);  // after its "measuring ..." line
  EXPECT_TRUE(contains(r.err, "unroll: error: the model's states overflow")) << describe(r);
  EXPECT_FALSE(contains(r.out, "     0")) << describe(r);
  const std::string ck = trained(english_text(300));
  std::ofstream(dir_ / "run" / "metrics.jsonl", std::ios::app) << "garbage\n[1,2]\n";
  Proc rep = unroll({"report", (dir_ / "run").string(), "-o", "rep.html"});
  EXPECT_EQ(rep.code, 0) << describe(rep);
  EXPECT_TRUE(contains(rep.err, "2 line(s)")) << describe(rep);
}

}  // namespace

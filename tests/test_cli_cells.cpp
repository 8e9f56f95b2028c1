// End-to-end tests of `unroll cells`: the page, the JSON and the .npy it
// writes, and its errors on bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "cli_util.h"

using namespace clitest;

namespace {

// C-like text with strings, comments and nesting, and one hostile line.
std::string c_text(int functions) {
  std::string s;
  for (int i = 0; i < functions; ++i) {
    s += "/* function " + std::to_string(i) + " */\n";
    s += "int f" + std::to_string(i) + "(int a) {\n";
    s += "\tif (a > " + std::to_string(i % 7) + ") {\n\t\tputs(\"big <b>\");\n\t}\n";
    s += "\treturn a * 2; // twice\n}\n";
    if (i == functions / 2) s += "char *s = \"<script>alert(1)</script>\";\n";
  }
  return s;
}

class CliCells : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (HasFatalFailure()) return;
    text_ = file("code.c", c_text(40));
    std::vector<std::string> args = {"train", text_, "--out", (dir_ / "run").string()};
    for (size_t i = 0; i < kTiny.size(); ++i)  // the tiny model, with two layers
      args.push_back(i > 0 && kTiny[i - 1] == "--layers" ? "2" : kTiny[i]);
    Proc r = unroll(args);
    ASSERT_EQ(r.code, 0) << describe(r);
    ck_ = (dir_ / "run" / "latest.safetensors").string();
  }
  std::string text_, ck_;
};

}  // namespace

TEST_F(CliCells, WritesPageJsonAndNpy) {
  const std::string page = (dir_ / "cells.html").string(), json = (dir_ / "cells.json").string(),
                    npy = (dir_ / "acts.npy").string();
  Proc r = unroll({"cells", ck_, "--text", text_, "--out", page, "--json-file", json, "--npy", npy,
                   "--max-chars", "1500", "--probe", "number=[0-9]+", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "double_quote")) << describe(r);
  EXPECT_TRUE(contains(r.out, "number")) << describe(r);

  const std::string html = read_file(page);
  ASSERT_FALSE(html.empty());
  EXPECT_FALSE(contains(html, "<script>alert")) << "the text must be escaped";
  EXPECT_FALSE(contains(html, "http://")) << "the page must be self-contained";
  EXPECT_FALSE(contains(html, "https://")) << "the page must be self-contained";

  const auto j = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(j["format"], "unroll-cells-1");
  ASSERT_EQ(j["chars"].size(), 1500u);
  EXPECT_EQ(j["loss"].size(), 1500u);
  EXPECT_TRUE(j["loss"][0].is_null());
  EXPECT_EQ(j["top"].size(), 1500u);
  EXPECT_EQ(j["model"]["layers"], 2);
  // Every ranked cell can be shown, and the default is one of them.
  std::set<std::string> ids;
  for (const auto& s : j["series"]) {
    ids.insert(s["id"].get<std::string>());
    EXPECT_EQ(s["values"].size(), 1500u);
  }
  EXPECT_TRUE(ids.count(j["default_series"].get<std::string>()));
  std::set<std::string> names;
  for (const auto& p : j["probes"]) {
    names.insert(p["name"].get<std::string>());
    EXPECT_EQ(p["values"].size(), 1500u);
    EXPECT_FALSE(p["top"].empty());
    for (const auto& t : p["top"]) EXPECT_TRUE(ids.count(t["id"].get<std::string>())) << t;
  }
  for (const char* n :
       {"double_quote", "comment", "brace_depth", "if_block", "line_position", "number"})
    EXPECT_TRUE(names.count(n)) << n;
  // Two layers, two gates worth showing (i, f, o) each.
  EXPECT_EQ(j["saturation"].size(), 6u);

  // [characters, layers, kinds (h c i f g o), units] float32.
  const std::string a = read_file(npy);
  ASSERT_GT(a.size(), 10u);
  const size_t hlen = uint8_t(a[8]) | (uint8_t(a[9]) << 8);
  EXPECT_TRUE(contains(a.substr(10, hlen), "'shape': (1500, 2, 6, 16)")) << a.substr(10, hlen);
  EXPECT_EQ(a.size(), 10 + hlen + size_t(1500) * 2 * 6 * 16 * 4);
}

TEST_F(CliCells, DefaultPageGoesBesideTheCheckpointAndCellsCanBeChosen) {
  Proc r = unroll({"cells", ck_, "--text", text_, "--max-chars", "300", "--layer", "2", "--cells",
                   "3,5", "--json-file", (dir_ / "c.json").string(), "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::exists(dir_ / "run" / "cells.html")) << listing(dir_ / "run");
  const auto j = nlohmann::json::parse(read_file(dir_ / "c.json"));
  EXPECT_EQ(j["default_series"], "L2.h.3");
  std::set<std::string> ids;
  for (const auto& s : j["series"]) ids.insert(s["id"].get<std::string>());
  for (const char* id : {"L2.h.3", "L2.c.3", "L2.i.3", "L2.f.3", "L2.g.3", "L2.o.3", "L2.h.5"})
    EXPECT_TRUE(ids.count(id)) << id;
  // --layer 2 ranks only layer 2.
  for (const auto& p : j["probes"])
    for (const auto& t : p["top"]) EXPECT_EQ(t["id"].get<std::string>().substr(0, 3), "L2.") << t;
}

TEST_F(CliCells, BadInputGivesOneClearLine) {
  expect_clean_error(unroll({"cells", ck_, "--text", text_, "--cells", "1"}), {"--layer"});
  expect_clean_error(unroll({"cells", ck_, "--text", text_, "--layer", "2", "--cells", "99"}),
                     {"no cell 99", "0..15"});
  expect_clean_error(unroll({"cells", ck_, "--text", text_, "--layer", "3"}), {"2 layer"});
  expect_clean_error(unroll({"cells", ck_, "--text", text_, "--probe", "oops"}), {"NAME=REGEX"});
  expect_clean_error(unroll({"cells", ck_, "--text", text_, "--probe", "br=(x"}),
                     {"'br'", "regular expression"});
  const std::string other = file("other.txt", "Zebra 漢字\n");
  expect_clean_error(unroll({"cells", ck_, "--text", other}), {"漢", "vocabulary"});
  expect_clean_error(unroll({"cells", ck_, "--text", (dir_ / "missing.txt").string()}),
                     {"missing.txt"});
  expect_clean_error(unroll({"cells", (dir_ / "none.safetensors").string(), "--text", text_}),
                     {"none.safetensors"});
  expect_clean_error(unroll({"cells", ck_, "--text", text_, "--probe", "x=a", "--probe", "x=b"}),
                     {"already a probe named 'x'"});
  expect_clean_error(unroll({"cells", ck_, "--text", text_, "--probe", "comment=//"}),
                     {"already a probe named 'comment'"});
  EXPECT_FALSE(fs::exists(dir_ / "run" / "cells.html")) << "no page on bad input";
  // Output paths are checked before the run over the text: nothing is written.
  Proc r = unroll({"cells", ck_, "--text", text_, "-o", (dir_ / "p.html").string(), "--json-file",
                   (dir_ / "nodir" / "x.json").string()});
  expect_clean_error(r, {"nodir", "does not exist"});
  EXPECT_FALSE(fs::exists(dir_ / "p.html")) << "the page was written before the JSON path failed";
  EXPECT_FALSE(contains(r.err, "recording")) << "ran over the text before checking\n"
                                             << describe(r);
}

TEST_F(CliCells, UserProbeAnchorsMatchAtEveryLine) {
  const std::string json = (dir_ / "c.json").string();
  Proc r = unroll({"cells", ck_, "--text", text_, "--json-file", json, "-o",
                   (dir_ / "c.html").string(), "--probe", "linestart=^int", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const auto j = nlohmann::json::parse(read_file(json));
  // "int" opens a line 40 times (once per function): 120 characters on.
  bool found = false;
  for (const auto& p : j["probes"])
    if (p["name"] == "linestart") {
      found = true;
      double on = 0;
      for (const auto& v : p["values"]) on += v.get<double>();
      EXPECT_EQ(on, 120.0);
    }
  EXPECT_TRUE(found) << "no probe 'linestart' in the JSON";
  // The page records the command as typed.
  EXPECT_TRUE(contains(j["command"].get<std::string>(), "--probe 'linestart=^int'"))
      << j["command"];
}

// Across training: a run folder's snapshots (or checkpoints in any order) make
// one page with a slider, the table on stdout, every unit's correlation in the
// JSON and every activation of every checkpoint in the .npy.
TEST_F(CliCells, AcrossTrainingFromARunFolderOrCheckpoints) {
  const fs::path run = dir_ / "snap";
  std::vector<std::string> args = {"train", text_, "--out", run.string(), "--snapshot-every", "10"};
  args.insert(args.end(), kTiny.begin(), kTiny.end());  // 1x16, 30 steps: snapshots 0, 10, 20, 30
  Proc r = unroll(args);
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string json = (dir_ / "t.json").string(), npy = (dir_ / "t.npy").string();
  r = unroll({"cells", run.string(), "--text", text_, "--json-file", json, "--npy", npy,
              "--show-chars", "500", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "same unit since")) << r.out;
  EXPECT_TRUE(contains(r.out, "comment")) << r.out;
  const std::string page = read_file((run / "cells-timeline.html").string());
  EXPECT_TRUE(contains(page, "id=\"slider\"")) << "the page beside the run";
  const nlohmann::json d = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(d["format"], "unroll-cells-timeline-1");
  ASSERT_EQ(d["checkpoints"].size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(d["checkpoints"][i]["step"], 10 * i);
  EXPECT_EQ(d["chars"].size(), 500u);
  for (const auto& p : d["probes"])
    if (p["present"] == true) EXPECT_EQ(p["unit_corr"][3].size(), 2u * 16) << p["name"];
  // [checkpoints, characters, layers, kinds (h c i f g o), units], float32
  const std::string a = read_file(npy);
  const size_t n = d["model"]["characters"].get<size_t>();
  EXPECT_TRUE(contains(a.substr(0, 128), "(4, " + std::to_string(n) + ", 1, 6, 16)"))
      << a.substr(0, 128);
  EXPECT_EQ(a.size() % 64, (4 * n * 6 * 16 * 4) % 64) << "a 64-byte header, then the data";
  EXPECT_GE(a.size(), 4 * n * 6 * 16 * 4);

  // Checkpoints in any order come out in step order; the page goes beside the first given.
  const std::string s0 = (run / "snapshots" / "step-000000000.safetensors").string(),
                    s10 = (run / "snapshots" / "step-000000010.safetensors").string(),
                    s30 = (dir_ / "last.safetensors").string();
  fs::copy_file(run / "snapshots" / "step-000000030.safetensors", s30);
  fs::copy_file(run / "snapshots" / "step-000000000.safetensors", dir_ / "s0.safetensors");
  r = unroll({"cells", s30, s0, s10, "--text", text_, "--json-file", json, "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const nlohmann::json e = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(e["checkpoints"].size(), 3u);
  EXPECT_EQ(e["checkpoints"][0]["step"], 0);
  EXPECT_EQ(e["checkpoints"][2]["step"], 30);
  EXPECT_TRUE(fs::exists(dir_ / "cells-timeline.html")) << "beside the first given";
  EXPECT_FALSE(fs::exists(run / "snapshots" / "cells-timeline.html"));
  expect_clean_error(
      unroll({"cells", run.string(), "--text", text_, "--json-file", json, "--npy", json}),
      {"t.json"});

  // Bad input: one clear line each, no page.
  expect_clean_error(unroll({"cells", (dir_ / "run").string(), "--text", text_}),
                     {"no snapshots", "--resume", "--snapshot-every"});  // it holds a run
  expect_clean_error(unroll({"cells", s0, (dir_ / "s0.safetensors").string(), "--text", text_}),
                     {"both at step 0", "one checkpoint per step"});
  expect_clean_error(
      unroll({"cells", run.string(), "--text", text_, "-o", (run / "latest.safetensors").string()}),
      {"a checkpoint"});
  // RUN/snapshots itself stands for its run.
  r = unroll({"cells", (run / "snapshots").string(), "--text", text_, "--threads", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "4 checkpoints, steps 0 to 30")) << describe(r);
  expect_clean_error(unroll({"cells", run.string(), s0, "--text", text_}), {"is a folder"});
  std::vector<std::string> other = {"train",    text_, "--out", (dir_ / "wide").string(),
                                    "--hidden", "8"};
  for (size_t i = 2; i < kTiny.size(); ++i) other.push_back(kTiny[i]);  // kTiny without --hidden
  ASSERT_EQ(unroll(other).code, 0);
  expect_clean_error(
      unroll({"cells", s0, (dir_ / "wide" / "latest.safetensors").string(), "--text", text_}),
      {"another model", "lstm 1x8", "the same shape and vocabulary"});
  const std::string text2 = file("other.c", c_text(40) + "@$~\n");
  ASSERT_EQ(unroll(cat({"train", text2, "--out", (dir_ / "vocab").string()}, kTiny)).code, 0);
  expect_clean_error(
      unroll({"cells", s0, (dir_ / "vocab" / "latest.safetensors").string(), "--text", text_}),
      {"another vocabulary"});
}

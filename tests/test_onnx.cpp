// unroll export --onnx (train/onnx_export.h): the graph that onnxruntime runs computes what
// unroll computes. Each case runs a model's forward pass here over 500 tokens from a random
// initial state, exports the model, and has onnxruntime (npm's onnxruntime-node, installed by
// scripts/setup.sh --tests into tests/onnx/node_modules) run the graph on the whole text and
// one token at a time (tests/onnx/parity.mjs). Debian's python3-onnx checks the files.
// Label onnx; without node, onnxruntime-node or python3-onnx the tests fail, not skip.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "unroll/core/rng.h"
#include "unroll/train/onnx_export.h"

using namespace unroll;
using clitest::contains;
using clitest::describe;
using clitest::Proc;

namespace {

const char* kParity = UNROLL_TESTS_DIR "/onnx/parity.mjs";

template <class T>
void write_raw(const fs::path& p, const T* data, size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(n * sizeof(T)));
  ASSERT_TRUE(f.good()) << p;
}

class Onnx : public clitest::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ASSERT_TRUE(fs::exists(fs::path(UNROLL_TESTS_DIR) / "onnx/node_modules/onnxruntime-node"))
        << "onnxruntime-node is not installed in tests/onnx: run scripts/setup.sh --tests (it runs "
           "npm ci there)";
  }

  // Runs model m over T tokens of B streams from a random state, exports it, and has
  // onnxruntime check the logits and final states. Returns parity.mjs's JSON.
  nlohmann::json check(const ModelConfig& cfg, int T, int B, uint64_t seed,
                       const std::string& name) {
    LanguageModel<float> m(cfg);
    Rng rng(seed);
    m.init(rng);
    const int L = cfg.layers, H = cfg.hidden, V = cfg.outputs;
    std::vector<int32_t> tokens(size_t(T) * B);
    for (auto& t : tokens) t = int32_t(rng.uniform(0, cfg.vocab)) % cfg.vocab;
    m.reset_state(B);
    for (auto& x : m.state_h) x = float(rng.uniform(-0.5, 0.5));
    if (cfg.cell == CellKind::Lstm)
      for (auto& x : m.state_c) x = float(rng.uniform(-0.5, 0.5));
    const fs::path d = dir_ / name;
    fs::create_directories(d);
    write_raw(d / "h0.bin", m.state_h.data(), m.state_h.size());
    if (cfg.cell == CellKind::Lstm) write_raw(d / "c0.bin", m.state_c.data(), m.state_c.size());
    m.forward(tokens.data(), nullptr, T, B, Mode::Eval);
    write_raw(d / "tokens.bin", tokens.data(), tokens.size());
    write_raw(d / "logits.bin", m.logits(), size_t(T) * B * V);
    write_raw(d / "hn.bin", m.state_h.data(), m.state_h.size());
    if (cfg.cell == CellKind::Lstm) write_raw(d / "cn.bin", m.state_c.data(), m.state_c.size());
    std::vector<std::string> toks;
    for (int i = 0; i < cfg.vocab; ++i) toks.push_back(std::string(1, char('a' + i)));
    const std::string bytes = export_onnx(m, Vocab::from_tokens(toks, "char"), TextFormat{}, name);
    std::ofstream(d / "model.onnx", std::ios::binary) << bytes;
    nlohmann::json c = {{"T", T},           {"B", B}, {"L", L},
                        {"H", H},           {"V", V}, {"lstm", cfg.cell == CellKind::Lstm},
                        {"tolerance", 1e-5}};
    std::ofstream(d / "case.json") << c.dump();
    Proc r = clitest::run_program("/usr/bin/env", {"node", kParity, d.string()}, dir_, io_, 600);
    EXPECT_EQ(r.code, 0) << name << "\n" << describe(r);
    std::cout << name << ": " << r.out;
    try {
      return nlohmann::json::parse(r.out);
    } catch (...) {
      ADD_FAILURE() << name << ": parity.mjs printed no JSON\n" << describe(r);
      return {};
    }
  }
};

ModelConfig lm(CellKind cell, int layers, int embed, int vocab = 13, int hidden = 16) {
  ModelConfig c;
  c.cell = cell;
  c.layers = layers;
  c.hidden = hidden;
  c.vocab = vocab;
  c.outputs = vocab;
  c.embed = embed;
  return c;
}

}  // namespace

// Every cell kind, 1 and 2 layers, one-hot and embedding input, 500 tokens, 2 streams.
TEST_F(Onnx, OnnxruntimeComputesWhatUnrollComputesForEveryCell) {
  for (CellKind cell : {CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru})
    for (int layers : {1, 2})
      for (int embed : {0, 8}) {
        const std::string name =
            cell_name(cell) + "-" + std::to_string(layers) + "-" + std::to_string(embed);
        nlohmann::json j = check(lm(cell, layers, embed), 500, 2, 7 + layers + embed, name);
        if (j.is_object()) EXPECT_EQ(j["dims"], nlohmann::json({500, 2, 13})) << name;
      }
}

// A tied head (the graph transposes the embedding) and one stream.
TEST_F(Onnx, TiedHeadAndOneStream) {
  ModelConfig c = lm(CellKind::Lstm, 2, 16);
  c.tie = true;
  check(c, 500, 1, 3, "tied");
}

// The command: a trained checkpoint exports; Debian's onnx checker (full check, with shape
// inference) accepts the file and its metadata holds the vocabulary; other tasks are refused.
TEST_F(Onnx, ExportCommandWritesACheckedFileAndRefusesClassifiers) {
  const std::string text = file("t.txt", clitest::english_text(40));
  train_ok(text, dir_ / "run", {"--cell", "gru", "--embed", "8"});
  const std::string out = (dir_ / "m.onnx").string();
  Proc e = unroll({"export", (dir_ / "run" / "latest.safetensors").string(), "--onnx", out});
  ASSERT_EQ(e.code, 0) << describe(e);
  EXPECT_TRUE(contains(e.out, "opset 14")) << describe(e);
  EXPECT_TRUE(contains(e.out, "tokens [T, B] int64; h0")) << describe(e);
  const std::string py =
      "import json, sys, onnx\n"
      "m = onnx.load(sys.argv[1])\n"
      "onnx.checker.check_model(m, full_check=True)\n"
      "meta = {p.key: p.value for p in m.metadata_props}\n"
      "print(json.dumps({'ops': sorted({n.op_type for n in m.graph.node}), 'opset': "
      "m.opset_import[0].version,\n"
      "                  'vocab': json.loads(meta['unroll.vocab'])['tokens'], 'cell': "
      "json.loads(meta['unroll.model'])['cell']}))\n";
  Proc c = clitest::run_program("/usr/bin/python3", {"-c", py, out}, dir_, io_);
  ASSERT_EQ(c.code, 0) << "python3-onnx is needed (scripts/setup.sh --tests installs it)\n"
                       << describe(c);
  const nlohmann::json j = nlohmann::json::parse(c.out);
  EXPECT_EQ(j["opset"], 14);
  EXPECT_EQ(j["cell"], "gru");
  EXPECT_EQ(j["ops"], nlohmann::json({"Add", "Concat", "GRU", "Gather", "MatMul", "Slice",
                                      "Squeeze", "Transpose"}));
  EXPECT_TRUE(j["vocab"].size() > 10) << c.out;

  // The sampler in tests/onnx/sample.mjs, which docs/interop.md shows, writes unroll's
  // greedy text from the ONNX file alone.
  Proc ours = unroll({"sample", (dir_ / "run" / "latest.safetensors").string(), "--greedy", "-p",
                      "The ", "-n", "200", "--threads", "1"});
  ASSERT_EQ(ours.code, 0) << describe(ours);
  Proc theirs = clitest::run_program(
      "/usr/bin/env",
      {"node", UNROLL_TESTS_DIR "/onnx/sample.mjs", out, "--prime", "The ", "-n", "200", "-t", "0"},
      dir_, io_);
  ASSERT_EQ(theirs.code, 0) << describe(theirs);
  EXPECT_EQ(theirs.out, ours.out);
  EXPECT_GT(theirs.out.size(), 200u);

  const std::string labelled =
      file("l.txt", "pos\tgood fun\nneg\tbad dull\npos\tfine day\nneg\tawful day\n");
  Proc t = unroll({"classify", "train", labelled, "--out", (dir_ / "cls").string(), "--epochs", "1",
                   "--hidden", "8", "--threads", "1"});
  ASSERT_EQ(t.code, 0) << describe(t);
  const std::string cls = (dir_ / "cls" / "best.safetensors").string();
  expect_clean_error(
      unroll({"export", fs::exists(cls) ? cls : (dir_ / "cls" / "latest.safetensors").string(),
              "--onnx", (dir_ / "c.onnx").string()}),
      {"classifier", "language models"});
  EXPECT_FALSE(fs::exists(dir_ / "c.onnx"));
  expect_clean_error(unroll({"export", text, "--onnx", (dir_ / "x.onnx").string()}), {"t.txt"});
}

// unroll import (train/import.h): a PyTorch state_dict becomes an unroll model.
// The files here are built with our own safetensors writer under the names and
// shapes torch.nn gives its modules; agreement with PyTorch's arithmetic is
// checked against PyTorch itself in tests/torch_import.py.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli_util.h"
#include "error_util.h"
#include "unroll/text/text_corpus.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/import.h"

using namespace unroll;
using clitest::contains;

namespace {

// A state_dict as PyTorch names it: PREFIX.weight_ih_l{k} ... for the recurrent module,
// optional embedding, a head. Every tensor holds distinct values (its first element is
// `base`, then base + 1e-3, ...), so a copy into the wrong place shows.
struct TorchLM {
  std::string emb = "embedding.", rnn = "rnn.", head = "head.";
  int G = 4, H = 3, L = 2, V = 5, E = 2;  // E = 0: one-hot input
  bool biases = true, head_weight = true, head_bias = true;

  SafeTensors build() const {
    SafeTensors st;
    float base = 1;
    auto add = [&](const std::string& name, std::vector<int64_t> shape) {
      const int64_t n =
          std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
      std::vector<float> x(n);
      for (int64_t i = 0; i < n; ++i) x[i] = base + 1e-3f * float(i);
      base += 1;
      st.add_f32(name, shape, x.data());
    };
    if (E) add(emb + "weight", {V, E});
    for (int l = 0; l < L; ++l) {
      const std::string k = std::to_string(l);
      add(rnn + "weight_ih_l" + k, {G * H, l == 0 ? (E ? E : V) : H});
      add(rnn + "weight_hh_l" + k, {G * H, H});
      if (biases) {
        add(rnn + "bias_ih_l" + k, {G * H});
        add(rnn + "bias_hh_l" + k, {G * H});
      }
    }
    if (head_weight) add(head + "weight", {V, H});
    if (head_bias) add(head + "bias", {V});
    return st;
  }
};

Vocab vocab_of(int n) {
  std::vector<std::string> t;
  for (int i = 0; i < n; ++i) t.push_back(std::string(1, char('a' + i)));
  return Vocab::from_tokens(t, "char");
}

// Every tensor of `st` is in the model under the unroll name `to(name)`, value for value.
void expect_copied(const SafeTensors& st, Stack<float>& m,
                   const std::map<std::string, std::string>& names) {
  for (auto& [from, to] : names) {
    const std::vector<float> want = floats_of(st.at(from));
    const float* got = m.param(to);
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << from << " -> " << to << " at " << i;
  }
}

Imported import_of(const TorchLM& t, ImportOptions opt = {}) {
  return import_torch_lm(t.build(), vocab_of(t.V), opt, "model.safetensors");
}

}  // namespace

TEST(Import, FindsTheLstmEmbeddingAndHeadUnderAnyPrefixAndCopiesEveryTensor) {
  TorchLM t;
  t.emb = "encoder.";
  t.rnn = "lstm.";
  t.head = "decoder.";
  const SafeTensors st = t.build();
  Imported im = import_torch_lm(st, vocab_of(t.V), {}, "m.safetensors");
  const ModelConfig& c = im.model->config();
  EXPECT_EQ(c.cell, CellKind::Lstm);
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.hidden, 3);
  EXPECT_EQ(c.embed, 2);
  EXPECT_EQ(c.vocab, 5);
  EXPECT_EQ(c.outputs, 5);
  EXPECT_FALSE(c.tie);
  expect_copied(st, *im.model,
                {{"encoder.weight", "embedding.weight"},
                 {"lstm.weight_ih_l0", "rnn.weight_ih_l0"},
                 {"lstm.weight_hh_l0", "rnn.weight_hh_l0"},
                 {"lstm.bias_ih_l0", "rnn.bias_ih_l0"},
                 {"lstm.bias_hh_l0", "rnn.bias_hh_l0"},
                 {"lstm.weight_ih_l1", "rnn.weight_ih_l1"},
                 {"lstm.weight_hh_l1", "rnn.weight_hh_l1"},
                 {"lstm.bias_ih_l1", "rnn.bias_ih_l1"},
                 {"lstm.bias_hh_l1", "rnn.bias_hh_l1"},
                 {"decoder.weight", "head.weight"},
                 {"decoder.bias", "head.bias"}});
  EXPECT_EQ(im.parts["embedding"], "encoder.weight");
  EXPECT_EQ(im.parts["head"], "decoder.weight, decoder.bias");
  EXPECT_TRUE(im.notes.empty());
}

TEST(Import, ReadsTheCellFromTheShapesAndTheTopLevelPrefix) {
  TorchLM gru;
  gru.G = 3;
  gru.E = 0;  // one-hot: layer 1 reads V inputs
  gru.rnn = "";
  gru.head = "fc.";
  Imported g = import_of(gru);
  EXPECT_EQ(g.model->config().cell, CellKind::Gru);
  EXPECT_EQ(g.model->config().embed, 0);
  expect_copied(gru.build(), *g.model,
                {{"weight_ih_l1", "rnn.weight_ih_l1"}, {"fc.weight", "head.weight"}});

  TorchLM rnn;
  rnn.G = 1;
  rnn.L = 3;
  Imported r = import_of(rnn);
  EXPECT_EQ(r.model->config().cell, CellKind::RnnTanh);
  EXPECT_EQ(r.model->config().layers, 3);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_TRUE(contains(r.notes[0], "tanh")) << r.notes[0];
  EXPECT_TRUE(contains(r.notes[0], "--cell rnn-relu")) << r.notes[0];
  ImportOptions relu;
  relu.cell = "rnn-relu";
  Imported rr = import_of(rnn, relu);
  EXPECT_EQ(rr.model->config().cell, CellKind::RnnRelu);
  EXPECT_TRUE(rr.notes.empty());

  ImportOptions wrong;
  wrong.cell = "lstm";
  const std::string e = error_of([&] { import_of(gru, wrong); });
  EXPECT_TRUE(contains(e, "--cell lstm")) << e;
  EXPECT_TRUE(contains(e, "3×H rows, which is gru")) << e;
}

TEST(Import, ATiedHeadAndMissingBiasesAreRead) {
  // safetensors.torch.save_model keeps one of two shared tensors: a tied model has the
  // embedding [V, H] and the head's bias alone.
  TorchLM tied;
  tied.E = tied.H;
  tied.head_weight = false;
  Imported t = import_of(tied);
  EXPECT_TRUE(t.model->config().tie);
  EXPECT_EQ(t.model->config().embed, tied.H);
  expect_copied(tied.build(), *t.model,
                {{"embedding.weight", "embedding.weight"}, {"head.bias", "head.bias"}});
  EXPECT_TRUE(contains(t.parts["head"], "tied")) << t.parts["head"];

  TorchLM nob;
  nob.biases = false;
  nob.head_bias = false;
  ImportOptions opt;
  opt.map["head"] = "head";  // a bias-free head is not found by its bias
  Imported n = import_of(nob, opt);
  for (const char* name : {"rnn.bias_ih_l0", "rnn.bias_hh_l1", "head.bias"}) {
    const ParamView& v = n.model->layout().at(name);
    for (size_t i = 0; i < v.size; ++i) ASSERT_EQ(n.model->params[v.offset + i], 0.0f) << name;
  }
  EXPECT_EQ(n.notes.size(), 2u);
  // Found without --map: the one [V, H] weight, bias-free.
  Imported found = import_of(nob);
  EXPECT_FALSE(found.model->config().tie);
  EXPECT_EQ(found.parts["head"], "head.weight (no bias)");
  expect_copied(nob.build(), *found.model, {{"head.weight", "head.weight"}});

  // Tied and bias-free: the file holds the embedding [V, H] alone; layer 1 reads H-wide
  // input, so the one [V, H] weight is the embedding and the head is tied to it.
  TorchLM tnb;
  tnb.E = tnb.H;
  tnb.head_weight = false;
  tnb.head_bias = false;
  Imported tn = import_of(tnb);
  EXPECT_TRUE(tn.model->config().tie);
  EXPECT_TRUE(contains(tn.parts["head"], "no tensor (weight tied")) << tn.parts["head"];
  expect_copied(tnb.build(), *tn.model, {{"embedding.weight", "embedding.weight"}});
}

TEST(Import, HalfPrecisionTensorsAreConvertedAndSaid) {
  TorchLM t;
  SafeTensors f32 = t.build(), half;
  for (auto& e : f32.tensors) {  // every value as bfloat16: the top 16 bits of the float
    std::vector<float> x = floats_of(e);
    std::vector<uint16_t> b(x.size());
    for (size_t i = 0; i < x.size(); ++i) b[i] = uint16_t(std::bit_cast<uint32_t>(x[i]) >> 16);
    half.add(e.name, DType::BF16, e.shape, b.data());
  }
  Imported im = import_torch_lm(half, vocab_of(t.V), {}, "m.safetensors");
  ASSERT_EQ(im.notes.size(), 1u);
  EXPECT_EQ(im.notes[0], "BF16 tensors converted to F32");
  const float* w = im.model->param("rnn.weight_hh_l1");
  const std::vector<float> want = floats_of(f32.at("rnn.weight_hh_l1"));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(w[i], want[i], std::abs(want[i]) / 128) << i;
}

TEST(Import, RefusesWhatItCannotReadWithOneLineThatSaysWhat) {
  auto refused = [](const SafeTensors& st, int V, const std::vector<std::string>& needles,
                    ImportOptions opt = {}) {
    const std::string e = error_of([&] { import_torch_lm(st, vocab_of(V), opt, "m.safetensors"); });
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_TRUE(contains(e, "'m.safetensors'")) << e;
    for (auto& n : needles) EXPECT_TRUE(contains(e, n)) << "expected '" << n << "' in: " << e;
  };
  TorchLM t;
  // A missing tensor, named.
  SafeTensors st = t.build();
  SafeTensors missing;
  for (auto& e : st.tensors)
    if (e.name != "rnn.weight_hh_l1") missing.tensors.push_back(e);
  refused(missing, t.V, {"'rnn.weight_hh_l1' is missing", "layer 2"});
  // An extra tensor, named.
  SafeTensors extra = t.build();
  const float one = 1;
  extra.add_f32("norm.running_mean", {1}, &one);
  refused(extra, t.V, {"norm.running_mean", "not part of"});
  // A head whose rows do not match the vocabulary.
  refused(t.build(), t.V + 1, {"5 rows", "6 tokens"});
  // Bidirectional and proj_size.
  SafeTensors bi = t.build();
  std::vector<float> w(4 * 3 * 2, 0.5f);
  bi.add_f32("rnn.weight_ih_l0_reverse", {12, 2}, w.data());
  refused(bi, t.V, {"rnn.weight_ih_l0_reverse", "bidirectional"});
  SafeTensors proj = t.build();
  proj.add_f32("rnn.weight_hr_l0", {2, 3}, w.data());
  refused(proj, t.V, {"proj_size"});
  // Shapes that disagree between layers: layer 2 one unit wider.
  SafeTensors bad = t.build();
  bad.tensors.erase(std::remove_if(bad.tensors.begin(), bad.tensors.end(),
                                   [](auto& e) { return e.name == "rnn.weight_hh_l1"; }),
                    bad.tensors.end());
  std::vector<float> w2(16 * 4, 0.1f);
  bad.add_f32("rnn.weight_hh_l1", {16, 4}, w2.data());
  refused(bad, t.V, {"'rnn.weight_hh_l1' has shape [16, 4]", "[12, 3]", "layer 2"});
  // Two recurrent modules: --map settles it.
  SafeTensors two = t.build();
  TorchLM other = t;
  other.rnn = "aux.";
  for (auto& e : other.build().tensors)
    if (e.name.rfind("aux.", 0) == 0) two.tensors.push_back(e);
  refused(two, t.V, {"2 recurrent modules", "--map rnn=PREFIX"});
  ImportOptions pick;
  pick.map["rnn"] = "rnn";
  refused(two, t.V, {"aux.weight_ih_l0", "not part of"}, pick);  // then aux is left over
  // No recurrent layer; an unknown role; an unroll checkpoint.
  SafeTensors none;
  none.add_f32("fc.weight", {1}, &one);
  refused(none, t.V, {"no recurrent layer", "fc.weight"});
  ImportOptions role;
  role.map["decoder"] = "x";
  EXPECT_TRUE(contains(error_of([&] { import_of(t, role); }), "unknown part 'decoder'"));
  SafeTensors ours = t.build();
  ours.metadata["format"] = "unroll-checkpoint-1";
  refused(ours, t.V, {"already an unroll checkpoint", "a language model", "'unroll sample'"});
  ours.metadata["train"] = R"({"task": "classify"})";
  refused(ours, t.V, {"already an unroll checkpoint", "a classifier", "'unroll classify predict'"});
  // A broken model: NaN weights.
  SafeTensors nan = t.build();
  reinterpret_cast<float*>(nan.tensors[3].bytes.data())[1] = NAN;
  refused(nan, t.V, {"'" + nan.tensors[3].name + "'", "NaN"});
  // An embedding of the right width but other rows is named.
  SafeTensors wrong = t.build();
  wrong.tensors.erase(wrong.tensors.begin());  // embedding.weight [5, 2]
  std::vector<float> e(7 * 2, 0.1f);
  wrong.add_f32("embedding.weight", {7, 2}, e.data());
  refused(wrong, t.V, {"no [5, 2] embedding", "'embedding.weight' is [7, 2]"});
  // Two output layers: the file holds more than one model's parts.
  SafeTensors heads = t.build();
  std::vector<float> hw(5 * 3, 0.2f), hb(5, 0.3f);
  heads.add_f32("aux.weight", {5, 3}, hw.data());
  heads.add_f32("aux.bias", {5}, hb.data());
  refused(heads, t.V, {"2 candidates for the output layer", "one language model", "alone"});
}

class ImportCli : public clitest::CliTest {};

TEST_F(ImportCli, VocabularyFilesAsJsonOrLinesWithEscapes) {
  // A byte-order mark is not a token; {token: id} (json.dump(stoi)) is read by id; lines
  // that start with a bracket are lines.
  EXPECT_EQ(read_vocab_file(file("bom.txt",
                                 "\xEF\xBB\xBF"
                                 "a\nb\n"),
                            "")
                .token(0),
            "a");
  EXPECT_EQ(read_vocab_file(file("bom.json", "\xEF\xBB\xBF[\"a\", \"b\"]"), "").size(), 2);
  Vocab stoi = read_vocab_file(file("stoi.json", "{\"b\": 1, \"\\n\": 2, \"a\": 0}"), "");
  ASSERT_EQ(stoi.size(), 3);
  EXPECT_EQ(stoi.token(0), "a");
  EXPECT_EQ(stoi.token(2), "\n");
  EXPECT_TRUE(
      contains(error_of([&] { read_vocab_file(file("gap.json", "{\"a\": 0, \"b\": 2}"), ""); }),
               "the ids 0..1, each once"));
  Vocab pad = read_vocab_file(file("pad.txt", "[PAD]\n[UNK]\nthe\n"), "");
  EXPECT_EQ(pad.token(0), "[PAD]");
  EXPECT_EQ(pad.level(), "word");
  EXPECT_TRUE(contains(error_of([&] { read_vocab_file(file("cut.json", "[\"a\", \"b\""), ""); }),
                       "starts like JSON"));
  Vocab j = read_vocab_file(file("v.json", "[\"a\", \"\\n\", \"\xc3\xa9\"]"), "");
  EXPECT_EQ(j.size(), 3);
  EXPECT_EQ(j.level(), "char");
  EXPECT_EQ(j.token(1), "\n");
  Vocab l = read_vocab_file(file("v.txt", "the\n\\n\ncat\\\\dog\n\\t\n"), "");
  EXPECT_EQ(l.level(), "word");
  ASSERT_EQ(l.size(), 4);
  EXPECT_EQ(l.token(1), "\n");
  EXPECT_EQ(l.token(2), "cat\\dog");
  EXPECT_EQ(l.token(3), "\t");
  EXPECT_EQ(read_vocab_file(file("c.txt", "a\r\nb\r\n"), "").level(), "char");  // CRLF lines
  EXPECT_TRUE(contains(error_of([&] { read_vocab_file(file("e.txt", "a\n\nb\n"), ""); }),
                       "line 2 is empty"));
  EXPECT_TRUE(contains(error_of([&] { read_vocab_file(file("x.txt", "a\\q\n"), ""); }), "line 1"));
  EXPECT_TRUE(
      contains(error_of([&] { read_vocab_file(file("d.txt", "a\nb\na\n"), ""); }), "repeats"));
  EXPECT_TRUE(
      contains(error_of([&] { read_vocab_file(file("w.txt", "ab\n"), "char"); }), "exactly one"));
  EXPECT_TRUE(contains(error_of([&] { read_vocab_file(file("n.json", "[1]"), ""); }), "entry 0"));
  EXPECT_TRUE(looks_like_torch_save(file("z.pt", std::string("PK\x03\x04rest", 8))));
  EXPECT_TRUE(looks_like_torch_save(file("p.pt", std::string("\x80\x02}q", 4))));
  EXPECT_FALSE(looks_like_torch_save(file("s.txt", "hello")));
}

// The command: a checkpoint that info, eval and sample use as they are, and that
// train --init-from starts from; refusals write nothing.
TEST_F(ImportCli, ImportedCheckpointIsUsedAsItIsAndFineTunes) {
  const std::string text = file("t.txt", clitest::english_text(60));
  const Vocab v = load_corpus({text}).vocab;
  TorchLM t;
  t.rnn = "lstm.";
  t.head = "decoder.";
  t.V = v.size();
  t.E = 4;
  t.H = 8;
  SafeTensors st = t.build();
  for (auto& e : st.tensors) {  // small weights, so the model is a sensible one
    std::vector<float> x = floats_of(e);
    for (float& f : x) f = 0.05f * std::sin(f * 7);
    std::memcpy(e.bytes.data(), x.data(), e.bytes.size());
  }
  save_safetensors((dir_ / "m.safetensors").string(), st);
  const std::string ck = (dir_ / "ck.safetensors").string();
  clitest::Proc r =
      unroll({"import", (dir_ / "m.safetensors").string(), "--vocab-from", text, "-o", ck});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "lstm, 2 layers of 8 units, embedding 4 input")) << describe(r);
  EXPECT_TRUE(contains(r.out, "lstm.weight_ih_l0")) << describe(r);
  Checkpoint c = load_checkpoint(ck);
  EXPECT_EQ(c.task, "lm");
  expect_copied(st, *c.model,
                {{"lstm.weight_hh_l1", "rnn.weight_hh_l1"}, {"decoder.weight", "head.weight"}});
  EXPECT_EQ(c.vocab.size(), v.size());

  clitest::Proc i = unroll({"info", ck});
  ASSERT_EQ(i.code, 0) << describe(i);
  EXPECT_TRUE(contains(i.out, "imported    from")) << describe(i);
  clitest::Proc e = unroll({"eval", ck, text, "--json", "--threads", "1"});
  ASSERT_EQ(e.code, 0) << describe(e);
  const double before = nlohmann::json::parse(e.out)["loss"];
  clitest::Proc s = unroll({"sample", ck, "-n", "20", "-p", "The", "--seed", "2"});
  ASSERT_EQ(s.code, 0) << describe(s);

  // Fine-tuning starts from the imported weights: after one step at a tiny rate the
  // loss is the imported model's, and training lowers it.
  const fs::path out = dir_ / "tuned";
  clitest::Proc f =
      unroll({"train", text, "--init-from", ck, "--out", out.string(), "--steps", "1", "--lr",
              "1e-9", "--batch", "4", "--seq", "16", "--sample-every", "0", "--threads", "1"});
  ASSERT_EQ(f.code, 0) << describe(f);
  clitest::Proc e1 =
      unroll({"eval", (out / "latest.safetensors").string(), text, "--json", "--threads", "1"});
  ASSERT_EQ(e1.code, 0) << describe(e1);
  EXPECT_NEAR(double(nlohmann::json::parse(e1.out)["loss"]), before, 1e-5 * before);
  clitest::Proc i1 = unroll({"info", (out / "latest.safetensors").string()});
  EXPECT_TRUE(contains(i1.out, "started     from the weights of")) << describe(i1);
  const fs::path out2 = dir_ / "tuned2";
  clitest::Proc f2 =
      unroll({"train", text, "--init-from", ck, "--out", out2.string(), "--steps", "40", "--lr",
              "1e-2", "--batch", "4", "--seq", "16", "--sample-every", "0", "--threads", "1"});
  ASSERT_EQ(f2.code, 0) << describe(f2);
  clitest::Proc e2 =
      unroll({"eval", (out2 / "latest.safetensors").string(), text, "--json", "--threads", "1"});
  EXPECT_LT(double(nlohmann::json::parse(e2.out)["loss"]), before - 0.3) << describe(e2);
  // The model's shape comes from the checkpoint.
  clitest::Proc h =
      unroll({"train", text, "--init-from", ck, "--hidden", "16", "--out", (dir_ / "x").string()});
  expect_clean_error(h, {"--hidden comes from --init-from"}, dir_ / "x");

  // Refusals: nothing is written.
  const std::string o = (dir_ / "o.safetensors").string();
  expect_clean_error(unroll({"import", (dir_ / "m.safetensors").string(), "-o", o}),
                     {"--vocab FILE"});
  expect_clean_error(unroll({"import", (dir_ / "m.safetensors").string(), "--vocab-from",
                             file("s.txt", "abc"), "-o", o}),
                     {"rows", "3 tokens"});
  expect_clean_error(unroll({"import", file("junk.safetensors", "not a tensor file at all"),
                             "--vocab-from", text, "-o", o}),
                     {"junk.safetensors", "save_file"});
  expect_clean_error(unroll({"import", (dir_ / "m.safetensors").string(), "--vocab-from", text,
                             "--map", "rnn", "-o", o}),
                     {"ROLE=PREFIX"});
  const std::string pt = file("m.pt", std::string("PK\x03\x04", 4) + "zip");
  expect_clean_error(
      unroll({"import", pt, "--vocab-from", text, "-o", o}),
      {"pickle", "safetensors.torch.save_file(torch.load(\"" + pt + "\", weights_only=True), \"" +
                     (dir_ / "m.safetensors").string() + "\")"});
  EXPECT_FALSE(fs::exists(o));
  // The same for the commands that read checkpoints, and a hint for a state_dict.
  expect_clean_error(unroll({"eval", pt, text}), {"pickle", "unroll import"});
  expect_clean_error(
      unroll({"export", (dir_ / "m.safetensors").string(), "--onnx", (dir_ / "m.onnx").string()}),
      {"not an unroll checkpoint", "unroll import"});
  // --map takes one value: the file after it stays the positional argument.
  clitest::Proc mp = unroll({"import", "--map", "rnn=lstm", (dir_ / "m.safetensors").string(),
                             "--vocab-from", text, "-o", (dir_ / "mapped.safetensors").string()});
  EXPECT_EQ(mp.code, 0) << describe(mp);
  expect_clean_error(unroll({"import", dir_.string(), "--vocab-from", text, "-o", o}),
                     {"is a folder"});
}

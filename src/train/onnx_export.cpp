#include "unroll/train/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "unroll/core/error.h"

namespace unroll {

namespace {

// Graph-building helpers over the protobuf types.
struct Graph {
  onnx::GraphProto* g;

  void tensor(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    // raw_data is little-endian: the floats as they are on the (little-endian) machines we build
    // for.
    static_assert(std::endian::native == std::endian::little, "raw_data must be little-endian");
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  }
  void ints(const std::string& name, const std::vector<int64_t>& v, bool scalar = false) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    if (!scalar) t->add_dims(int64_t(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in,
                        const std::vector<std::string>& out, const std::string& name) {
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& s : in) n->add_input(s);
    for (auto& s : out) n->add_output(s);
    return n;
  }
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<std::string>& v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRINGS);
    for (auto& x : v) a->add_strings(x);
  }
  // A graph input or output; a dim < 0 is the symbol in `syms` at that position.
  static void value(onnx::ValueInfoProto* v, const std::string& name, int elem,
                    const std::vector<int64_t>& dims, const std::vector<std::string>& syms,
                    const std::string& doc) {
    v->set_name(name);
    v->set_doc_string(doc);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = tt->mutable_shape()->add_dim();
      if (dims[i] >= 0)
        d->set_dim_value(dims[i]);
      else
        d->set_dim_param(syms[i]);
    }
  }
};

// PyTorch's gate blocks in ONNX's order: ONNX block j is PyTorch block order[j].
std::vector<int> onnx_gate_order(CellKind k) {
  if (k == CellKind::Lstm) return {0, 3, 1, 2};  // i f g o → i o f c
  if (k == CellKind::Gru) return {1, 0, 2};      // r z n → z r h
  return {0};
}

// rows [G·H, cols] of src, its gate blocks reordered.
std::vector<float> reorder(const float* src, const std::vector<int>& order, int64_t H,
                           int64_t cols) {
  std::vector<float> out;
  out.reserve(order.size() * H * cols);
  for (int blk : order) out.insert(out.end(), src + blk * H * cols, src + (blk + 1) * H * cols);
  return out;
}

}  // namespace

std::string export_onnx(const Stack<float>& m, const Vocab& vocab, const TextFormat& format,
                        const std::string& doc) {
  const ModelConfig& c = m.config();
  require(c.head == HeadKind::Softmax && c.summary == Summary::Steps && !c.bidirectional &&
              c.categories == 0,
          "only language models are exported to ONNX");
  const int64_t L = c.layers, H = c.hidden, V = c.outputs, E = c.embed;
  const int64_t In0 = E ? E : c.vocab;
  const bool lstm = c.cell == CellKind::Lstm;
  const std::vector<int> order = onnx_gate_order(c.cell);
  const int64_t G = int64_t(order.size());
  auto p = [&](const std::string& name) { return m.params.data() + m.layout().at(name).offset; };

  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("unroll");
  model.set_producer_version(UNROLL_VERSION);
  model.set_doc_string(doc);
  onnx::OperatorSetIdProto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(kOnnxOpset);
  auto meta = [&](const std::string& k, const std::string& v) {
    onnx::StringStringEntryProto* e = model.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  };
  meta("unroll.model", to_json(c).dump());
  meta("unroll.vocab", vocab.to_json().dump());
  meta("unroll.format", format.to_json().dump());

  Graph gr{model.mutable_graph()};
  gr.g->set_name("unroll_" + cell_name(c.cell) + "_lm");
  Graph::value(gr.g->add_input(), "tokens", onnx::TensorProto::INT64, {-1, -1}, {"T", "B"},
               "token ids [T, B], time-major; the vocabulary is metadata unroll.vocab");
  Graph::value(gr.g->add_input(), "h0", onnx::TensorProto::FLOAT, {L, -1, H}, {"", "B", ""},
               "every layer's initial h [L, B, H] (zeros to start)");
  if (lstm)
    Graph::value(gr.g->add_input(), "c0", onnx::TensorProto::FLOAT, {L, -1, H}, {"", "B", ""},
                 "every layer's initial c [L, B, H] (zeros to start)");
  Graph::value(gr.g->add_output(), "logits", onnx::TensorProto::FLOAT, {-1, -1, V}, {"T", "B", ""},
               "next-token logits [T, B, V]");
  Graph::value(gr.g->add_output(), "hn", onnx::TensorProto::FLOAT, {L, -1, H}, {"", "B", ""},
               "every layer's final h [L, B, H]: the next call's h0");
  if (lstm)
    Graph::value(gr.g->add_output(), "cn", onnx::TensorProto::FLOAT, {L, -1, H}, {"", "B", ""},
                 "every layer's final c [L, B, H]: the next call's c0");

  // The input of layer 1.
  std::string x = "x0";
  if (E) {
    const ParamView& v = m.layout().at("embedding.weight");
    gr.tensor("embedding.weight", {V, E},
              std::vector<float>(p("embedding.weight"), p("embedding.weight") + v.size));
    gr.node("Gather", {"embedding.weight", "tokens"}, {x}, "embedding");
  } else {
    gr.ints("onehot.depth", {c.vocab});
    gr.tensor("onehot.values", {2}, {0.0f, 1.0f});
    Graph::attr(gr.node("OneHot", {"tokens", "onehot.depth", "onehot.values"}, {x}, "onehot"),
                "axis", int64_t(-1));
  }
  gr.ints("squeeze.axes", {1});
  gr.ints("slice.axes", {0});
  std::vector<std::string> hn, cn;
  for (int64_t l = 0; l < L; ++l) {
    const std::string k = std::to_string(l);
    const int64_t in = l == 0 ? In0 : H;
    gr.tensor("rnn.W_l" + k, {1, G * H, in}, reorder(p("rnn.weight_ih_l" + k), order, H, in));
    gr.tensor("rnn.R_l" + k, {1, G * H, H}, reorder(p("rnn.weight_hh_l" + k), order, H, H));
    std::vector<float> b = reorder(p("rnn.bias_ih_l" + k), order, H, 1);
    const std::vector<float> bh = reorder(p("rnn.bias_hh_l" + k), order, H, 1);
    b.insert(b.end(), bh.begin(), bh.end());
    gr.tensor("rnn.B_l" + k, {1, 2 * G * H}, b);
    gr.ints("slice.start_l" + k, {l});
    gr.ints("slice.end_l" + k, {l + 1});
    gr.node("Slice", {"h0", "slice.start_l" + k, "slice.end_l" + k, "slice.axes"}, {"h0_l" + k},
            "h0_l" + k);
    std::vector<std::string> ins = {x, "rnn.W_l" + k, "rnn.R_l" + k, "rnn.B_l" + k, "", "h0_l" + k};
    std::vector<std::string> outs = {"y_l" + k, "hn_l" + k};
    if (lstm) {
      gr.node("Slice", {"c0", "slice.start_l" + k, "slice.end_l" + k, "slice.axes"}, {"c0_l" + k},
              "c0_l" + k);
      ins.push_back("c0_l" + k);
      outs.push_back("cn_l" + k);
      cn.push_back("cn_l" + k);
    }
    hn.push_back("hn_l" + k);
    const char* opname = lstm ? "LSTM" : c.cell == CellKind::Gru ? "GRU" : "RNN";
    onnx::NodeProto* n = gr.node(opname, ins, outs, "layer" + std::to_string(l + 1));
    Graph::attr(n, "hidden_size", H);
    if (c.cell == CellKind::Gru) Graph::attr(n, "linear_before_reset", int64_t(1));
    if (c.cell == CellKind::RnnTanh)
      Graph::attr(n, "activations", std::vector<std::string>{"Tanh"});
    if (c.cell == CellKind::RnnRelu)
      Graph::attr(n, "activations", std::vector<std::string>{"Relu"});
    x = "x" + std::to_string(l + 1);
    gr.node("Squeeze", {"y_l" + k, "squeeze.axes"}, {x}, "squeeze_l" + k);
  }
  auto concat = [&](const std::vector<std::string>& parts, const std::string& out) {
    Graph::attr(gr.node("Concat", parts, {out}, out), "axis", int64_t(0));
  };
  concat(hn, "hn");
  if (lstm) concat(cn, "cn");

  // The head: logits = x · Wᵀ + b, W = head.weight or (tied) embedding.weight.
  if (!c.tie) {
    const ParamView& v = m.layout().at("head.weight");
    gr.tensor("head.weight", {V, H},
              std::vector<float>(p("head.weight"), p("head.weight") + v.size));
  }
  gr.tensor("head.bias", {V}, std::vector<float>(p("head.bias"), p("head.bias") + V));
  Graph::attr(gr.node("Transpose", {c.tie ? "embedding.weight" : "head.weight"}, {"head.weight_t"},
                      "head_t"),
              "perm", std::vector<int64_t>{1, 0});
  gr.node("MatMul", {x, "head.weight_t"}, {"head.xw"}, "head_matmul");
  gr.node("Add", {"head.xw", "head.bias"}, {"logits"}, "head_bias");

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw Error(std::string("the ONNX checker refuses the exported graph (a bug in unroll): ") +
                e.what());
  }
  std::string bytes;
  require(model.SerializeToString(&bytes), "cannot serialise the ONNX model");
  return bytes;
}

}  // namespace unroll

#include "unroll/model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "unroll/core/error.h"
#include "unroll/core/json.h"
#include "unroll/model/params.h"

namespace unroll {

std::string cell_name(CellKind k) {
  switch (k) {
    case CellKind::RnnTanh:
      return "rnn";
    case CellKind::RnnRelu:
      return "rnn-relu";
    case CellKind::Lstm:
      return "lstm";
    case CellKind::Gru:
      return "gru";
  }
  return "?";
}

CellKind parse_cell(const std::string& s) {
  if (s == "rnn" || s == "rnn-tanh") return CellKind::RnnTanh;
  if (s == "rnn-relu") return CellKind::RnnRelu;
  if (s == "lstm") return CellKind::Lstm;
  if (s == "gru") return CellKind::Gru;
  throw Error("unknown cell '" + s + "': use one of rnn, rnn-relu, lstm, gru");
}

std::string summary_name(Summary s) {
  switch (s) {
    case Summary::Steps:
      return "steps";
    case Summary::Last:
      return "last";
    case Summary::Mean:
      return "mean";
    case Summary::Max:
      return "max";
  }
  return "?";
}

Summary parse_summary(const std::string& s) {
  if (s == "steps") return Summary::Steps;
  if (s == "last") return Summary::Last;
  if (s == "mean") return Summary::Mean;
  if (s == "max") return Summary::Max;
  throw Error("unknown summary '" + s + "': use one of steps, last, mean, max");
}

std::string init_name(InitKind k) { return k == InitKind::PyTorch ? "pytorch" : "uniform"; }

InitKind parse_init(const std::string& s) {
  if (s == "uniform") return InitKind::Uniform;
  if (s == "pytorch") return InitKind::PyTorch;
  throw Error("unknown initialisation '" + s + "': use uniform or pytorch");
}

void ModelConfig::validate() const {
  auto range = [](const char* name, double v, double lo, double hi) {
    require(v >= lo && v <= hi, std::string("model ") + name + " = " + std::to_string(v) +
                                    " is out of range [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "]");
  };
  range("layers", layers, 1, 64);
  range("hidden", hidden, 1, 1 << 16);
  range("vocab", vocab, 1, 1 << 24);
  range("embed", embed, 0, 1 << 16);
  range("outputs", outputs, 1, 1 << 24);
  range("dropout", dropout, 0, 0.95);
  range("dropout_in", dropout_at(0), 0, 0.95);
  range("dropout_out", dropout_at(layers), 0, 0.95);
  range("embed_dropout", embed_dropout, 0, 0.95);
  range("weight_drop", weight_drop, 0, 0.95);
  require(embed_dropout == 0 || embed > 0,
          "--embed-dropout drops rows of the embedding: give --embed too");
  require(
      !tie || (embed > 0 && embed == state_size() && head == HeadKind::Softmax && outputs == vocab),
      "--tie makes the head's weight the embedding, so it needs --embed equal to --hidden (the "
      "head reads " +
          std::to_string(state_size()) + "-wide states) and a language model (got --embed " +
          std::to_string(embed) + ")");
  range("init_scale", init_scale, 0, 100);
  require(std::isfinite(forget_bias) && std::abs(forget_bias) <= 100,
          "--forget-bias must be a number in [-100, 100]");
  require(std::isfinite(init_scale), "--init-scale must be a finite number");
  require(head != HeadKind::Sigmoid || outputs == 1, "a sigmoid head has exactly one output");
  range("categories", categories, 0, 1 << 20);
  require(categories == 0 || summary == Summary::Steps,
          "a conditional language model (categories) has a head at every step");
  require(!bidirectional || summary != Summary::Steps,
          "a bidirectional encoder needs a per-sequence summary (last, mean or max)");
}

nlohmann::json to_json(const ModelConfig& c) {
  return {{"cell", cell_name(c.cell)},
          {"layers", c.layers},
          {"hidden", c.hidden},
          {"vocab", c.vocab},
          {"embed", c.embed},
          {"head", c.head == HeadKind::Softmax ? "softmax" : "sigmoid"},
          {"outputs", c.outputs},
          {"dropout", c.dropout},
          {"dropout_in", c.dropout_at(0)},
          {"dropout_out", c.dropout_at(c.layers)},
          {"locked_dropout", c.locked},
          {"embed_dropout", c.embed_dropout},
          {"weight_drop", c.weight_drop},
          {"tie", c.tie},
          {"init", init_name(c.init)},
          {"init_scale", c.init_scale},
          {"forget_bias", c.forget_bias},
          {"summary", summary_name(c.summary)},
          {"bidirectional", c.bidirectional},
          {"categories", c.categories}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  try {
    ModelConfig c;
    c.cell = parse_cell(j.at("cell").get<std::string>());
    c.layers = json_field<int>(j, "layers");
    c.hidden = json_field<int>(j, "hidden");
    c.vocab = json_field<int>(j, "vocab");
    c.embed = json_field(j, "embed", 0);
    std::string head = j.value("head", "softmax");
    require(head == "softmax" || head == "sigmoid", "unknown head '" + head + "'");
    c.head = head == "softmax" ? HeadKind::Softmax : HeadKind::Sigmoid;
    c.outputs = json_field<int>(j, "outputs");
    c.dropout = json_field(j, "dropout", 0.0f);
    // Before dropout_in and dropout_out existed, one rate served all three places.
    c.dropout_in = json_field(j, "dropout_in", c.dropout);
    c.dropout_out = json_field(j, "dropout_out", c.dropout);
    c.locked = j.value("locked_dropout", false);
    c.embed_dropout = json_field(j, "embed_dropout", 0.0f);
    c.weight_drop = json_field(j, "weight_drop", 0.0f);
    c.tie = j.value("tie", false);
    c.init = parse_init(j.value("init", "uniform"));  // absent before it existed
    c.init_scale = json_field(j, "init_scale", 0.08f);
    c.forget_bias = json_field(j, "forget_bias", 1.0f);
    c.summary = parse_summary(j.value("summary", "steps"));
    c.bidirectional = j.value("bidirectional", false);
    c.categories = json_field(j, "categories", 0);
    c.validate();
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("model config is malformed: ") + e.what());
  }
}

ParamLayout::ParamLayout(const ModelConfig& c) {
  const int64_t GH = int64_t(gate_count(c.cell)) * c.hidden;
  if (c.embed) add("embedding.weight", {c.vocab, c.embed}, Part::Embedding);
  if (c.categories)
    add("category.weight", {c.categories, int64_t(c.layers) * c.hidden}, Part::Category);
  for (int l = 0; l < c.layers; ++l)
    for (int d = 0; d < c.directions();
         ++d) {  // PyTorch's names: the reversed stack's end in _reverse
      const std::string s = std::to_string(l) + (d ? "_reverse" : "");
      add("rnn.weight_ih_l" + s, {GH, c.input_size(l)}, Part::Recurrent, l);
      add("rnn.weight_hh_l" + s, {GH, c.hidden}, Part::Recurrent, l);
      add("rnn.bias_ih_l" + s, {GH}, Part::Recurrent, l);
      add("rnn.bias_hh_l" + s, {GH}, Part::Recurrent, l);
    }
  if (!c.tie) add("head.weight", {c.outputs, c.state_size()}, Part::Head);
  add("head.bias", {c.outputs}, Part::Head);
  // The offsets a step reads, looked up here once.
  parts_.directions = c.directions();
  if (c.embed) parts_.embedding = at("embedding.weight").offset;
  if (c.categories) parts_.category = at("category.weight").offset;
  for (int l = 0; l < c.layers; ++l)
    for (int d = 0; d < c.directions(); ++d) {
      const std::string s = std::to_string(l) + (d ? "_reverse" : "");
      parts_.rnn.push_back({at("rnn.weight_ih_l" + s).offset, at("rnn.weight_hh_l" + s).offset,
                            at("rnn.bias_ih_l" + s).offset, at("rnn.bias_hh_l" + s).offset});
    }
  parts_.head_weight = at(c.tie ? "embedding.weight" : "head.weight").offset;
  parts_.head_bias = at("head.bias").offset;
}

void ParamLayout::add(std::string name, std::vector<int64_t> shape, Part part, int layer) {
  ParamView v;
  v.part = part;
  v.layer = layer;
  v.name = std::move(name);
  v.shape = std::move(shape);
  v.size = 1;
  for (auto d : v.shape) v.size *= size_t(d);
  v.offset = total_;
  // Keep every view 64-byte aligned (16 floats) for vector loads.
  total_ += (v.size + 15) / 16 * 16;
  views_.push_back(std::move(v));
}

const ParamView& ParamLayout::at(const std::string& name) const {
  for (auto& v : views_)
    if (v.name == name) return v;
  throw Error("no parameter named '" + name + "' in this model");
}

}  // namespace unroll

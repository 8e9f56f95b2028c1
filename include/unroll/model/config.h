// unroll/model/config.h — what a model is: cell, depth, sizes, input and head.
// Serialised as JSON into checkpoints.
#pragma once
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "unroll/nn/cell.h"

namespace unroll {

enum class HeadKind { Softmax, Sigmoid };

// Where the head reads the recurrent states. Steps: at every step (language
// models, per-token tagging). Last / Mean / Max: once per sequence
// (many-to-one classification), from the state at the sequence's own last
// step, the mean over its steps or each unit's maximum over its steps;
// padding after a sequence's end never enters any of them.
enum class Summary { Steps, Last, Mean, Max };

struct ModelConfig {
  CellKind cell = CellKind::Lstm;
  int layers = 2;
  int hidden = 128;
  int vocab = 0;         // input tokens
  int embed = 0;         // 0 = one-hot input (a row lookup of W_ih), else embedding size
  HeadKind head = HeadKind::Softmax;
  int outputs = 0;       // softmax classes (a language model: = vocab); sigmoid: 1
  float dropout = 0.0f;  // on each layer's dense input and before the head (training only)
  float init_scale = 0.08f;  // weights ~ U(−s, s)
  float forget_bias = 1.0f;  // LSTM forget-gate bias at init
  Summary summary = Summary::Steps;
  bool bidirectional = false;  // Last / Mean / Max only: a second stack reads each sequence reversed
  int categories = 0;  // > 0: a conditional language model; each category's learnt vector
                       // (category.weight [categories, layers·hidden]) is the initial h of every layer

  int directions() const { return bidirectional ? 2 : 1; }
  int state_size() const { return hidden * directions(); }  // what the next layer and the head read
  int input_size(int layer) const { return layer == 0 ? (embed ? embed : vocab) : state_size(); }
  void validate() const;  // throws Error naming the bad field and accepted range
};

std::string summary_name(Summary s);
Summary parse_summary(const std::string& s);

nlohmann::json to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const nlohmann::json& j);

}  // namespace unroll

// unroll/model/config.h — what a model is: cell, depth, sizes, input and head.
// Serialised as JSON into checkpoints.
#pragma once
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "unroll/nn/cell.h"

namespace unroll {

enum class HeadKind { Softmax, Sigmoid };

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

  int input_size(int layer) const { return layer == 0 ? (embed ? embed : vocab) : hidden; }
  void validate() const;  // throws Error naming the bad field and accepted range
};

nlohmann::json to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const nlohmann::json& j);

}  // namespace unroll

// unroll/model/config.h — what a model is: cell, depth, sizes, input and head.
// Serialised as JSON into checkpoints.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "unroll/nn/cell.h"

namespace unroll {

enum class HeadKind { Softmax, Sigmoid };

// Where the head reads the recurrent states. Steps: at every step (language
// models, per-token tagging). Last / Mean / Max: once per sequence
// (many-to-one classification), from the state at the sequence's own last
// step, the mean over its steps or each unit's maximum over its steps;
// padding after a sequence's end never enters any of them.
enum class Summary { Steps, Last, Mean, Max };

// How the weights start (Stack::init).
//   Uniform (char-rnn): every weight U(−init_scale, init_scale), biases 0.
//   PyTorch (the default; torch.nn's defaults, chosen by measurement: docs/results.md): the
//   embedding N(0, 1); every recurrent
//     weight and bias U(−1/√H, 1/√H); the head's weight and bias
//     U(−1/√fan_in, 1/√fan_in) (nn.Linear's Kaiming-uniform with a = √5);
//     category vectors, which PyTorch has no layer for, as Uniform.
// The LSTM forget-gate bias (forget_bias) is added on top in both.
enum class InitKind { Uniform, PyTorch };

struct ModelConfig {
  CellKind cell = CellKind::Lstm;
  int layers = 2;
  int hidden = 128;
  int vocab = 0;  // input tokens
  int embed = 0;  // 0 = one-hot input (a row lookup of W_ih), else embedding size
  HeadKind head = HeadKind::Softmax;
  int outputs = 0;  // softmax classes (a language model: = vocab); sigmoid: 1
  // Regularisation, all in training only (Mode::Train):
  float dropout = 0.0f;        // on the input of layers 2..L (the states of the layer below)
  float dropout_in = -1.0f;    // on the embedding's output (layer 1's dense input); < 0: dropout
  float dropout_out = -1.0f;   // on the head's input (the top layer's states); < 0: dropout
  bool locked = false;         // variational dropout (Gal & Ghahramani 2016): one mask per stream
                               // and chunk, the same at every step, instead of one per element
  float embed_dropout = 0.0f;  // drop whole rows of the embedding (word types) per chunk, the
                               // rest scaled by 1/(1−p) (Gal & Ghahramani 2016; Merity et al. 2017)
  float weight_drop = 0.0f;  // DropConnect on every W_hh, one mask per chunk (Wan et al. 2013;
                             // Merity et al. 2017, AWD-LSTM)
  bool tie = false;  // the head's weight is the embedding (Press & Wolf 2017; Inan et al. 2017):
                     // no head.weight; needs embed = hidden and a language model's head
  InitKind init = InitKind::PyTorch;
  float init_scale = 0.08f;  // Uniform: weights ~ U(−s, s)
  float forget_bias = 0.0f;  // LSTM forget-gate bias added at init (default_forget_bias(init))
  Summary summary = Summary::Steps;
  bool bidirectional =
      false;  // Last / Mean / Max only: a second stack reads each sequence reversed
  int categories =
      0;  // > 0: a conditional language model; each category's learnt vector
          // (category.weight [categories, layers·hidden]) is the initial h of every layer

  int directions() const { return bidirectional ? 2 : 1; }
  int state_size() const { return hidden * directions(); }  // what the next layer and the head read
  int input_size(int layer) const { return layer == 0 ? (embed ? embed : vocab) : state_size(); }
  // The dropout rate on dense input k: 0 the embedding's output, 1..L−1 the
  // states of the layer below, L the head's input.
  float dropout_at(int k) const {
    const float p = k == 0 ? dropout_in : k == layers ? dropout_out : dropout;
    return p < 0 ? dropout : p;
  }
  bool any_dropout() const { return dropout_at(0) > 0 || dropout > 0 || dropout_at(layers) > 0; }
  void validate() const;  // throws Error naming the bad field and accepted range
};

std::string summary_name(Summary s);
Summary parse_summary(const std::string& s);
std::string init_name(InitKind k);
InitKind parse_init(const std::string& s);
// The forget-gate bias when none is given: 1 with Uniform (char-rnn; Jozefowicz
// et al. 2015), 0 with PyTorch (torch.nn adds none).
inline float default_forget_bias(InitKind k) { return k == InitKind::PyTorch ? 0.0f : 1.0f; }

nlohmann::json to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const nlohmann::json& j);

}  // namespace unroll

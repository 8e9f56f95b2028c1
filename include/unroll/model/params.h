// unroll/model/params.h — the parameter layout: every parameter of a model in
// one flat buffer, with named views. Names and shapes follow PyTorch
// (rnn.weight_ih_l0 [G*H, In], rnn.weight_hh_l0 [G*H, H], rnn.bias_ih_l0,
// rnn.bias_hh_l0, ...), so checkpoints line up with torch.nn.LSTM/GRU/RNN.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "unroll/model/config.h"

namespace unroll {

enum class Part { Embedding, Category, Recurrent, Head };

struct ParamView {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // in elements, into the flat buffer
  size_t size = 0;    // product of shape
  Part part = Part::Head;
  int layer = -1;  // Part::Recurrent: the layer (either direction)
};

// Where each part's parameters start in the flat buffer, computed once with the layout, so
// that a training step finds its tensors without looking names up.
struct RecurrentOffsets {
  size_t w_ih = 0, w_hh = 0, b_ih = 0, b_hh = 0;
};
struct PartOffsets {
  static constexpr size_t kNone = size_t(-1);
  size_t embedding = kNone, category = kNone;
  size_t head_weight = 0;  // with a tied head: the embedding's
  size_t head_bias = 0;
  std::vector<RecurrentOffsets> rnn;  // [layer · directions + direction]
  int directions = 1;
  const RecurrentOffsets& layer(int l, int d = 0) const { return rnn[size_t(l) * directions + d]; }
};

class ParamLayout {
 public:
  ParamLayout() = default;
  explicit ParamLayout(const ModelConfig& c);
  const PartOffsets& parts() const { return parts_; }
  const std::vector<ParamView>& views() const { return views_; }
  const ParamView& at(const std::string& name) const;  // throws Error if absent
  size_t total() const { return total_; }              // buffer length, with alignment padding
  size_t count() const {                               // the model's parameters
    size_t n = 0;
    for (auto& v : views_) n += v.size;
    return n;
  }

 private:
  void add(std::string name, std::vector<int64_t> shape, Part part, int layer = -1);
  std::vector<ParamView> views_;
  size_t total_ = 0;
  PartOffsets parts_;
};

}  // namespace unroll

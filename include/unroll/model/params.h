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

struct ParamView {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // in elements, into the flat buffer
  size_t size = 0;    // product of shape
};

class ParamLayout {
 public:
  ParamLayout() = default;
  explicit ParamLayout(const ModelConfig& c);
  const std::vector<ParamView>& views() const { return views_; }
  const ParamView& at(const std::string& name) const;  // throws Error if absent
  size_t total() const { return total_; }              // buffer length, with alignment padding
  size_t count() const {                               // the model's parameters
    size_t n = 0;
    for (auto& v : views_) n += v.size;
    return n;
  }

 private:
  void add(std::string name, std::vector<int64_t> shape);
  std::vector<ParamView> views_;
  size_t total_ = 0;
};

}  // namespace unroll

// unroll/train/onnx_export.h — a language model as a standard ONNX graph.
//
// The graph (opset 14, standard operators only, checked by onnx::checker):
//
//   inputs   tokens [T, B] int64;  h0 [L, B, H] float;  c0 [L, B, H] float (LSTM only)
//   x        Gather(embedding.weight, tokens) [T, B, E], or OneHot(tokens, V) [T, B, V]
//   layer k  LSTM | GRU | RNN (x, W_k, R_k, B_k, initial state Slice(h0, k)) → Y [T, 1, B, H]
//            Squeeze(Y, axis 1) is the next layer's x
//   outputs  logits = MatMul(x, Transpose(head.weight)) + head.bias  [T, B, V]
//            hn, cn [L, B, H]: every layer's final state (Concat of Y_h, Y_c)
//
// T and B are free, so one graph runs a whole text at once or one token at a time with the
// state fed back (a sampler). PyTorch's gate blocks are reordered to ONNX's: LSTM i f g o →
// i o f c; GRU r z n → z r h, with linear_before_reset = 1 (PyTorch's GRU applies the reset
// gate to W_hn·h + b_hn). A tied head transposes embedding.weight. Vocabulary, model config
// and text format go into metadata_props as JSON ("unroll.vocab", "unroll.model",
// "unroll.format").
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "unroll/model/model.h"
#include "unroll/text/text_corpus.h"
#include "unroll/text/vocab.h"

namespace unroll {

inline constexpr int kOnnxOpset = 14;

// The serialized ModelProto. Error for a model that is not a language model (a sigmoid head,
// a sequence summary, bidirectional layers or categories) or that the checker refuses.
std::string export_onnx(const Stack<float>& model, const Vocab& vocab, const TextFormat& format,
                        const std::string& doc);

}  // namespace unroll

// unroll/train/import.h — a language model trained in PyTorch becomes an unroll model.
//
// What is read: the state_dict of   [nn.Embedding] → nn.LSTM | nn.GRU | nn.RNN → nn.Linear
// as safetensors.torch.save_file writes it. The parts are found by the suffixes
// PyTorch gives them, under any module prefix:
//   recurrent   PREFIX.weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}, k = 0..L−1
//   head        the one PREFIX.weight [V, H] that has a PREFIX.bias [V]
//   embedding   a PREFIX.weight [V, E] with E the first layer's input width (none: one-hot,
//               E = V); with no head weight but a lone [V] bias, the head is tied to it
// Everything else follows from the shapes: H = weight_hh_l0's columns, the cell from its
// rows (4H LSTM, 3H GRU, H a plain RNN, whose tanh or relu no tensor records), L from the
// layer count. PyTorch's gate orders (LSTM i, f, g, o; GRU r, z, n with the reset gate
// applied after W_hn·h + b_hn) are unroll's, so every tensor is copied as it is; F16,
// BF16 and F64 tensors are converted to F32.
//
// Refused with an Error that names what is wrong (nothing is returned): no recurrent
// layer, several candidates for a part without --map, bidirectional layers (*_reverse),
// proj_size (weight_hr_l*), shapes that disagree between layers, a head whose rows do not
// match the vocabulary, tensors left over, and an unroll checkpoint given as PyTorch's.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "unroll/model/model.h"
#include "unroll/text/vocab.h"
#include "unroll/train/safetensors.h"

namespace unroll {

struct ImportOptions {
  // role ("rnn", "embedding" or "head") → module prefix, as in "lstm" for lstm.weight_ih_l0;
  // "" for tensors at the top level. Settles a file where several tensors could play a role.
  std::map<std::string, std::string> map;
  // "" = from the shapes (a plain RNN is read as tanh, nn.RNN's default); else a cell name
  // (cell.h), which must agree with the shapes: "rnn-relu" for nonlinearity="relu".
  std::string cell;
};

struct Imported {
  std::unique_ptr<Stack<float>> model;
  std::map<std::string, std::string> parts;  // role → the tensor names it was read from
  std::vector<std::string> notes;  // what the user should know (tanh assumed, F16 converted)
};

// The model held by a PyTorch state_dict; `vocab` gives the token of every output row.
// `source` names the file in errors.
Imported import_torch_lm(const SafeTensors& st, const Vocab& vocab, const ImportOptions& opt,
                         const std::string& source);

// A vocabulary file: a JSON list of strings, or one token per line (in which \n, \t, \r and
// \\ stand for a line break, a tab, a carriage return and a backslash, so that a character
// vocabulary fits). The id of a token is its position. level "" = "char" when every token
// is one character, else "word". Errors name the file and the line or entry.
Vocab read_vocab_file(const std::string& path, const std::string& level);

// True when the first bytes are those of a file that torch.save writes (a zip archive or a
// pickle), which unroll does not open: unpickling runs code.
bool looks_like_torch_save(const std::string& path);
// Why such a file is not read, and the Python that converts it, in one line.
std::string torch_save_refusal(const std::string& path);

}  // namespace unroll

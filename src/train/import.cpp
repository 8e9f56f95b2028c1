#include "unroll/train/import.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "unroll/core/error.h"
#include "unroll/text/utf8.h"
#include "unroll/train/checkpoint.h"

namespace unroll {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// "lstm" and "lstm." name the same module; "" is the top level.
std::string as_prefix(const std::string& p) { return p.empty() || p.back() == '.' ? p : p + "."; }

// A name that nn.LSTM / GRU / RNN gives its own parameters: weight_ih_l3, bias_hh_l0_reverse, ...
bool recurrent_name(const std::string& rest) {
  size_t i = 0;
  for (const char* kind : {"weight_", "bias_"})
    if (rest.rfind(kind, 0) == 0) i = std::string(kind).size();
  if (i == 0 || rest.size() < i + 5) return false;
  const std::string part = rest.substr(i, 4);
  if (part != "ih_l" && part != "hh_l" && part != "hr_l") return false;
  size_t j = i + 4, digits = 0;
  while (j < rest.size() && rest[j] >= '0' && rest[j] <= '9') ++j, ++digits;
  return digits > 0 && (j == rest.size() || rest.substr(j) == "_reverse");
}

std::string shown(const std::string& prefix) { return prefix.empty() ? "(top level)" : prefix; }

// Up to ten names, then how many more.
std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 10; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 10) s += ", and " + std::to_string(names.size() - 10) + " more";
  return s;
}

// What is being read: the file's tensors, and which of them a part has taken.
struct Reader {
  const SafeTensors& st;
  std::string source;
  std::set<std::string> used;

  const TensorEntry* find(const std::string& name) const { return st.find(name); }

  std::string where() const { return "'" + source + "'"; }

  // The tensor, which must have this shape; marked as used.
  const TensorEntry& take(const std::string& name, const std::vector<int64_t>& shape,
                          const std::string& why) {
    const TensorEntry* e = st.find(name);
    require(e != nullptr, where() + ": tensor '" + name + "' is missing (" + why + ")");
    require(e->shape == shape, where() + ": tensor '" + name + "' has shape " +
                                   shape_str(e->shape) + " but " + why + " needs " +
                                   shape_str(shape));
    used.insert(name);
    return *e;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (auto& t : st.tensors) n.push_back(t.name);
    return n;
  }
};

}  // namespace

bool looks_like_torch_save(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char b[4] = {};
  if (!in.read(b, 4)) return false;
  const bool zip = b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
  const bool pickle = uint8_t(b[0]) == 0x80 && b[1] >= 2 && b[1] <= 5;
  return zip || pickle;
}

std::string torch_save_refusal(const std::string& path) {
  const std::filesystem::path p(path);
  std::string out = (p.parent_path() / p.stem()).string() + ".safetensors";
  if (out == path) out = (p.parent_path() / p.stem()).string() + "-state.safetensors";
  return "'" + path +
         "' was written by torch.save (a pickle), which unroll does not open: unpickling runs "
         "whatever code the file holds. Convert it in Python: import torch, safetensors.torch; "
         "safetensors.torch.save_file(torch.load(" +
         nlohmann::json(path).dump() + ", weights_only=True), " + nlohmann::json(out).dump() +
         ") (docs/interop.md), then unroll import it";
}

Imported import_torch_lm(const SafeTensors& st, const Vocab& vocab, const ImportOptions& opt,
                         const std::string& source) {
  Reader r{st, source, {}};
  for (auto& [role, prefix] : opt.map)
    require(role == "rnn" || role == "embedding" || role == "head",
            "--map " + role + "=" + prefix + ": unknown part '" + role +
                "'; the parts are rnn, embedding and head");
  // An unroll checkpoint is already what import makes.
  if (auto f = st.metadata.find("format");
      f != st.metadata.end() && f->second.rfind("unroll-checkpoint", 0) == 0) {
    std::string task = "lm";
    if (auto t = st.metadata.find("train"); t != st.metadata.end()) {
      const nlohmann::json train = nlohmann::json::parse(t->second, nullptr, false);
      if (train.is_object()) task = train.value("task", task);
    }
    throw Error(r.where() + " is already an unroll checkpoint, " + task_name(task) +
                ": use it as it is ('unroll info', or " + use_commands(task) + ")");
  }
  require(!st.tensors.empty(), r.where() + " holds no tensors");

  // The recurrent layers: PREFIX.weight_ih_l0.
  std::string rnn;
  if (auto m = opt.map.find("rnn"); m != opt.map.end()) {
    rnn = as_prefix(m->second);
    require(
        r.find(rnn + "weight_ih_l0") != nullptr,
        "--map rnn=" + m->second + ": " + r.where() + " has no tensor '" + rnn + "weight_ih_l0'");
  } else {
    std::vector<std::string> found;
    for (auto& t : st.tensors)
      if (ends_with(t.name, "weight_ih_l0")) found.push_back(t.name.substr(0, t.name.size() - 12));
    require(!found.empty(),
            r.where() +
                " has no recurrent layer: no tensor is named *weight_ih_l0 (as nn.LSTM, "
                "nn.GRU and nn.RNN name theirs). Its tensors: " +
                name_list(r.names()));
    if (found.size() > 1) {
      std::vector<std::string> shown_list;
      for (auto& p : found) shown_list.push_back(shown(p));
      throw Error(r.where() + " has " + std::to_string(found.size()) + " recurrent modules (" +
                  name_list(shown_list) +
                  "). unroll imports one language model, and every tensor in the file must belong "
                  "to it: save "
                  "the state_dict of that model alone (--map rnn=PREFIX names it when the names "
                  "are ambiguous)");
    }
    rnn = found[0];
  }
  for (auto& t : st.tensors) {
    if (t.name.rfind(rnn, 0) != 0) continue;
    const std::string rest = t.name.substr(rnn.size());
    require(!ends_with(rest, "_reverse"),
            r.where() + ": '" + t.name +
                "' belongs to a bidirectional layer, which a language model cannot "
                "use (it would read the tokens it predicts); import a model built with "
                "bidirectional=False");
    require(rest.rfind("weight_hr_l", 0) != 0,
            r.where() + ": '" + t.name +
                "' is a projection (nn.LSTM's proj_size), which unroll does not "
                "have; import a model built without proj_size");
  }

  // Sizes from layer 0: W_hh is [G·H, H], W_ih [G·H, In].
  require(r.find(rnn + "weight_hh_l0") != nullptr,
          r.where() + ": tensor '" + rnn + "weight_hh_l0' is missing (layer 1's recurrent weight)");
  const TensorEntry& hh0 = *r.find(rnn + "weight_hh_l0");
  require(hh0.shape.size() == 2 && hh0.shape[1] > 0 && hh0.shape[0] % hh0.shape[1] == 0,
          r.where() + ": '" + rnn + "weight_hh_l0' has shape " + shape_str(hh0.shape) +
              ": a recurrent weight is [G·H, H] with G = 4 (LSTM), 3 (GRU) or 1 (RNN)");
  const int64_t H = hh0.shape[1], G = hh0.shape[0] / H;
  require(G == 4 || G == 3 || G == 1, r.where() + ": '" + rnn + "weight_hh_l0' has shape " +
                                          shape_str(hh0.shape) + ", " + std::to_string(G) +
                                          "×H rows: not an LSTM (4×H), GRU (3×H) or RNN (1×H)");
  const CellKind by_shape = G == 4 ? CellKind::Lstm : G == 3 ? CellKind::Gru : CellKind::RnnTanh;
  CellKind cell = by_shape;
  Imported out;
  if (!opt.cell.empty()) {
    cell = parse_cell(opt.cell);
    const bool plain = cell == CellKind::RnnTanh || cell == CellKind::RnnRelu;
    require(cell == by_shape || (plain && by_shape == CellKind::RnnTanh),
            "--cell " + opt.cell + " does not fit " + r.where() + ": its recurrent weights have " +
                std::to_string(G) + "×H rows, which is " + cell_name(by_shape) +
                (by_shape == CellKind::RnnTanh ? " (or rnn-relu)" : ""));
  } else if (cell == CellKind::RnnTanh) {
    out.notes.push_back(
        "a plain RNN: read as tanh, nn.RNN's default (no tensor records it); "
        "give --cell rnn-relu if it was built with nonlinearity=\"relu\"");
  }
  const TensorEntry* ih0 = r.find(rnn + "weight_ih_l0");
  require(ih0->shape.size() == 2 && ih0->shape[0] == G * H && ih0->shape[1] > 0,
          r.where() + ": '" + rnn + "weight_ih_l0' has shape " + shape_str(ih0->shape) +
              " but layer 1 needs [" + std::to_string(G * H) + ", input width]");
  const int64_t In0 = ih0->shape[1];
  int L = 0;
  while (r.find(rnn + "weight_ih_l" + std::to_string(L))) ++L;

  // The head: the one X.weight [V, H] with an X.bias [V] (outside the recurrent module); else a
  // lone X.bias [V] (tied to the embedding), or the one bias-free X.weight [V, H].
  std::string head;
  bool tie = false;       // the head's weight is the embedding
  int64_t tied_rows = 0;  // tied and bias-free: no head tensor at all; V is the embedding's rows
  auto outside_rnn = [&](const std::string& name) {
    return name.rfind(rnn, 0) != 0 || !recurrent_name(name.substr(rnn.size()));
  };
  auto several = [&](const std::vector<std::string>& found, const std::string& part,
                     const std::string& role) {
    std::vector<std::string> shown_list;
    for (auto& p : found) shown_list.push_back(shown(p));
    return Error(r.where() + " has " + std::to_string(found.size()) + " candidates for the " +
                 part + " (" + name_list(shown_list) +
                 "). unroll imports one language model, and every tensor in the file must belong "
                 "to it: save "
                 "the state_dict of that model alone (--map " +
                 role +
                 "=PREFIX names the part when the names "
                 "are ambiguous)");
  };
  if (auto m = opt.map.find("head"); m != opt.map.end()) {
    head = as_prefix(m->second);
    const TensorEntry* w = r.find(head + "weight");
    require(w != nullptr || r.find(head + "bias") != nullptr,
            "--map head=" + m->second + ": " + r.where() + " has no tensor '" + head + "weight'");
    require(!w || (w->shape.size() == 2 && w->shape[1] == H),
            "--map head=" + m->second + ": '" + head + "weight' has shape " +
                (w ? shape_str(w->shape) : "") + ", but the output layer reads the " +
                std::to_string(H) + "-wide states: [V, " + std::to_string(H) + "]");
    tie = w == nullptr;
  } else {
    std::vector<std::string> found, lone, bias_free;
    for (auto& t : st.tensors) {
      if (!outside_rnn(t.name)) continue;
      if (ends_with(t.name, "weight") && t.shape.size() == 2 && t.shape[1] == H) {
        const std::string p = t.name.substr(0, t.name.size() - 6);
        const TensorEntry* b = r.find(p + "bias");
        if (b && b->shape == std::vector<int64_t>{t.shape[0]}) found.push_back(p);
        if (!b) bias_free.push_back(p);
      }
      if (ends_with(t.name, "bias") && t.shape.size() == 1 &&
          !r.find(t.name.substr(0, t.name.size() - 4) + "weight"))
        lone.push_back(t.name.substr(0, t.name.size() - 4));
    }
    if (found.size() > 1) throw several(found, "output layer", "head");
    if (found.size() == 1) {
      head = found[0];
    } else if (lone.size() ==
               1) {  // tied: save_model keeps the embedding and drops the head's copy
      head = lone[0];
      tie = true;
    } else if (bias_free.size() == 1) {
      const int64_t R = r.find(bias_free[0] + "weight")->shape[0];
      if (In0 == H && In0 != R) {
        // Layer 1 reads H-wide input that is not one-hot: the one [R, H] weight is the
        // embedding, and the head is tied to it, without a bias.
        tie = true;
        tied_rows = R;
      } else {
        head = bias_free[0];
      }
    } else if (bias_free.size() > 1) {
      throw several(bias_free, "output layer", "head");
    } else {
      throw Error(r.where() + " has no output layer: no [V, " + std::to_string(H) +
                  "] weight (an nn.Linear(" + std::to_string(H) +
                  ", V) head). Its tensors: " + name_list(r.names()));
    }
  }
  const bool head_tensors = tied_rows == 0;
  const TensorEntry* hb = head_tensors ? r.find(head + "bias") : nullptr;
  const TensorEntry* hw = head_tensors && !tie ? r.find(head + "weight") : nullptr;
  const int64_t V = hw ? hw->shape.at(0) : hb ? hb->shape.at(0) : tied_rows;
  require(V == vocab.size(),
          r.where() + ": the output layer " +
              (head_tensors ? "'" + head + (hw ? "weight" : "bias") + "'" : std::string("(tied)")) +
              " has " + std::to_string(V) + " rows but the vocabulary has " +
              std::to_string(vocab.size()) +
              " tokens: give the vocabulary the model was trained with (one "
              "token per row, in row order)");

  // The embedding: an X.weight [V, In0] outside the recurrent module and the head.
  std::string emb;
  bool has_emb = false;
  if (auto m = opt.map.find("embedding"); m != opt.map.end()) {
    emb = as_prefix(m->second);
    has_emb = true;
  } else {
    std::vector<std::string> found;
    for (auto& t : st.tensors) {
      if (!ends_with(t.name, "weight") || !outside_rnn(t.name) ||
          (!tie && t.name == head + "weight"))
        continue;
      if (t.shape == std::vector<int64_t>{V, In0})
        found.push_back(t.name.substr(0, t.name.size() - 6));
    }
    if (found.size() > 1) throw several(found, "embedding", "embedding");
    if (found.empty() && In0 != V) {
      std::string near;  // an embedding of the right width but other rows
      for (auto& t : st.tensors)
        if (ends_with(t.name, "weight") && outside_rnn(t.name) && t.shape.size() == 2 &&
            t.shape[1] == In0 && (tie || t.name != head + "weight"))
          near = " ('" + t.name + "' is " + shape_str(t.shape) +
                 ": its rows must be the output layer's " + std::to_string(V) + ")";
      throw Error(r.where() + ": layer 1 reads " + std::to_string(In0) +
                  " inputs, but there is no [" + std::to_string(V) + ", " + std::to_string(In0) +
                  "] embedding (nn.Embedding(" + std::to_string(V) + ", " + std::to_string(In0) +
                  "))" + near + ", and one-hot input would be " + std::to_string(V) + " wide");
    }
    if (!found.empty()) emb = found[0], has_emb = true;
  }
  require(!tie || (has_emb && In0 == H), r.where() + ": the output layer '" + head +
                                             "' has no weight, and there is no [" +
                                             std::to_string(V) + ", " + std::to_string(H) +
                                             "] embedding for it to share (a tied head)");

  ModelConfig c;
  c.cell = cell;
  c.layers = L;
  c.hidden = int(H);
  c.vocab = int(V);
  c.outputs = int(V);
  c.embed = has_emb ? int(In0) : 0;
  c.tie = tie;
  c.head = HeadKind::Softmax;
  c.validate();
  out.model = make_model<float>(c);
  Stack<float>& m = *out.model;
  std::set<std::string> converted;
  auto copy = [&](const TensorEntry& e, const std::string& to) {
    std::vector<float> x = floats_of(e);
    for (float v : x)
      require(std::isfinite(v),
              r.where() + ": tensor '" + e.name +
                  "' holds NaN or infinite values: the model is broken (was it saved after a "
                  "step whose loss was not finite?)");
    if (e.dtype != DType::F32) converted.insert(dtype_name(e.dtype));
    std::copy(x.begin(), x.end(), m.param(to));
  };
  std::vector<int64_t> biases_absent;
  for (int l = 0; l < L; ++l) {
    const std::string k = std::to_string(l), layer = "layer " + std::to_string(l + 1);
    const int64_t In = l == 0 ? In0 : H;
    copy(r.take(rnn + "weight_ih_l" + k, {G * H, In}, layer + "'s input weight"),
         "rnn.weight_ih_l" + k);
    copy(r.take(rnn + "weight_hh_l" + k, {G * H, H}, layer + "'s recurrent weight"),
         "rnn.weight_hh_l" + k);
    const bool bi = r.find(rnn + "bias_ih_l" + k), bh = r.find(rnn + "bias_hh_l" + k);
    if (bi)
      copy(r.take(rnn + "bias_ih_l" + k, {G * H}, layer + "'s input bias"), "rnn.bias_ih_l" + k);
    if (bh)
      copy(r.take(rnn + "bias_hh_l" + k, {G * H}, layer + "'s recurrent bias"),
           "rnn.bias_hh_l" + k);
    if (!bi && !bh) biases_absent.push_back(l + 1);
    require(bi == bh, r.where() + ": layer " + std::to_string(l + 1) + " has '" + rnn +
                          (bi ? "bias_ih_l" : "bias_hh_l") + k + "' but not '" + rnn +
                          (bi ? "bias_hh_l" : "bias_ih_l") + k + "'");
  }
  if (!biases_absent.empty())
    out.notes.push_back(
        "the recurrent layers have no biases (bias=False): they are zero in the checkpoint");
  if (has_emb) copy(r.take(emb + "weight", {V, In0}, "the embedding"), "embedding.weight");
  if (!tie) copy(r.take(head + "weight", {V, H}, "the output layer's weight"), "head.weight");
  if (hb) {
    copy(r.take(head + "bias", {V}, "the output layer's bias"), "head.bias");
  } else {
    out.notes.push_back("the output layer has no bias (bias=False): it is zero in the checkpoint");
  }

  std::vector<std::string> extra;
  for (auto& t : st.tensors)
    if (!r.used.count(t.name)) extra.push_back(t.name);
  require(extra.empty(), r.where() + ": " + std::to_string(extra.size()) + " tensor" +
                             (extra.size() > 1 ? "s are" : " is") +
                             " not part of an [embedding →] " +
                             cell_name(by_shape == CellKind::RnnTanh ? cell : by_shape) +
                             " → linear language model: " + name_list(extra) +
                             ". unroll imports nn.Embedding, nn.LSTM / nn.GRU / nn.RNN and one "
                             "nn.Linear head; a model "
                             "with other layers cannot be imported");
  for (auto& d : converted) out.notes.push_back(d + " tensors converted to F32");
  out.parts["rnn"] = rnn + "weight_ih_l0 .. " + rnn + "bias_hh_l" + std::to_string(L - 1);
  if (has_emb) out.parts["embedding"] = emb + "weight";
  out.parts["head"] =
      tie ? (hb ? head + "bias" : std::string("no tensor")) + " (weight tied to the embedding)"
          : head + "weight" + (hb ? ", " + head + "bias" : std::string(" (no bias)"));
  return out;
}

Vocab read_vocab_file(const std::string& path, const std::string& level) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), "cannot read vocabulary '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a UTF-8 byte-order mark
  std::vector<std::string> tokens;
  const size_t first = text.find_first_not_of(" \t\r\n");
  const size_t last = text.find_last_not_of(" \t\r\n");
  const bool one_line = first == std::string::npos || text.find('\n', first) > last;
  nlohmann::json j;
  bool json = false;
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    try {
      j = nlohmann::json::parse(text);
      json = true;
    } catch (const nlohmann::json::exception& e) {
      // Several lines that only start with a bracket ("[PAD]") are a line vocabulary.
      require(!one_line,
              "vocabulary '" + path + "' starts like JSON but is not valid JSON: " + e.what());
    }
  }
  if (json && j.is_object()) {  // {token: id}, as json.dump(stoi) writes it: ids 0..n-1, each once
    std::vector<std::string> by_id(j.size());
    std::vector<bool> seen(j.size(), false);
    for (auto& [tok, id] : j.items()) {
      const bool ok = id.is_number_integer() && id.get<int64_t>() >= 0 &&
                      id.get<int64_t>() < int64_t(j.size()) && !seen[id.get<size_t>()];
      require(ok, "vocabulary '" + path + "': token " + nlohmann::json(tok).dump() + " has id " +
                      id.dump() + "; a {token: id} object needs the ids 0.." +
                      std::to_string(j.size() - 1) + ", each once");
      seen[id.get<size_t>()] = true;
      by_id[id.get<size_t>()] = tok;
    }
    tokens = std::move(by_id);
  } else if (json) {
    require(j.is_array(),
            "vocabulary '" + path + "' is JSON but not a list of tokens (or a {token: id} object)");
    for (size_t i = 0; i < j.size(); ++i) {
      require(j[i].is_string(),
              "vocabulary '" + path + "': entry " + std::to_string(i) + " is not a string");
      tokens.push_back(j[i].get<std::string>());
    }
  } else {
    size_t line = 0, at = 0;
    while (at < text.size()) {
      size_t end = text.find('\n', at);
      if (end == std::string::npos) end = text.size();
      std::string raw = text.substr(at, end - at), tok;
      ++line;
      at = end + 1;
      if (!raw.empty() && raw.back() == '\r') raw.pop_back();
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
          tok += raw[i];
          continue;
        }
        const char n = i + 1 < raw.size() ? raw[i + 1] : '\0';
        require(n == 'n' || n == 't' || n == 'r' || n == '\\',
                "vocabulary '" + path + "', line " + std::to_string(line) +
                    ": a backslash starts \\n, \\t, \\r or \\\\ (write a backslash as \\\\)");
        tok += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : '\\';
        ++i;
      }
      require(!tok.empty(), "vocabulary '" + path + "', line " + std::to_string(line) +
                                " is empty: one token per line (a line break is written \\n)");
      tokens.push_back(tok);
    }
  }
  require(!tokens.empty(), "vocabulary '" + path + "' has no tokens");
  std::string lv = level;
  if (lv.empty()) {
    lv = "char";
    for (auto& t : tokens)
      if (decode_utf8(t, "vocabulary '" + path + "'").size() != 1) lv = "word";
  }
  try {
    return Vocab::from_tokens(std::move(tokens), lv);
  } catch (const Error& e) {
    throw Error("vocabulary '" + path + "': " + e.what());
  }
}

}  // namespace unroll

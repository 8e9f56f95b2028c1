// libFuzzer target: `unroll import`'s reader (train/import.h) on arbitrary bytes: the
// safetensors file, then the search for the recurrent layers, head and embedding by name
// and shape, the refusals, the dtype conversions and the model it builds. Any outcome but
// an imported model or an unroll::Error is a finding.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "unroll/core/error.h"
#include "unroll/train/import.h"

namespace {

// A vocabulary the head can match: as many tokens as the first 1-D tensor has elements
// (the head's bias, in a well-formed file), else 8. Tokens are distinct code points.
unroll::Vocab vocab_for(const unroll::SafeTensors& st) {
  int64_t n = 8;
  for (auto& t : st.tensors)
    if (t.shape.size() == 1 && t.shape[0] >= 1 && t.shape[0] <= 4096) {
      n = t.shape[0];
      break;
    }
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t cp = 0x100 + uint32_t(i);  // two-byte UTF-8
    tokens.push_back({char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))});
  }
  return unroll::Vocab::from_tokens(tokens, "char");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::scratch_file("import", data, size);
  try {
    const unroll::SafeTensors st = unroll::load_safetensors(path);
    unroll::ImportOptions opt;
    if (size % 3 == 1) opt.cell = "rnn-relu";  // exercise --cell against the shapes
    unroll::Imported im = unroll::import_torch_lm(st, vocab_for(st), opt, path);
    if (!im.model || im.model->params.size() < im.model->layout().count()) __builtin_trap();
  } catch (const unroll::Error&) {
  }
  return 0;
}

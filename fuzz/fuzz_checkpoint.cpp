// libFuzzer target: the checkpoint reader (safetensors header and data,
// checksum, metadata, model shapes) on arbitrary bytes. Any outcome but a
// loaded checkpoint or an unroll::Error is a finding: another exception, a
// crash, a sanitizer report, a hang, or a large allocation (run with
// -malloc_limit_mb; scripts/fuzz.sh does).
#include <cstdint>

#include "fuzz_util.h"
#include "unroll/core/error.h"
#include "unroll/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::scratch_file("ck", data, size);
  try {
    unroll::Checkpoint ck = unroll::load_checkpoint(path);
    // A checkpoint that loads is whole: the model's parameters are there.
    if (!ck.model || ck.model->params.size() < ck.model->layout().count()) __builtin_trap();
  } catch (const unroll::Error&) {
  }
  return 0;
}

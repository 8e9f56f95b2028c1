// libFuzzer target: the checkpoint reader (safetensors header and data,
// checksum, metadata, model shapes) on arbitrary bytes. Any outcome but a
// loaded checkpoint or an unroll::Error is a finding: another exception, a
// crash, a sanitizer report, a hang, or a large allocation (run with
// -malloc_limit_mb; scripts/fuzz.sh does).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "unroll/core/error.h"
#include "unroll/train/checkpoint.h"

namespace {
// The reader takes a path, as users give it one: each input goes to a file
// in /dev/shm (memory), the same for the whole run of this process.
const std::string& scratch() {
  static const std::string path = "/dev/shm/unroll_fuzz_ck_" + std::to_string(::getpid()) + ".safetensors";
  return path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = scratch();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  try {
    unroll::Checkpoint ck = unroll::load_checkpoint(path);
    // A checkpoint that loads is whole: the model's parameters are there.
    if (!ck.model || ck.model->params.size() < ck.model->layout().count()) __builtin_trap();
  } catch (const unroll::Error&) {
  }
  return 0;
}

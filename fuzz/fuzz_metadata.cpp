// libFuzzer target: the parsers of the JSON a checkpoint's metadata holds —
// the vocabulary, the model, training, optimizer, text-format and
// classification settings — on arbitrary JSON. Each must accept it or throw
// unroll::Error; a vocabulary that parses must round-trip.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_util.h"
#include "unroll/core/error.h"
#include "unroll/model/config.h"
#include "unroll/text/text_corpus.h"
#include "unroll/text/vocab.h"
#include "unroll/train/classify.h"
#include "unroll/train/optimizer.h"
#include "unroll/train/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;  // not JSON: the JSON library's business
  fuzz::returns_or_errs([&] {
    unroll::Vocab v = unroll::Vocab::from_json(j);
    unroll::Vocab again = unroll::Vocab::from_json(v.to_json());
    if (again.size() != v.size()) __builtin_trap();
    for (int i = 0; i < v.size(); ++i)
      if (again.token(i) != v.token(i)) __builtin_trap();
  });
  fuzz::returns_or_errs([&] { unroll::model_config_from_json(j).validate(); });
  fuzz::returns_or_errs([&] { unroll::train_config_from_json(j); });
  fuzz::returns_or_errs([&] { unroll::optim_config_from_json(j); });
  fuzz::returns_or_errs([&] { unroll::TextFormat::from_json(j); });
  fuzz::returns_or_errs([&] { unroll::classify_config_from_json(j); });
  return 0;
}

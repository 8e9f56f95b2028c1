// unroll/model/model.h — the model a configuration describes: a
// LanguageModel (a head at every step, model/language_model.h) for summary
// Steps, else a SequenceModel (one result per sequence,
// model/sequence_model.h). Both are a Stack (model/stack.h): what is loaded,
// saved, initialised, all-reduced and stepped without knowing which.
#pragma once
#include <memory>

#include "unroll/model/language_model.h"
#include "unroll/model/sequence_model.h"

namespace unroll {

template <class F>
std::unique_ptr<Stack<F>> make_model(const ModelConfig& cfg) {
  if (cfg.summary == Summary::Steps) return std::make_unique<LanguageModel<F>>(cfg);
  return std::make_unique<SequenceModel<F>>(cfg);
}

// The model as the kind its configuration makes, or an error that says what it is.
template <class F>
LanguageModel<F>& language_model(Stack<F>& m) {
  auto* lm = dynamic_cast<LanguageModel<F>*>(&m);
  require(lm, "this model classifies whole sequences (summary '" +
                  summary_name(m.config().summary) +
                  "'): it has no head at every step to predict or tag tokens with");
  return *lm;
}
template <class F>
SequenceModel<F>& sequence_model(Stack<F>& m) {
  auto* sm = dynamic_cast<SequenceModel<F>*>(&m);
  require(sm,
          "this model has a head at every step (a language model or tagger): it does not "
          "classify whole sequences");
  return *sm;
}

// Ownership of a model known (and checked) to be a LanguageModel.
template <class F>
std::unique_ptr<LanguageModel<F>> take_language_model(std::unique_ptr<Stack<F>> m) {
  LanguageModel<F>* lm = &language_model(*m);
  m.release();
  return std::unique_ptr<LanguageModel<F>>(lm);
}

}  // namespace unroll

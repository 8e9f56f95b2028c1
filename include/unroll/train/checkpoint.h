// unroll/train/checkpoint.h — checkpoints as safetensors files.
// Tensors: every parameter under its PyTorch-style name (rnn.weight_ih_l0, ...),
// the optimizer state (optimizer.m, optimizer.v, and optimizer.avg when the
// weights are being averaged), and the carried hidden state
// (state.h, state.c: [layers, batch, hidden]). The __metadata__ holds JSON
// strings: "model" (config), "vocab", "train" (options), "progress" (step,
// epoch, chunk, RNG state, best validation loss, ...), "data" (files, hash).
// Python's safetensors can open it: safe_open(path, "np").
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "unroll/model/model.h"
#include "unroll/text/text_corpus.h"
#include "unroll/text/vocab.h"
#include "unroll/train/optimizer.h"

namespace unroll {

struct Checkpoint {
  ModelConfig model_config;
  Vocab vocab;
  nlohmann::json train, progress, data;  // null when absent
  TextFormat format;        // how text becomes tokens (data["format"]; char level if absent)
  std::string task = "lm";  // train["task"]: "lm" (language model), "classify", "tag" or
                            // "conditional" (a language model conditioned on a category)
  std::unique_ptr<Stack<float>> model;  // parameters and carried state loaded
  Buffer<float> opt_m, opt_v;           // empty when absent
  int64_t opt_t = 0;
  Buffer<float> opt_avg;  // weight averaging (optimizer.avg), empty when absent
  int64_t opt_avg_steps = 0;
};

// Writes atomically (temp file, fsync, rename); opt may be null.
void save_checkpoint(const std::string& path, const Stack<float>& model, const Vocab& vocab,
                     const nlohmann::json& train, const nlohmann::json& progress,
                     const nlohmann::json& data, const Optimizer* opt);

// Reads and validates a checkpoint; every error names the file.
Checkpoint load_checkpoint(const std::string& path);

// A task in words ("a classifier") and the command that trains one
// ("unroll classify train"), for "lm", "classify", "tag" and "conditional".
std::string task_name(const std::string& task);
std::string train_command(const std::string& task);
// The commands that use a checkpoint of the task: "'unroll sample' or 'unroll eval'", ...
std::string use_commands(const std::string& task);

// Throws Error unless the checkpoint is of this task ("lm", "classify",
// "tag", "conditional"), naming what it is and the command that uses it.
void require_task(const Checkpoint& ck, const std::string& path, const std::string& task);

}  // namespace unroll

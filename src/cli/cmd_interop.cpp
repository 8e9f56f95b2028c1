// unroll import | export — models in from PyTorch (train/import.h) and out to ONNX
// (train/onnx_export.h); docs/interop.md.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/text/text_corpus.h"
#include "unroll/train/checkpoint.h"
#include "unroll/train/import.h"
#include "unroll/train/onnx_export.h"

namespace unroll::cli {

namespace {
struct ImportArgs {
  std::string file, out, vocab, vocab_from, cell;
  std::vector<std::string> map;
  TextFormat format;
};

}  // namespace

void add_import(CLI::App& app) {
  auto a = std::make_shared<ImportArgs>();
  CLI::App* s = app.add_subcommand(
      "import",
      "Make an unroll checkpoint from a PyTorch language model's state_dict (safetensors)");
  s->footer(
      "The model: [nn.Embedding] -> nn.LSTM | nn.GRU | nn.RNN (any layers) -> nn.Linear, saved "
      "with\n"
      "safetensors.torch.save_file(model.state_dict(), PATH). Parts are found by PyTorch's names "
      "under any\n"
      "prefix; sizes and cell come from the shapes. Example:\n"
      "  unroll import model.safetensors --vocab-from input.txt -o model.ck.safetensors\n"
      "  unroll sample model.ck.safetensors -p \"ROMEO:\"\n"
      "See docs/interop.md.");
  s->add_option("file", a->file, "The state_dict as safetensors (torch.save files are not read)")
      ->required();
  s->add_option("-o,--out", a->out, "The unroll checkpoint to write")->required();
  s->add_option("--vocab", a->vocab,
                "The tokens of the output rows, in row order: a JSON list, or one per line (\\n, "
                "\\t, \\r, \\\\ escaped); required unless --vocab-from is given");
  s->add_option(
      "--vocab-from", a->vocab_from,
      "Build the vocabulary from this text exactly as 'unroll train' would (with --level and the "
      "word options); required unless --vocab is given");
  s->add_option(
       "--level", a->format.level,
       "Tokens: char (Unicode code points) or word (default: char; with --vocab, word when a token "
       "is longer than one character)")
      ->check(CLI::IsMember({"char", "word"}));
  s->add_flag("--pretokenized", a->format.pretokenized,
              "Word level (implies --level word): the text is words separated by spaces, one "
              "sentence a line; "
              "each line ends with <eos>");
  s->add_option("--min-count", a->format.min_count,
                "--vocab-from, word level: words seen fewer times become <unk>")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40))
      ->capture_default_str();
  s->add_option(
       "--max-vocab", a->format.max_vocab,
       "--vocab-from, word level: the most frequent words, this many tokens with <unk> (0 = all)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40))
      ->capture_default_str();
  s->add_option(
       "--map", a->map,
       "ROLE=PREFIX: which module is the rnn, embedding or head, for a file where several could be "
       "(e.g. --map rnn=encoder; repeatable; default: found by their names and shapes)")
      ->allow_extra_args(false);
  s->add_option(
       "--cell", a->cell,
       "The cell when the shapes cannot tell: rnn-relu for nn.RNN(nonlinearity=\"relu\") (default: "
       "from the shapes; a plain RNN is read as tanh)")
      ->check(CLI::IsMember({"rnn", "rnn-relu", "lstm", "gru"}));
  s->callback([a, s]() {
    require(
        a->vocab.empty() != a->vocab_from.empty(),
        a->vocab.empty()
            ? "give the vocabulary: --vocab FILE (the tokens in row order) or --vocab-from TEXT "
              "(built from the training text as 'unroll train' builds it)"
            : "--vocab and --vocab-from both give the vocabulary: give one");
    if (!s->count("--level") &&
        (a->format.pretokenized || s->count("--min-count") || s->count("--max-vocab")))
      a->format.level = "word";
    for (const char* only : {"--min-count", "--max-vocab"})
      require(!s->count(only) || !a->vocab_from.empty(),
              std::string(only) +
                  " shapes a vocabulary built by --vocab-from; --vocab gives it as it is");
    ImportOptions opt;
    opt.cell = a->cell;
    for (const std::string& m : a->map) {
      const size_t eq = m.find('=');
      require(eq != std::string::npos && eq > 0,
              "--map " + m +
                  ": write ROLE=PREFIX, e.g. --map rnn=encoder (roles: rnn, embedding, head)");
      require(opt.map.emplace(m.substr(0, eq), m.substr(eq + 1)).second,
              "--map " + m.substr(0, eq) + " is given twice");
    }
    for (const std::string* in : {&a->file, &a->vocab, &a->vocab_from}) {
      if (in->empty()) continue;
      const PathKind k = path_kind(*in, "input");
      require(k != PathKind::None, "cannot read '" + *in + "': no such file");
      require(k != PathKind::Folder, "'" + *in + "' is a folder: give a file");
    }
    if (looks_like_torch_save(a->file)) throw Error(torch_save_refusal(a->file));
    check_output_path(a->out, "checkpoint", {a->file, a->vocab, a->vocab_from});

    // The vocabulary and how text becomes its tokens.
    Vocab vocab;
    std::string vocab_said;
    if (!a->vocab.empty()) {
      vocab = read_vocab_file(a->vocab, s->count("--level") ? a->format.level : "");
      a->format.level = vocab.level();
      vocab_said = "from '" + a->vocab + "'";
    } else {
      vocab = load_corpus({a->vocab_from}, nullptr, a->format).vocab;
      vocab_said = "built from '" + a->vocab_from + "'";
    }
    const bool eos_unused =
        vocab.level() == "word" && !a->format.pretokenized && vocab.find("<eos>") >= 0;
    a->format.validate();

    SafeTensors st;
    try {
      st = load_safetensors(a->file);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) +
                  " (unroll import reads what safetensors.torch.save_file(model.state_dict(), "
                  "PATH) writes)");
    }
    Imported im = import_torch_lm(st, vocab, opt, a->file);
    const ModelConfig& c = im.model->config();
    nlohmann::json parts = im.parts;
    nlohmann::json train = {
        {"task", "lm"},
        {"imported_from",
         {{"file", std::filesystem::absolute(a->file).lexically_normal().string()},
          {"kind", "a PyTorch state_dict"},
          {"parts", parts},
          {"vocab", vocab_said},
          {"command", command_line()}}}};
    nlohmann::json data = {{"format", a->format.to_json()}};
    save_checkpoint(a->out, *im.model, vocab, train, nullptr, data, nullptr);

    std::printf("imported    '%s' -> '%s'\n", a->file.c_str(), a->out.c_str());
    std::printf("model       %s, %d layer%s of %d units, %s input%s, %zu parameters\n",
                cell_name(c.cell).c_str(), c.layers, c.layers > 1 ? "s" : "", c.hidden,
                c.embed ? ("embedding " + std::to_string(c.embed)).c_str() : "one-hot",
                c.tie ? ", head tied to the embedding" : "", im.model->layout().count());
    for (const char* role : {"embedding", "rnn", "head"})
      if (im.parts.count(role)) std::printf("%-11s %s\n", role, im.parts[role].c_str());
    std::printf("vocabulary  %d tokens, %s level, %s\n", vocab.size(), vocab.level().c_str(),
                vocab_said.c_str());
    if (eos_unused)
      im.notes.push_back(
          "the vocabulary has <eos>: if the model was trained on pre-tokenized text (Penn Treebank "
          "style, one sentence a line), import again with --pretokenized, or spaces and line ends "
          "will read as <unk>");
    for (auto& n : im.notes) std::printf("note        %s\n", n.c_str());
    std::printf(
        "next        unroll sample %s -p TEXT; unroll eval %s TEXT; unroll cells %s --text TEXT\n",
        a->out.c_str(), a->out.c_str(), a->out.c_str());
  });
}

void add_export(CLI::App& app) {
  struct Args {
    std::string checkpoint, onnx;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s =
      app.add_subcommand("export", "Write a language model as an ONNX graph that onnxruntime runs");
  s->footer(
      "Inputs: tokens [T, B] int64, h0 (and for an LSTM c0) [layers, B, hidden]; outputs: logits "
      "[T, B, V],\n"
      "hn (and cn). Standard operators, opset " +
      std::to_string(kOnnxOpset) +
      "; the vocabulary and the model config are in the\n"
      "metadata (unroll.vocab, unroll.model). Example:\n"
      "  unroll export runs/shakespeare/best.safetensors --onnx shakespeare.onnx\n"
      "See docs/interop.md for running it in Python and JavaScript.");
  s->add_option("checkpoint", a->checkpoint, "Checkpoint file (.safetensors) of a language model")
      ->required();
  s->add_option("--onnx", a->onnx, "The ONNX file to write (required)")->required();
  s->callback([a]() {
    check_output_path(a->onnx, "ONNX file", {a->checkpoint});
    Checkpoint ck = load_checkpoint(a->checkpoint);
    require(ck.task == "lm",
            "'" + a->checkpoint + "' is a " +
                (ck.task == "classify" ? std::string("classifier")
                 : ck.task == "tag"    ? std::string("tagger")
                                       : std::string("conditional language model")) +
                ": unroll export --onnx writes language models (from 'unroll train' or 'unroll "
                "import') only; "
                "classifiers, taggers and conditional models are not exported yet");
    const ModelConfig& c = ck.model_config;
    const std::string bytes =
        export_onnx(*ck.model, ck.vocab, ck.format,
                    "unroll " + cell_name(c.cell) + " language model from " + a->checkpoint);
    write_file_atomic(a->onnx, {bytes}, "ONNX file");
    const std::string state = c.cell == CellKind::Lstm ? "h0, c0" : "h0";
    std::printf("exported    '%s' -> '%s' (%.1f MB, opset %d)\n", a->checkpoint.c_str(),
                a->onnx.c_str(), bytes.size() / 1e6, kOnnxOpset);
    std::printf("model       %s, %d layer%s of %d units, %s input, %d tokens\n",
                cell_name(c.cell).c_str(), c.layers, c.layers > 1 ? "s" : "", c.hidden,
                c.embed ? ("embedding " + std::to_string(c.embed)).c_str() : "one-hot",
                ck.vocab.size());
    std::printf("inputs      tokens [T, B] int64; %s [%d, B, %d] float\n", state.c_str(), c.layers,
                c.hidden);
    std::printf("outputs     logits [T, B, %d]; %s [%d, B, %d]\n", c.outputs,
                c.cell == CellKind::Lstm ? "hn, cn" : "hn", c.layers, c.hidden);
  });
}

}  // namespace unroll::cli

#include "unroll/train/checkpoint.h"

#include "unroll/core/error.h"
#include "unroll/model/params.h"
#include "unroll/train/import.h"
#include "unroll/train/safetensors.h"

namespace unroll {

namespace {
const char* kFormat = "unroll-checkpoint-1";

std::string dump(const nlohmann::json& j) { return j.is_null() ? "null" : j.dump(); }
}  // namespace

void save_checkpoint(const std::string& path, const Stack<float>& model, const Vocab& vocab,
                     const nlohmann::json& train, const nlohmann::json& progress,
                     const nlohmann::json& data, const Optimizer* opt) {
  SafeTensors st;
  st.metadata["format"] = kFormat;
  st.metadata["model"] = to_json(model.config()).dump();
  st.metadata["vocab"] = vocab.to_json().dump();
  st.metadata["train"] = dump(train);
  st.metadata["progress"] = dump(progress);
  st.metadata["data"] = dump(data);
  for (auto& v : model.layout().views())
    st.add_f32(v.name, v.shape, model.params.data() + v.offset);
  if (opt) {
    const int64_t n = int64_t(model.params.size());
    if (!opt->m.empty()) st.add_f32("optimizer.m", {n}, opt->m.data());
    if (!opt->v.empty()) st.add_f32("optimizer.v", {n}, opt->v.data());
    st.metadata["optimizer.t"] = std::to_string(opt->t);
    if (opt->averaging()) {
      st.add_f32("optimizer.avg", {n}, opt->avg.data());
      st.metadata["optimizer.avg_steps"] = std::to_string(opt->avg_steps);
    }
  }
  const auto& c = model.config();
  const auto* lm = dynamic_cast<const LanguageModel<float>*>(&model);
  if (lm && lm->state_batch() > 0) {  // the carried state: resume goes on from it
    std::vector<int64_t> shape = {c.layers, lm->state_batch(), c.hidden};
    st.add_f32("state.h", shape, lm->state_h.data());
    if (c.cell == CellKind::Lstm) st.add_f32("state.c", shape, lm->state_c.data());
  }
  save_safetensors(path, st);
}

Checkpoint load_checkpoint(const std::string& path) {
  if (looks_like_torch_save(path)) throw Error(torch_save_refusal(path));
  SafeTensors st = load_safetensors(path);
  auto meta = [&](const std::string& key) -> nlohmann::json {
    auto it = st.metadata.find(key);
    require(it != st.metadata.end(),
            "'" + path + "' is not an unroll checkpoint: metadata '" + key + "' is missing");
    try {
      return nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      throw Error("'" + path + "': metadata '" + key + "' is not valid JSON: " + e.what());
    }
  };
  // unroll always writes a checksum; a file without one is foreign or had
  // the checksum's key damaged.
  require(st.metadata.count(kChecksumKey) == 1,
          "'" + path + "' has no checksum (metadata '" + kChecksumKey +
              "'): it is not an unroll checkpoint, or its header is damaged (a PyTorch state_dict "
              "becomes "
              "one with 'unroll import')");
  auto fmt = st.metadata.find("format");
  require(fmt != st.metadata.end() && fmt->second == kFormat,
          "'" + path + "' is not an unroll checkpoint (expected format " + kFormat +
              "; a PyTorch state_dict becomes one with 'unroll import')");
  Checkpoint ck;
  try {
    ck.model_config = model_config_from_json(meta("model"));
    ck.vocab = Vocab::from_json(meta("vocab"));
  } catch (const Error& e) {
    throw Error("'" + path + "': " + e.what());
  }
  require(ck.vocab.size() == ck.model_config.vocab,
          "'" + path + "': vocabulary has " + std::to_string(ck.vocab.size()) +
              " tokens but the model expects " + std::to_string(ck.model_config.vocab));
  ck.train = meta("train");
  ck.progress = meta("progress");
  ck.data = meta("data");
  try {
    ck.format = TextFormat::from_json(
        ck.data.is_object() ? ck.data.value("format", nlohmann::json()) : nlohmann::json());
  } catch (const std::exception& e) {
    throw Error("'" + path + "': the text format is malformed: " + e.what());
  }
  if (ck.train.is_object()) ck.task = ck.train.value("task", "lm");
  require(ck.task == "lm" || ck.task == "classify" || ck.task == "tag" || ck.task == "conditional",
          "'" + path + "': unknown task '" + ck.task + "'");
  // The file holds every parameter tensor with the shape the config asks for
  // before the model's memory is allocated: a config that asks for terabytes
  // is an error here, not an allocation.
  const ParamLayout layout(ck.model_config);
  for (const ParamView& v : layout.views()) {
    const TensorEntry* e = st.find(v.name);
    require(e != nullptr,
            "'" + path + "': tensor '" + v.name + "' is missing (the model config needs it)");
    require(e->shape == v.shape, "'" + path + "': tensor '" + v.name + "' has shape " +
                                     shape_str(e->shape) + " but the model config needs " +
                                     shape_str(v.shape));
  }
  ck.model = make_model<float>(ck.model_config);
  Stack<float>& m = *ck.model;
  for (auto& v : m.layout().views()) {
    std::vector<float> x = st.get_f32(v.name, v.shape);
    std::copy(x.begin(), x.end(), m.params.begin() + v.offset);
  }
  const int64_t n = int64_t(m.params.size());
  auto flat = [&](const std::string& name, Buffer<float>& out) {
    if (!st.find(name)) return;
    std::vector<float> x = st.get_f32(name, {n});
    out.assign(x.begin(), x.end());
  };
  flat("optimizer.m", ck.opt_m);
  flat("optimizer.v", ck.opt_v);
  flat("optimizer.avg", ck.opt_avg);
  auto count = [&](const std::string& key, int64_t& out) {
    if (auto it = st.metadata.find(key); it != st.metadata.end()) {
      const std::string& t = it->second;
      require(
          !t.empty() && t.size() <= 18 && t.find_first_not_of("0123456789") == std::string::npos,
          "'" + path + "': " + key + " is not a step count");
      out = std::stoll(t);
    }
  };
  count("optimizer.t", ck.opt_t);
  count("optimizer.avg_steps", ck.opt_avg_steps);
  if (const TensorEntry* h = st.find("state.h")) {
    require(h->shape.size() == 3 && h->shape[0] == m.config().layers &&
                h->shape[2] == m.config().hidden && h->shape[1] >= 1 && h->shape[1] <= (1 << 20),
            "'" + path + "': tensor state.h has the wrong shape");
    auto* carried = dynamic_cast<LanguageModel<float>*>(&m);
    require(carried,
            "'" + path + "': a model of whole sequences has no carried state, but state.h is here");
    LanguageModel<float>& lm = *carried;
    lm.reset_state(int(h->shape[1]));
    std::vector<float> x = st.get_f32("state.h", h->shape);
    std::copy(x.begin(), x.end(), lm.state_h.begin());
    if (st.find("state.c")) {
      x = st.get_f32("state.c", h->shape);
      std::copy(x.begin(), x.end(), lm.state_c.begin());
    }
  }
  return ck;
}

std::string task_name(const std::string& task) {
  return task == "classify"      ? "a classifier"
         : task == "tag"         ? "a tagger"
         : task == "conditional" ? "a conditional language model"
                                 : "a language model";
}

std::string train_command(const std::string& task) {
  return task == "classify"      ? "unroll classify train"
         : task == "tag"         ? "unroll tag train"
         : task == "conditional" ? "unroll conditional"
                                 : "unroll train";
}

std::string use_commands(const std::string& task) {
  return task == "classify"      ? "'unroll classify predict' or 'unroll classify eval'"
         : task == "tag"         ? "'unroll tag predict' or 'unroll tag eval'"
         : task == "conditional" ? "'unroll sample --category'"
                                 : "'unroll sample' or 'unroll eval'";
}

void require_task(const Checkpoint& ck, const std::string& path, const std::string& task) {
  if (ck.task == task) return;
  throw Error("'" + path + "' is " + task_name(ck.task) + " (use " + use_commands(ck.task) +
              "), not " + task_name(task) + " (train one with '" + train_command(task) + "')");
}

}  // namespace unroll

// Export to and import from Hugging Face model folders (docs/export.md). Every Input-Norm scale
// vector folds into the linear maps that read the norm, so a model trained with any variant is,
// at inference, a `standard` Pre-Norm transformer: Llama (dense), Qwen3 (dense + QK-norm),
// Mixtral (MoE) or Qwen3-MoE (MoE + QK-norm) in transformers' tensor names and config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/model.h"
#include "scalevec/safetensors.h"

namespace scalevec {

class ExportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class HfArch { Llama, Qwen3, Mixtral, Qwen3Moe };
const char* hf_model_type(HfArch arch);    // "llama", "qwen3", "mixtral", "qwen3_moe"
const char* hf_architecture(HfArch arch);  // "LlamaForCausalLM", ...
// The architecture a config maps to: QK-norm picks the Qwen3 family, MoE the sparse one.
HfArch hf_arch_for(const ModelConfig& cfg);

// What in `cfg` has no counterpart in the HF architectures, one line per blocker naming its
// config key; empty when the model exports exactly.
std::vector<std::string> hf_export_blockers(const ModelConfig& cfg);

// The one tensor of a `standard` norm, its gamma; ExportError names `name` for any other norm.
at::Tensor standard_norm_weight(const ScaleNormImpl& norm, const std::string& name);
// The `standard` model config that fold_to_standard() produces for `model`.
ModelConfig standard_config_for(const TransformerImpl& model);
// A `standard` model (same device and dtype) computing the function of `model`: an Input-Norm
// whose branches all read one plain vector g keeps it as its weight; otherwise its weight is 1
// and W_b becomes W_b diag(g_in_b). Output-side scales fold into rows, diag(g_out_b) W_b; a tied
// LM head that needs them is untied. Output-Norms keep g as their weight. DNP branches (a
// normalization between W_b and g_out_b) do not fold: ExportError. `dtype` (default: the
// model's) is the result's; folding multiplies in float64. `notes` gets a line per norm.
Transformer fold_to_standard(TransformerImpl& model, std::vector<std::string>* notes = nullptr,
                             std::optional<at::ScalarType> dtype = std::nullopt);

// A standard model's tensors under transformers' names for `arch`, cast to `dtype`; W_q and W_k
// rows (and q_norm/k_norm weights) permuted per head from scalevec's interleaved RoPE pairs
// (x[2i], x[2i+1]) to transformers' split halves (x[i], x[i + d/2]).
NamedTensors hf_tensors(TransformerImpl& standard, HfArch arch, at::ScalarType dtype);
// The inverse: copies `tensors` into a standard model built from the matching config. Every
// expected name must be present with its shape, and no other name: errors list what differs.
void load_hf_tensors(TransformerImpl& standard, HfArch arch, const NamedTensors& tensors,
                     const std::string& origin);

// config.json of a standard model config.
std::string hf_config_json(const ModelConfig& cfg, HfArch arch, at::ScalarType dtype);
struct HfModelSpec {
  ModelConfig model;  // standard norms everywhere
  HfArch arch = HfArch::Llama;
};
// Reads config.json; fields scalevec cannot represent are refused, naming the key.
HfModelSpec model_config_from_hf(const std::string& config_json, const std::string& origin);

struct HfExportOptions {
  std::string out_dir;
  at::ScalarType dtype = at::kFloat;         // float32, bfloat16 (float64 for exactness checks)
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default "5GB"
  std::string tokenizer;                     // sentencepiece model to copy; "" for none
  bool overwrite = false;                    // replace an earlier export in out_dir
};
struct HfExportReport {
  HfArch arch = HfArch::Llama;
  std::vector<std::string> files;
  std::vector<std::string> notes;  // what folding did, per norm
  uint64_t tensor_bytes = 0;
};
// fold_to_standard + hf_tensors + config.json + tokenizer files into opts.out_dir.
HfExportReport export_hf(TransformerImpl& model, const HfExportOptions& opts);

// The model config of an exported folder (DIR/config.json).
HfModelSpec read_hf_spec(const std::string& dir);
// Differences between a training config's model and the folder's that make loading impossible,
// one line each naming the scalevec key and the config.json value; empty when it loads.
std::vector<std::string> hf_load_mismatches(const ModelConfig& wanted, const HfModelSpec& spec,
                                            const std::string& dir);
// Loads DIR's weights into `model` (a standard model whose config matches: see above).
void load_hf_weights(const std::string& dir, TransformerImpl& model);

}  // namespace scalevec

// Writing and reading whole Hugging Face model folders (docs/export.md).
#include <ATen/ATen.h>

#include <filesystem>

#include "scalevec/hf_format.h"
#include "scalevec/json.h"
#include "scalevec/manifest.h"

namespace scalevec {
namespace fs = std::filesystem;

namespace {

// Files an export writes; a folder holding any of them is an earlier export.
bool is_export_file(const std::string& name) {
  return name == "config.json" || name == "model.safetensors.index.json" ||
         (name.rfind("model", 0) == 0 && fs::path(name).extension() == ".safetensors");
}

std::string tokenizer_config_json(const ModelConfig& c) {
  // transformers' sentencepiece LlamaTokenizer reads tokenizer.model; legacy mode encodes as
  // sentencepiece itself does, and scalevec's shards carry no BOS (documents end with EOS).
  return "{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"bos_token\": \"<s>\",\n"
         "  \"eos_token\": \"</s>\",\n  \"unk_token\": \"<unk>\",\n  \"pad_token\": null,\n"
         "  \"add_bos_token\": false,\n  \"add_eos_token\": false,\n  \"legacy\": true,\n"
         "  \"clean_up_tokenization_spaces\": false,\n  \"sp_model_kwargs\": {},\n"
         "  \"model_max_length\": " +
         std::to_string(c.max_seq_len) + "\n}\n";
}

}  // namespace

HfExportReport export_hf(TransformerImpl& model, const HfExportOptions& opts) {
  const auto blockers = hf_export_blockers(model.config());
  if (!blockers.empty()) {
    std::string msg = "this model has no exact Hugging Face counterpart:";
    for (const auto& b : blockers) msg += "\n  " + b;
    throw ExportError(msg);
  }
  if (opts.out_dir.empty()) throw ExportError("export needs an output folder (--out DIR)");
  const fs::path out(opts.out_dir);
  if (fs::exists(out) && !fs::is_directory(out))
    throw ExportError(opts.out_dir + " exists and is not a folder");
  if (fs::is_directory(out) && !opts.overwrite)
    for (const auto& e : fs::directory_iterator(out))
      if (is_export_file(e.path().filename().string()))
        throw ExportError(opts.out_dir + " already holds an export (" +
                          e.path().filename().string() + "); pass --overwrite to replace it");
  if (!opts.tokenizer.empty() && !fs::is_regular_file(opts.tokenizer))
    throw ExportError("tokenizer " + opts.tokenizer +
                      " (data.tokenizer) does not exist; pass --no-tokenizer to export without");

  HfExportReport report;
  Transformer standard = fold_to_standard(model, &report.notes, at::kDouble);
  const ModelConfig& std_cfg = standard->config();
  report.arch = hf_arch_for(std_cfg);
  const NamedTensors tensors = hf_tensors(*standard, report.arch, opts.dtype);
  for (const auto& nt : tensors)
    report.tensor_bytes += nt.second.numel() * nt.second.element_size();

  // Everything goes to a sibling folder first: a failed export leaves an earlier one intact.
  const fs::path partial = out.string() + ".partial";
  fs::remove_all(partial);
  fs::create_directories(partial);
  try {
    report.files = write_safetensors_folder(partial.string(), tensors, opts.max_shard_bytes,
                                            {{"format", "pt"}});  // transformers requires "pt"
    write_text_atomically((partial / "config.json").string(),
                          hf_config_json(std_cfg, report.arch, opts.dtype));
    write_text_atomically((partial / "generation_config.json").string(),
                          "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n");
    report.files.insert(report.files.end(), {"config.json", "generation_config.json"});
    if (!opts.tokenizer.empty()) {
      fs::copy_file(opts.tokenizer, partial / "tokenizer.model");
      write_text_atomically((partial / "tokenizer_config.json").string(),
                            tokenizer_config_json(std_cfg));
      write_text_atomically((partial / "special_tokens_map.json").string(),
                            "{\n  \"bos_token\": \"<s>\",\n  \"eos_token\": \"</s>\",\n  "
                            "\"unk_token\": \"<unk>\"\n}\n");
      report.files.insert(report.files.end(),
                          {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"});
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(partial, ec);
    throw;
  }
  if (fs::exists(out)) {
    const fs::path replaced = out.string() + ".replaced";
    fs::remove_all(replaced);
    fs::rename(out, replaced);
    fs::rename(partial, out);
    fs::remove_all(replaced);
  } else {
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    fs::rename(partial, out);
  }
  return report;
}

HfModelSpec read_hf_spec(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::is_regular_file(path))
    throw ExportError(dir + " is not a Hugging Face model folder: it has no config.json");
  return model_config_from_hf(read_text_file(path), path);
}

void load_hf_weights(const std::string& dir, TransformerImpl& model) {
  const HfModelSpec spec = read_hf_spec(dir);
  const auto mismatches = hf_load_mismatches(model.config(), spec, dir);
  if (!mismatches.empty()) {
    std::string msg = "the model config does not match " + dir + " (scalevec import --from " + dir +
                      " writes one that does):";
    for (const auto& m : mismatches) msg += "\n  " + m;
    throw ExportError(msg);
  }
  load_hf_tensors(model, spec.arch, read_safetensors_folder(dir), dir);
}

}  // namespace scalevec

// export and import subcommands: Hugging Face model folders (docs/export.md).
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "scalevec/checkpoint.h"
#include "scalevec/config_io.h"
#include "scalevec/hf_format.h"
#include "scalevec/log.h"

namespace scalevec::cli {
namespace fs = std::filesystem;

namespace {

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "fp64" || name == "float64") return at::kDouble;
  throw UsageError("--dtype must be fp32, bf16 or fp64, got '" + name + "'");
}

std::string newest_checkpoint(const Config& cfg) {
  const auto all = list_checkpoints(cfg.train.out_dir);
  if (all.empty())
    throw UsageError("no checkpoint in train.out_dir " + cfg.train.out_dir +
                     "; pass --checkpoint FILE");
  return all.back();
}

}  // namespace

int cmd_export(const Args& args) {
  const Config cfg = args.load();
  if (args.get("format", "hf") != "hf")
    throw UsageError("export: --format must be hf (the only format), got '" + args.get("format") +
                     "'");
  if (!args.has("out")) throw UsageError("export: --out DIR is required");
  const std::string ckpt = args.has("checkpoint") ? args.get("checkpoint") : newest_checkpoint(cfg);
  Transformer model(cfg.model, cfg.train.seed);
  const LoadedCheckpoint loaded = load_checkpoint(ckpt, *model, nullptr);
  Config saved = load_config_string(loaded.config_yaml, {}, ckpt + ":config");
  // Capacity changes no tensor: --set model.moe.capacity_factor=0 exports the drop-free model.
  if (saved.model.moe.capacity_factor != cfg.model.moe.capacity_factor)
    log::warn("model.moe.capacity_factor: the checkpoint trained with " +
              std::to_string(saved.model.moe.capacity_factor) + ", exporting with " +
              std::to_string(cfg.model.moe.capacity_factor));
  saved.model.moe.capacity_factor = cfg.model.moe.capacity_factor;
  if (config_to_yaml(Config{saved.model}) != config_to_yaml(Config{cfg.model}))
    throw CheckpointError("checkpoint " + ckpt +
                          " was written with a different model config "
                          "than --config " +
                          args.config_path + " (see inspect-config)");
  HfExportOptions opts;
  opts.out_dir = args.get("out");
  opts.dtype = parse_dtype(args.get("dtype", "fp32"));
  opts.max_shard_bytes = parse_byte_size(args.get("max-shard-size", "5GB"));
  opts.tokenizer = args.has("no-tokenizer") ? "" : cfg.data.tokenizer;
  opts.overwrite = args.has("overwrite");
  // Magnitude-direction values and folded products in float64, rounded once to --dtype.
  model->to(at::kDouble);
  const HfExportReport r = export_hf(*model, opts);
  log::info(log::cat("exported ", ckpt, " (step ", loaded.state.step, ") as ",
                     hf_architecture(r.arch), " to ", opts.out_dir, ": ", r.tensor_bytes,
                     " bytes of tensors"));
  for (const auto& note : r.notes) log::info("  " + note);
  for (const auto& f : r.files) std::cout << (fs::path(opts.out_dir) / f).string() << "\n";
  return 0;
}

int cmd_import(const Args& args) {
  if (!args.has("from")) throw UsageError("import: --from DIR (an exported folder) is required");
  if (!args.has("out")) throw UsageError("import: --out FILE.yaml is required");
  const std::string dir = args.get("from");
  // The folder's model over --config (or the defaults); everything else stays the user's.
  Config cfg = args.config_path.empty() ? load_config_string("{}", args.overrides, "<defaults>")
                                        : args.load();
  const HfModelSpec spec = read_hf_spec(dir);
  const AttentionKernel kernel = cfg.model.attention;
  cfg.model = spec.model;
  cfg.model.attention = kernel;
  cfg.train.init_from = dir;
  if (fs::is_regular_file(fs::path(dir) / "tokenizer.model"))
    cfg.data.tokenizer = (fs::path(dir) / "tokenizer.model").string();
  validate_config(cfg);
  Transformer model(cfg.model, cfg.train.seed);
  load_hf_weights(dir, *model);  // fails now, not at the first training step
  save_config(cfg, args.get("out"));
  log::info(log::cat("imported ", dir, " (", hf_architecture(spec.arch), ", ", model->num_params(),
                     " parameters) as a standard model: ", args.get("out"),
                     " (train.init_from = ", dir, ")"));
  return 0;
}

}  // namespace scalevec::cli

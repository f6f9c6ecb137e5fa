// `scalevec`: one executable, several subcommands.
#include <cstring>
#include <iostream>

#include "commands.h"
#include "scalevec/build_info.h"
#include "scalevec/config_io.h"
#include "scalevec/log.h"

namespace {

constexpr const char* kUsage =
    R"(scalevec: pre-train dense and MoE transformers and ablate norm scale vectors

usage: scalevec <command> --config FILE [--set key=value ...] [options]

commands:
  train           train a model (--resume to continue from the newest checkpoint in train.out_dir)
  eval            evaluate a checkpoint on the validation shard (--checkpoint FILE)
  bench           time training steps (warm-up, then CUDA-event timed steps; --json FILE)
  prepare-data    train/load the tokenizer and write train/val token shards
  bench-data      time the training data loader alone (its shards or mixture; --batches N)
  inspect-config  print the resolved config (all keys with their values)
  inspect-model   print parameters, FLOPs/token and every norm with variant, role and groups
  export          write a checkpoint as a Hugging Face folder, scale vectors folded (docs/export.md)
  import          write a config that fine-tunes/evaluates such a folder as a standard model

common options:
  --config FILE       YAML config; `defaults: base.yaml` includes a base file
  --set key=value     override one key, e.g. --set optim.lr=3e-4 --set model.norm.variant=unified
  --verbose           debug logging
  --help              this text
  --version           build info: commit, LibTorch, CUDA, cuDNN, NCCL, compiler

train options:
  --resume            continue from the newest intact checkpoint in train.out_dir (none there:
                      start); a damaged newer one is skipped with a warning, kept as .damaged
  --resume-strict     with --resume: stop at a damaged newest checkpoint instead
  --resume-from FILE  continue from this checkpoint
  --allow-data-change resume although the data differs from the checkpoint's fingerprint
                      (refused otherwise; recorded in run_info.yaml)
  --stop-after N      save and exit after N steps of this invocation (the schedule keeps train.steps)
  --init-from DIR     start from the weights of an exported/imported HF folder (train.init_from)

eval options:
  --checkpoint FILE   the checkpoint (default: the newest in train.out_dir)
  --init-from DIR     evaluate an HF folder instead (its config: scalevec import)
  --logits-out FILE   also write tokens and logits of the first val sequences as safetensors
                      (--logits-seqs N, default 2; --fp64: compute in float64)

export options (--format hf):
  --checkpoint FILE   default: the newest in train.out_dir
  --out DIR           the folder: model.safetensors (or shards + index), config.json, tokenizer
  --dtype fp32|bf16|fp64   tensor dtype (default fp32)
  --max-shard-size S  shard above this (default 5GB; 500MB, 2GiB, bytes)
  --overwrite         replace an earlier export in DIR   --no-tokenizer  skip data.tokenizer

import options:
  --from DIR --out FILE.yaml [--config BASE]   model section from DIR/config.json (standard
                      norms), train.init_from = DIR, data.tokenizer = DIR/tokenizer.model

examples:
  scalevec train --config configs/tiny.yaml --set model.norm.variant=unified
  scripts/launch.sh --nproc 2 -- build/scalevec train --config configs/tiny.yaml
  scalevec inspect-model --config configs/dense-0.12b.yaml
  scalevec export --config configs/tiny.yaml --out export/tiny-hf --dtype bf16
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace scalevec;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version")) {
    std::cout << version_text();
    return 0;
  }
  try {
    const auto args = cli::parse_args(argc, argv,
                                      {"resume", "resume-strict", "allow-data-change", "verbose",
                                       "help", "json-only", "overwrite", "no-tokenizer", "fp64"});
    if (args.has("help")) {
      std::cout << kUsage;
      return 0;
    }
    log::init(0, "", args.has("verbose"));
    const std::string& c = args.command;
    if (c == "train") return cli::cmd_train(args);
    if (c == "eval") return cli::cmd_eval(args);
    if (c == "bench") return cli::cmd_bench(args);
    if (c == "prepare-data") return cli::cmd_prepare_data(args);
    if (c == "bench-data") return cli::cmd_bench_data(args);
    if (c == "inspect-config") return cli::cmd_inspect_config(args);
    if (c == "inspect-model") return cli::cmd_inspect_model(args);
    if (c == "export") return cli::cmd_export(args);
    if (c == "import") return cli::cmd_import(args);
    std::cerr << "scalevec: unknown command '" << c << "'\n\n" << kUsage;
    return 2;
  } catch (const cli::UsageError& e) {
    std::cerr << "scalevec: " << e.what() << "\n(see scalevec --help)\n";
    return 2;
  } catch (const ConfigError& e) {
    std::cerr << "scalevec: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    log::error(std::string("stopped: ") + e.what());  // to train.log too, once it is open
    log::flush();
    return 1;
  }
}

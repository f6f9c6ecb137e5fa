#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "scalevec/data.h"
#include "scalevec/log.h"
#include "scalevec/process.h"

namespace scalevec {
namespace {

namespace fs = std::filesystem;
using log::cat;

// sentencepiece writes <prefix>.model; the config names the .model file itself.
std::string model_prefix(const std::string& model_path) {
  const std::string suffix = ".model";
  if (model_path.size() <= suffix.size() ||
      model_path.compare(model_path.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw DataError("data.tokenizer must end in .model, got '" + model_path + "'");
  return model_path.substr(0, model_path.size() - suffix.size());
}

void ensure_parent_dir(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
}

}  // namespace

std::string find_tokenizer_tool() {
  if (const char* env = std::getenv("SCALEVEC_TOKENIZER"); env != nullptr && *env != '\0') {
    if (!fs::exists(env))
      throw DataError(cat("SCALEVEC_TOKENIZER points to a missing file: ", env));
    return env;
  }
  const fs::path tool = fs::path(executable_dir()) / "scalevec-tokenizer";
  if (!fs::exists(tool))
    throw DataError("tokenizer tool not found at " + tool.string() +
                    " (build the scalevec-tokenizer target or set SCALEVEC_TOKENIZER)");
  return tool.string();
}

double unigram_entropy_nats(const ShardReader& shard) {
  if (shard.count() == 0) return 0.0;
  std::vector<uint64_t> counts(shard.vocab_size(), 0);
  std::vector<uint32_t> chunk(1 << 16);
  for (uint64_t begin = 0; begin < shard.count(); begin += chunk.size()) {
    const uint64_t n = std::min<uint64_t>(chunk.size(), shard.count() - begin);
    shard.copy_to(begin, n, chunk.data());
    for (uint64_t i = 0; i < n; ++i) ++counts[chunk[i]];
  }
  const double total = static_cast<double>(shard.count());
  double h = 0.0;
  for (uint64_t c : counts)
    if (c > 0) h -= (c / total) * std::log(c / total);
  return h;
}

void prepare_data(const Config& config) {
  const DataConfig& d = config.data;
  if (d.corpus.empty()) throw DataError("data.corpus is empty: nothing to prepare");
  for (const auto& f : d.corpus)
    if (!fs::exists(f)) throw DataError("data.corpus file not found: " + f);
  if (!d.out_dir.empty()) fs::create_directories(d.out_dir);
  const std::string tool = find_tokenizer_tool();

  if (fs::exists(d.tokenizer)) {
    log::info(cat("reusing tokenizer ", d.tokenizer));
  } else {
    ensure_parent_dir(d.tokenizer);
    std::vector<std::string> argv = {tool, "train"};
    for (const auto& f : d.corpus) argv.insert(argv.end(), {"--input", f});
    argv.insert(argv.end(), {"--model-prefix", model_prefix(d.tokenizer), "--vocab-size",
                             std::to_string(config.model.vocab_size), "--type", d.tokenizer_type});
    log::info(cat("training tokenizer: ", format_command(argv)));
    run_process_checked(argv);
  }

  ensure_parent_dir(d.train_shard);
  ensure_parent_dir(d.val_shard);
  std::vector<std::string> argv = {tool, "encode", "--model", d.tokenizer};
  for (const auto& f : d.corpus) argv.insert(argv.end(), {"--input", f});
  argv.insert(argv.end(), {"--train-out", d.train_shard, "--val-out", d.val_shard, "--val-fraction",
                           cat(d.val_fraction)});
  log::info(cat("encoding corpus: ", format_command(argv)));
  run_process_checked(argv);

  const ShardReader train(d.train_shard);
  const ShardReader val(d.val_shard);
  if (train.vocab_size() > static_cast<uint64_t>(config.model.vocab_size))
    throw DataError(cat("tokenizer ", d.tokenizer, " has ", train.vocab_size(),
                        " pieces but model.vocab_size is ", config.model.vocab_size,
                        " (delete the tokenizer to retrain it, or raise model.vocab_size)"));
  if (train.vocab_size() < static_cast<uint64_t>(config.model.vocab_size))
    log::warn(cat("tokenizer has ", train.vocab_size(), " pieces, fewer than model.vocab_size ",
                  config.model.vocab_size, "; the extra embedding rows stay unused"));
  const double nats = unigram_entropy_nats(train);
  log::info(cat("train shard ", d.train_shard, ": ", train.count(), " tokens"));
  log::info(cat("val shard ", d.val_shard, ": ", val.count(), " tokens"));
  log::info(cat("unigram entropy of train: ", nats, " nats/token = ", nats / std::log(2.0),
                " bits/token (a context-free model's loss; val loss should end well below)"));
}

}  // namespace scalevec

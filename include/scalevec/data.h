// Data pipeline, LibTorch side: corpus preparation (through the scalevec-tokenizer tool) and the
// stateless window loader. Shard format: shard_format.h and docs/data.md.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/shard_format.h"

namespace scalevec {

// Bad data setup: a shard too short for the window, a missing corpus file, a tokenizer mismatch.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Next-token pairs, int64 [batch, seq_len] on the CPU: targets[b, t] == inputs[b, t + 1].
struct Batch {
  at::Tensor inputs, targets;
};

// Path of scalevec-tokenizer: $SCALEVEC_TOKENIZER if set, else next to the running executable.
std::string find_tokenizer_tool();

// Trains a tokenizer of model.vocab_size pieces at data.tokenizer (unless that file exists, then
// it is reused) and encodes data.corpus into data.train_shard and data.val_shard. Logs token
// counts and the unigram entropy of the train shard.
void prepare_data(const Config& config);

// Entropy of the token frequency distribution, in nats: the loss of the best model that ignores
// context, a baseline for validation loss.
double unigram_entropy_nats(const ShardReader& shard);

// Random windows of seq_len + 1 tokens. Every batch is a pure function of
// (seed, step, micro_step, rank), so resuming needs no loader state. Rank r of W reads only
// tokens [r*N/W, (r+1)*N/W) of the shard.
class TokenWindowLoader {
 public:
  TokenWindowLoader(const std::string& shard_path, int64_t seq_len, int64_t batch_size,
                    uint64_t seed, int64_t rank = 0, int64_t world_size = 1);

  Batch batch_at(int64_t step, int64_t micro_step = 0) const;
  // Validation batch: windows at a fixed stride of seq_len over this rank's slice, batch index i
  // taking windows [i*B, (i+1)*B) (wrapping around). Identical on every call.
  Batch eval_batch(int64_t index) const;
  // Number of eval batches before eval_batch starts repeating windows (at least 1).
  int64_t eval_batches_available() const;

  int64_t seq_len() const { return seq_len_; }
  int64_t batch_size() const { return batch_size_; }
  int64_t slice_begin() const { return begin_; }
  int64_t slice_end() const { return end_; }
  // Start offsets (in shard tokens) of the windows batch_at(step, micro_step) would read.
  std::vector<int64_t> window_offsets(int64_t step, int64_t micro_step = 0) const;
  const ShardReader& shard() const { return shard_; }

  // The pieces of window_offsets, for MixtureLoader: row b's hash, and the window it picks.
  uint64_t row_hash(int64_t step, int64_t micro_step, int64_t row) const;
  int64_t offset_for(uint64_t hash) const;
  Batch gather(const std::vector<int64_t>& offsets) const;

 private:
  ShardReader shard_;
  int64_t seq_len_, batch_size_;
  uint64_t seed_;
  int64_t rank_;
  int64_t begin_ = 0, end_ = 0;
};

// One entry of data.train_shards / data.val_shards resolved to shard files: a shard is itself;
// a dataset manifest (`*.json`, `scalevec-tokenizer encode --out`) is its train (or val) shards,
// each weighted by its share of the dataset's tokens. Shards too small to give every rank one
// window (fewer than (seq_len + 1) * world_size tokens) are left out, with a warning.
struct WeightedShard {
  std::string path;
  double weight = 1.0;  // within its entry: sums to 1
};
std::vector<WeightedShard> resolve_data_entry(const std::string& entry, bool val, int64_t seq_len,
                                              int64_t world_size);

// A weighted mixture of train shards (data.train_shards / data.train_weights). Row b of batch
// (step, micro_step) takes its shard, with probability weight_i / sum, and its window from one
// hash of (seed, step, micro_step, rank, b): a pure function like TokenWindowLoader, so a resume
// needs no loader state. Every shard is sliced per rank. With one shard the batches are exactly
// TokenWindowLoader's.
class MixtureLoader {
 public:
  MixtureLoader(const std::vector<std::string>& shard_paths, std::vector<double> weights,
                int64_t seq_len, int64_t batch_size, uint64_t seed, int64_t rank = 0,
                int64_t world_size = 1);

  Batch batch_at(int64_t step, int64_t micro_step = 0) const;
  // (shard index, start offset) of every row of batch_at(step, micro_step).
  std::vector<std::pair<size_t, int64_t>> windows(int64_t step, int64_t micro_step = 0) const;
  size_t size() const { return sources_.size(); }
  const TokenWindowLoader& source(size_t i) const { return sources_.at(i); }
  double weight(size_t i) const { return weights_.at(i); }  // normalized to sum 1

 private:
  std::vector<TokenWindowLoader> sources_;
  std::vector<double> weights_, cumulative_;
  int64_t seq_len_, batch_size_;
};

}  // namespace scalevec

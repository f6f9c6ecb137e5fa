#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "scalevec/data.h"
#include "scalevec/log.h"
#include "scalevec/manifest.h"

namespace scalevec {
namespace {

// splitmix64 finalizer: a strong 64-bit mix, so consecutive steps give unrelated windows.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, n) without modulo bias worth speaking of (Lemire's multiply-shift).
uint64_t bounded(uint64_t h, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * n) >> 64);
}

// Rows of seq_len + 1 tokens, each from its shard and offset, as (inputs, targets).
Batch gather_windows(const std::vector<std::pair<const ShardReader*, int64_t>>& rows,
                     int64_t seq_len) {
  const auto n = static_cast<int64_t>(rows.size());
  at::Tensor buf = at::empty({n, seq_len + 1}, at::kLong);
  int64_t* data = buf.data_ptr<int64_t>();
  for (int64_t b = 0; b < n; ++b)
    rows[b].first->copy_to(static_cast<uint64_t>(rows[b].second),
                           static_cast<uint64_t>(seq_len + 1), data + b * (seq_len + 1));
  return {buf.narrow(1, 0, seq_len).contiguous(), buf.narrow(1, 1, seq_len).contiguous()};
}

}  // namespace

TokenWindowLoader::TokenWindowLoader(const std::string& shard_path, int64_t seq_len,
                                     int64_t batch_size, uint64_t seed, int64_t rank,
                                     int64_t world_size)
    : shard_(shard_path), seq_len_(seq_len), batch_size_(batch_size), seed_(seed), rank_(rank) {
  if (seq_len < 1 || batch_size < 1)
    throw DataError("loader for " + shard_path + ": seq_len and batch_size must be >= 1 (got " +
                    std::to_string(seq_len) + ", " + std::to_string(batch_size) + ")");
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw DataError("loader for " + shard_path + ": rank " + std::to_string(rank) +
                    " is outside world size " + std::to_string(world_size));
  const auto n = static_cast<int64_t>(shard_.count());
  begin_ = static_cast<int64_t>(static_cast<unsigned __int128>(n) * rank / world_size);
  end_ = static_cast<int64_t>(static_cast<unsigned __int128>(n) * (rank + 1) / world_size);
  if (end_ - begin_ < seq_len + 1)
    throw DataError("shard " + shard_path + ": rank " + std::to_string(rank) + " of " +
                    std::to_string(world_size) + " gets " + std::to_string(end_ - begin_) +
                    " tokens, fewer than seq_len + 1 = " + std::to_string(seq_len + 1));
}

uint64_t TokenWindowLoader::row_hash(int64_t step, int64_t micro_step, int64_t row) const {
  const uint64_t base =
      mix64(mix64(mix64(seed_) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(micro_step));
  const uint64_t stream = mix64(base ^ static_cast<uint64_t>(rank_));
  return mix64(stream ^ static_cast<uint64_t>(row));
}

int64_t TokenWindowLoader::offset_for(uint64_t hash) const {
  const auto starts = static_cast<uint64_t>(end_ - begin_ - seq_len_);  // valid start positions
  return begin_ + static_cast<int64_t>(bounded(hash, starts));
}

std::vector<int64_t> TokenWindowLoader::window_offsets(int64_t step, int64_t micro_step) const {
  std::vector<int64_t> offsets(static_cast<size_t>(batch_size_));
  for (int64_t b = 0; b < batch_size_; ++b) offsets[b] = offset_for(row_hash(step, micro_step, b));
  return offsets;
}

Batch TokenWindowLoader::gather(const std::vector<int64_t>& offsets) const {
  std::vector<std::pair<const ShardReader*, int64_t>> rows;
  for (int64_t o : offsets) rows.emplace_back(&shard_, o);
  return gather_windows(rows, seq_len_);
}

Batch TokenWindowLoader::batch_at(int64_t step, int64_t micro_step) const {
  return gather(window_offsets(step, micro_step));
}

int64_t TokenWindowLoader::eval_batches_available() const {
  const int64_t windows = (end_ - begin_ - 1) / seq_len_;
  return std::max<int64_t>(1, windows / batch_size_);
}

Batch TokenWindowLoader::eval_batch(int64_t index) const {
  if (index < 0)
    throw DataError("eval batch index must be >= 0 (got " + std::to_string(index) + ") for " +
                    shard_.path());
  const int64_t windows = (end_ - begin_ - 1) / seq_len_;  // >= 1 by the constructor's check
  std::vector<int64_t> offsets(static_cast<size_t>(batch_size_));
  for (int64_t b = 0; b < batch_size_; ++b) {
    const int64_t w = (index * batch_size_ + b) % windows;
    offsets[b] = begin_ + w * seq_len_;
  }
  return gather(offsets);
}

std::vector<WeightedShard> resolve_data_entry(const std::string& entry, bool val, int64_t seq_len,
                                              int64_t world_size) {
  const std::filesystem::path p(entry);
  if (p.extension() != ".json") return {{entry, 1.0}};
  const Manifest m = manifest_from_json(read_text_file(entry), entry);
  const auto min_tokens = static_cast<uint64_t>((seq_len + 1) * world_size);
  std::vector<WeightedShard> out;
  double total = 0;
  int64_t small = 0;
  for (const auto& input : m.inputs) {
    std::vector<ManifestShard> shards = val ? std::vector<ManifestShard>{input.val} : input.train;
    for (const auto& s : shards) {
      if (s.tokens < min_tokens) {
        ++small;
        continue;
      }
      out.push_back({(p.parent_path() / s.file).string(), static_cast<double>(s.tokens)});
      total += static_cast<double>(s.tokens);
    }
  }
  if (small > 0)
    log::warn(log::cat(entry, ": left out ", small, " ", val ? "val" : "train",
                       " shards with fewer than ", min_tokens, " tokens (seq_len + 1 per rank)"));
  if (out.empty())
    throw DataError(entry + ": no " + (val ? "val" : "train") + " shard of the dataset has " +
                    std::to_string(min_tokens) + " tokens (seq_len + 1 per rank)");
  for (auto& w : out) w.weight /= total;
  return out;
}

MixtureLoader::MixtureLoader(const std::vector<std::string>& shard_paths,
                             std::vector<double> weights, int64_t seq_len, int64_t batch_size,
                             uint64_t seed, int64_t rank, int64_t world_size)
    : weights_(std::move(weights)), seq_len_(seq_len), batch_size_(batch_size) {
  if (shard_paths.empty()) throw DataError("a data mixture needs at least one shard");
  if (weights_.empty()) weights_.assign(shard_paths.size(), 1.0);
  if (weights_.size() != shard_paths.size())
    throw DataError("data mixture: " + std::to_string(weights_.size()) + " weights for " +
                    std::to_string(shard_paths.size()) + " shards");
  double sum = 0;
  for (double w : weights_) {
    if (!(w > 0) || !std::isfinite(w)) throw DataError("data mixture: weights must be > 0");
    sum += w;
  }
  for (size_t i = 0; i < shard_paths.size(); ++i) {
    sources_.emplace_back(shard_paths[i], seq_len, batch_size, seed, rank, world_size);
    // Shards of other tokenizers would mix unrelated ids (same-size vocabularies cannot be told
    // apart here; the data fingerprint records the tokenizer).
    if (sources_[i].shard().vocab_size() != sources_[0].shard().vocab_size())
      throw DataError("data mixture: shard " + shard_paths[i] + " has vocab size " +
                      std::to_string(sources_[i].shard().vocab_size()) + " but " + shard_paths[0] +
                      " has " + std::to_string(sources_[0].shard().vocab_size()) +
                      ": they come from different tokenizers");
    weights_[i] /= sum;
    cumulative_.push_back((cumulative_.empty() ? 0.0 : cumulative_.back()) + weights_[i]);
  }
  cumulative_.back() = 1.0;  // no row may fall past the last shard by rounding
}

std::vector<std::pair<size_t, int64_t>> MixtureLoader::windows(int64_t step,
                                                               int64_t micro_step) const {
  std::vector<std::pair<size_t, int64_t>> out(static_cast<size_t>(batch_size_));
  for (int64_t b = 0; b < batch_size_; ++b) {
    // The seed and rank are the same in every source: any source's row hash is the row's.
    const uint64_t h = sources_[0].row_hash(step, micro_step, b);
    size_t k = 0;
    if (sources_.size() > 1) {
      // A second, independent draw picks the shard; the window comes from h, as for one shard.
      const double u = static_cast<double>(mix64(h ^ 0xd1b54a32d192ed03ULL) >> 11) * 0x1.0p-53;
      while (k + 1 < sources_.size() && u >= cumulative_[k]) ++k;
    }
    out[b] = {k, sources_[k].offset_for(h)};
  }
  return out;
}

Batch MixtureLoader::batch_at(int64_t step, int64_t micro_step) const {
  std::vector<std::pair<const ShardReader*, int64_t>> rows;
  for (const auto& [k, offset] : windows(step, micro_step))
    rows.emplace_back(&sources_[k].shard(), offset);
  return gather_windows(rows, seq_len_);
}

}  // namespace scalevec

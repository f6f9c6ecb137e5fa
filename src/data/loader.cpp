#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <vector>

#include "scalevec/data.h"

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

std::vector<int64_t> TokenWindowLoader::window_offsets(int64_t step, int64_t micro_step) const {
  const auto starts = static_cast<uint64_t>(end_ - begin_ - seq_len_);  // valid start positions
  const uint64_t base =
      mix64(mix64(mix64(seed_) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(micro_step));
  const uint64_t stream = mix64(base ^ static_cast<uint64_t>(rank_));
  std::vector<int64_t> offsets(static_cast<size_t>(batch_size_));
  for (int64_t b = 0; b < batch_size_; ++b)
    offsets[b] =
        begin_ + static_cast<int64_t>(bounded(mix64(stream ^ static_cast<uint64_t>(b)), starts));
  return offsets;
}

Batch TokenWindowLoader::gather(const std::vector<int64_t>& offsets) const {
  const auto rows = static_cast<int64_t>(offsets.size());
  at::Tensor buf = at::empty({rows, seq_len_ + 1}, at::kLong);
  int64_t* data = buf.data_ptr<int64_t>();
  for (int64_t b = 0; b < rows; ++b)
    shard_.copy_to(static_cast<uint64_t>(offsets[b]), static_cast<uint64_t>(seq_len_ + 1),
                   data + b * (seq_len_ + 1));
  return {buf.narrow(1, 0, seq_len_).contiguous(), buf.narrow(1, 1, seq_len_).contiguous()};
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

}  // namespace scalevec

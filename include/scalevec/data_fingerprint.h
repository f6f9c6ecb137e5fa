// The identity of the data a run reads, stored in every checkpoint so that a resume on changed
// data is refused by name instead of continuing silently (docs/reproducibility.md).
// Torch-free: only shard headers and file hashes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scalevec/shard_format.h"

namespace scalevec {

struct ShardIdentity {
  std::string role;  // "train" or "val"
  std::string path;
  uint64_t bytes = 0;
  uint64_t tokens = 0;
  uint64_t vocab_size = 0;
  uint64_t checksum = 0;  // the shard header's FNV-1a 64 of its payload
  double weight = 1.0;    // its share of a train mixture (1 for a single shard and val sets)
};

struct DataFingerprint {
  std::vector<ShardIdentity> shards;
  std::string tokenizer_path;
  std::string tokenizer_hash;  // FNV-1a 64 of the tokenizer model file; "" when it is absent
  int64_t seq_len = 0;
};

// Formats a 64-bit hash as 16 hex digits.
std::string hex64(uint64_t value);

ShardIdentity identify_shard(const std::string& role, const ShardReader& shard,
                             double weight = 1.0);
// FNV-1a 64 of a whole file as hex; "" when the file does not exist.
std::string file_hash(const std::string& path);

DataFingerprint fingerprint_data(const ShardReader& train, const ShardReader& val,
                                 const std::string& tokenizer_path, int64_t seq_len);
DataFingerprint fingerprint_data(std::vector<ShardIdentity> shards,
                                 const std::string& tokenizer_path, int64_t seq_len);

std::string fingerprint_to_yaml(const DataFingerprint& fingerprint);
// Throws std::runtime_error naming `origin` when the text is not a fingerprint.
DataFingerprint fingerprint_from_yaml(const std::string& yaml, const std::string& origin);

struct FingerprintComparison {
  // Differences in what the run reads (another token stream, vocabulary, tokenizer or window):
  // a resume refuses them unless asked to continue on purpose.
  std::vector<std::string> changes;
  // Differences that leave the tokens the same (a shard moved to another path).
  std::vector<std::string> notes;
};
FingerprintComparison compare_fingerprints(const DataFingerprint& saved,
                                           const DataFingerprint& now);

}  // namespace scalevec

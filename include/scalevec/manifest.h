// A tokenized dataset folder (`scalevec-tokenizer encode --out DIR`): per input file, train shards
// of at most --max-shard-tokens each and one val shard under DIR/shards/, a record per finished
// input under DIR/parts/ (what lets a rerun skip it), and DIR/manifest.json, written last and
// atomically, listing them in input order with the tokenizer's hash. Partial runs (--shard-index i
// --num-shards n) write manifest-i-of-n.json; `scalevec-tokenizer merge` joins them. Format:
// docs/data.md.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace scalevec {

class ManifestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ManifestShard {
  std::string file;  // relative to the dataset folder
  uint64_t tokens = 0;
  uint64_t checksum = 0;  // the shard header's
};

struct InputRecord {
  int64_t index = 0;  // position in the sorted list of all inputs
  std::string input;
  std::string tokenizer_hash;  // of the model that encoded it: another one makes a rerun redo it
  uint64_t input_bytes = 0;
  int64_t input_mtime_ns = 0;
  uint64_t lines = 0;
  std::map<std::string, uint64_t> skipped;  // bad lines by reason
  std::vector<ManifestShard> train;         // in order; a new one every --max-shard-tokens
  ManifestShard val;
  uint64_t train_tokens() const;
};

struct Manifest {
  std::string tokenizer, tokenizer_hash;
  uint64_t vocab_size = 0;
  int64_t total_inputs = 0;                  // inputs of the whole dataset, every partition
  int64_t shard_index = -1, num_shards = 1;  // -1: the whole dataset
  std::vector<InputRecord> inputs;           // by index
  uint64_t train_tokens() const;
  uint64_t val_tokens() const;
};

std::string to_json(const InputRecord& record);
std::string to_json(const Manifest& manifest);
// Throw ManifestError naming `origin` on bad input (and when built without simdjson).
InputRecord record_from_json(const std::string& json, const std::string& origin);
Manifest manifest_from_json(const std::string& json, const std::string& origin);

// Joins partial manifests of one dataset: the same tokenizer, every input exactly once.
Manifest merge_manifests(const std::vector<Manifest>& parts);

std::string read_text_file(const std::string& path);
// Temp file + rename: readers see the old file or the new one.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace scalevec

// The safetensors format (github.com/huggingface/safetensors, "Format"): an 8-byte little-endian
// header length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {string: string}}, then the tensors' raw little-endian bytes, offsets counted
// from the end of the header; the ranges tile the data section with no gap and no overlap.
// Sharded folders follow transformers' convention: model-0000i-of-0000n.safetensors plus
// model.safetensors.index.json {"metadata": {"total_size"}, "weight_map": {name: file}}.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace scalevec {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// "F32", "BF16", ... for a dtype the format has; throws for others.
const char* safetensors_dtype(at::ScalarType type);

// Writes `tensors` (any device and layout; stored as CPU contiguous) in the given order,
// atomically (temp file, fsync, rename). Names must be unique, non-empty, not "__metadata__".
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  NamedTensors tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
};
// Reads and checks one file: header bounds, JSON, known dtypes, shapes that match their byte
// ranges, ranges that tile the data section. Errors name the file and the tensor.
SafetensorsFile read_safetensors(const std::string& path);
// The same checks over bytes in memory (tests, fuzzing).
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& origin);

// Writes tensors into `dir` as model.safetensors, or as shards of at most max_shard_bytes of
// tensor data each (a larger tensor gets a shard of its own) with the index. Returns the files.
std::vector<std::string> write_safetensors_folder(
    const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
    const std::map<std::string, std::string>& metadata = {});
// A folder's tensors from model.safetensors or from the index and its shards: every tensor the
// index lists must be in the shard it names, and no shard may hold tensors the index omits.
NamedTensors read_safetensors_folder(const std::string& dir);

// "5GB" (10^9), "500MiB" (2^20), "123" (bytes) -> bytes.
uint64_t parse_byte_size(const std::string& text);

}  // namespace scalevec

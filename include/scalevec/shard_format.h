// Binary token shards: a 64-byte header, then the token ids as little-endian uint16 or uint32.
// Torch-free so that the tokenizer tool (which must not load LibTorch) can write them.
// Format reference: docs/data.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace scalevec {

// Any problem with a shard file; the message names the file and the problem.
class ShardError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr char kShardMagic[8] = {'S', 'V', 'T', 'O', 'K', 'E', 'N', '1'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

// On-disk header, little-endian, padded to 64 bytes so the payload stays aligned.
struct ShardHeader {
  char magic[8];
  uint32_t version;
  uint32_t dtype;  // bytes per token: 2 (uint16) or 4 (uint32)
  uint64_t count;  // number of tokens
  uint64_t vocab_size;
  uint64_t checksum;  // FNV-1a 64 over the payload bytes
  uint8_t padding[24];
};
static_assert(sizeof(ShardHeader) == kShardHeaderBytes, "shard header must be 64 bytes");

// 2 when every id fits in uint16 (vocab <= 65536), else 4.
uint32_t shard_dtype_for_vocab(uint64_t vocab_size);

// FNV-1a 64-bit; pass the previous result as `hash` to continue over several buffers.
uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = 0xcbf29ce484222325ULL);

// Writes atomically (temp file, fsync, rename) so a crash never leaves a half shard behind.
// Throws ShardError if a token is >= vocab_size or the file cannot be written.
void write_shard(const std::string& path, const uint32_t* tokens, size_t count,
                 uint64_t vocab_size);
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, uint64_t vocab_size);

// Streams a shard of any size: tokens are appended in 1 MiB writes to a temp file, and close()
// writes the header (count, checksum), fsyncs and renames it into place. Destroyed without
// close() (an error, a stop), it removes the temp file: no half shard is ever left under `path`.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, uint64_t vocab_size);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  // Throws ShardError for a token >= vocab_size or a failed write (the temp file is removed).
  void append(const uint32_t* tokens, size_t n);
  void close();
  uint64_t count() const { return count_; }
  uint64_t checksum() const { return checksum_; }  // final once close() returned
  const std::string& path() const { return path_; }

 private:
  void flush();
  void abandon();

  std::string path_, tmp_;
  uint64_t vocab_size_;
  uint32_t dtype_ = 2;
  int fd_ = -1;
  uint64_t count_ = 0;
  uint64_t checksum_ = fnv1a64(nullptr, 0);
  std::vector<unsigned char> buffer_;
};

// Read-only memory map of a shard, validated on open.
class ShardReader {
 public:
  // Throws ShardError on a missing file, bad magic, unknown version or dtype, wrong size, and
  // (when verify_checksum) a checksum mismatch or a token id >= vocab_size.
  explicit ShardReader(const std::string& path, bool verify_checksum = true);
  ~ShardReader();
  ShardReader(ShardReader&& other) noexcept;
  ShardReader& operator=(ShardReader&& other) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const std::string& path() const { return path_; }
  uint64_t count() const { return count_; }
  uint64_t vocab_size() const { return vocab_size_; }
  uint32_t dtype_bytes() const { return dtype_; }
  uint64_t file_bytes() const { return map_bytes_; }
  // The header's FNV-1a 64 of the payload (verified on open when verify_checksum).
  uint64_t checksum() const { return checksum_; }

  // Token at index i; throws ShardError when out of range.
  uint32_t token(uint64_t i) const;
  // Copies tokens [begin, begin + n) into out; throws ShardError when out of range.
  void copy_to(uint64_t begin, uint64_t n, uint32_t* out) const;
  void copy_to(uint64_t begin, uint64_t n, int64_t* out) const;

 private:
  void check_range(uint64_t begin, uint64_t n) const;
  template <typename T>
  void copy_impl(uint64_t begin, uint64_t n, T* out) const;
  void release();

  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const unsigned char* payload_ = nullptr;
  uint64_t count_ = 0;
  uint64_t vocab_size_ = 0;
  uint32_t dtype_ = 0;
  uint64_t checksum_ = 0;
};

}  // namespace scalevec

#include "scalevec/shard_format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace scalevec {
namespace {

namespace fs = std::filesystem;

std::string errno_text() {
  return std::strerror(errno);
}

// Writes all of buf or throws; write(2) may return short counts.
void write_all(int fd, const void* buf, size_t size, const std::string& path) {
  const auto* p = static_cast<const unsigned char*>(buf);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ShardError("shard " + path + ": write failed: " + errno_text());
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// Makes the rename durable too: fsync the directory entry (best effort).
void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

uint32_t shard_dtype_for_vocab(uint64_t vocab_size) {
  return vocab_size <= 65536 ? 2 : 4;
}

uint64_t fnv1a64(const void* data, size_t size, uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

ShardWriter::ShardWriter(const std::string& path, uint64_t vocab_size)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())), vocab_size_(vocab_size) {
  if (vocab_size == 0 || vocab_size > (uint64_t{1} << 32))
    throw ShardError("shard " + path + ": vocab_size " + std::to_string(vocab_size) +
                     " is outside [1, 2^32]");
  dtype_ = shard_dtype_for_vocab(vocab_size);
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw ShardError("shard " + path + ": cannot create " + tmp_ + ": " + errno_text());
  const ShardHeader placeholder{};  // the real one, with count and checksum, is written on close
  try {
    write_all(fd_, &placeholder, sizeof(placeholder), path_);
  } catch (...) {
    abandon();
    throw;
  }
  buffer_.reserve(1 << 20);
}

ShardWriter::~ShardWriter() {
  abandon();
}

void ShardWriter::abandon() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
  fd_ = -1;
}

void ShardWriter::append(const uint32_t* tokens, size_t n) {
  if (fd_ < 0) throw ShardError("shard " + path_ + ": append after close");
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] >= vocab_size_)
      throw ShardError("shard " + path_ + ": token " + std::to_string(tokens[i]) + " at index " +
                       std::to_string(count_ + i) + " is >= vocab_size " +
                       std::to_string(vocab_size_));
    unsigned char bytes[4];
    if (dtype_ == 2) {
      const auto v = static_cast<uint16_t>(tokens[i]);
      std::memcpy(bytes, &v, 2);
    } else {
      std::memcpy(bytes, &tokens[i], 4);
    }
    buffer_.insert(buffer_.end(), bytes, bytes + dtype_);
  }
  count_ += n;
  if (buffer_.size() >= (1 << 20)) flush();
}

void ShardWriter::flush() {
  checksum_ = fnv1a64(buffer_.data(), buffer_.size(), checksum_);
  try {
    write_all(fd_, buffer_.data(), buffer_.size(), path_);
  } catch (...) {
    abandon();
    throw;
  }
  buffer_.clear();
}

void ShardWriter::close() {
  if (fd_ < 0) throw ShardError("shard " + path_ + ": closed twice");
  flush();
  ShardHeader header{};
  std::memcpy(header.magic, kShardMagic, sizeof(kShardMagic));
  header.version = kShardVersion;
  header.dtype = dtype_;
  header.count = count_;
  header.vocab_size = vocab_size_;
  header.checksum = checksum_;
  if (::pwrite(fd_, &header, sizeof(header), 0) != static_cast<ssize_t>(sizeof(header))) {
    const std::string why = errno_text();
    abandon();
    throw ShardError("shard " + path_ + ": cannot write its header: " + why);
  }
  if (::fsync(fd_) != 0) {
    const std::string why = errno_text();
    abandon();
    throw ShardError("shard " + path_ + ": fsync failed: " + why);
  }
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp_.c_str());
    throw ShardError("shard " + path_ + ": rename from " + tmp_ + " failed: " + why);
  }
  fsync_dir(fs::path(path_).parent_path());
}

void write_shard(const std::string& path, const uint32_t* tokens, size_t count,
                 uint64_t vocab_size) {
  ShardWriter writer(path, vocab_size);
  writer.append(tokens, count);
  writer.close();
}

void write_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                 uint64_t vocab_size) {
  write_shard(path, tokens.data(), tokens.size(), vocab_size);
}

ShardReader::ShardReader(const std::string& path, bool verify_checksum) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw ShardError("shard " + path + ": file not found");
    throw ShardError("shard " + path + ": cannot open: " + errno_text());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    throw ShardError("shard " + path + ": cannot stat: " + why);
  }
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    throw ShardError("shard " + path + ": truncated: " + std::to_string(file_bytes) +
                     " bytes is smaller than the 64-byte header");
  }
  map_ = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw ShardError("shard " + path + ": mmap failed: " + errno_text());
  }
  map_bytes_ = file_bytes;
  try {
    ShardHeader h{};
    std::memcpy(&h, map_, sizeof(h));
    if (std::memcmp(h.magic, kShardMagic, sizeof(kShardMagic)) != 0)
      throw ShardError("shard " + path + ": bad magic (not a scalevec token shard)");
    if (h.version != kShardVersion)
      throw ShardError("shard " + path + ": unsupported version " + std::to_string(h.version) +
                       " (this build reads version " + std::to_string(kShardVersion) + ")");
    if (h.dtype != 2 && h.dtype != 4)
      throw ShardError("shard " + path + ": unknown dtype " + std::to_string(h.dtype) +
                       " (expected 2 or 4 bytes per token)");
    const uint64_t expected = kShardHeaderBytes + h.count * h.dtype;
    if (h.count > (file_bytes / h.dtype) || expected != file_bytes)
      throw ShardError("shard " + path + ": truncated or oversized: header says " +
                       std::to_string(h.count) + " tokens (" + std::to_string(expected) +
                       " bytes) but the file has " + std::to_string(file_bytes) + " bytes");
    count_ = h.count;
    vocab_size_ = h.vocab_size;
    dtype_ = h.dtype;
    checksum_ = h.checksum;
    payload_ = static_cast<const unsigned char*>(map_) + kShardHeaderBytes;
    if (verify_checksum) {
      if (fnv1a64(payload_, count_ * dtype_) != h.checksum)
        throw ShardError("shard " + path + ": checksum mismatch (file is corrupted)");
      for (uint64_t i = 0; i < count_; ++i) {
        const uint32_t t = token(i);
        if (t >= vocab_size_)
          throw ShardError("shard " + path + ": token " + std::to_string(t) + " at index " +
                           std::to_string(i) + " is >= vocab_size " + std::to_string(vocab_size_));
      }
    }
  } catch (...) {
    release();
    throw;
  }
}

ShardReader::~ShardReader() {
  release();
}

ShardReader::ShardReader(ShardReader&& other) noexcept {
  *this = std::move(other);
}

ShardReader& ShardReader::operator=(ShardReader&& other) noexcept {
  if (this == &other) return *this;
  release();
  path_ = std::move(other.path_);
  map_ = std::exchange(other.map_, nullptr);
  map_bytes_ = std::exchange(other.map_bytes_, 0);
  payload_ = std::exchange(other.payload_, nullptr);
  count_ = std::exchange(other.count_, 0);
  vocab_size_ = std::exchange(other.vocab_size_, 0);
  dtype_ = std::exchange(other.dtype_, 0);
  checksum_ = std::exchange(other.checksum_, 0);
  return *this;
}

void ShardReader::release() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  payload_ = nullptr;
  map_bytes_ = 0;
}

void ShardReader::check_range(uint64_t begin, uint64_t n) const {
  if (begin > count_ || n > count_ - begin)
    throw ShardError("shard " + path_ + ": range [" + std::to_string(begin) + ", " +
                     std::to_string(begin + n) + ") is outside its " + std::to_string(count_) +
                     " tokens");
}

uint32_t ShardReader::token(uint64_t i) const {
  check_range(i, 1);
  if (dtype_ == 2) return reinterpret_cast<const uint16_t*>(payload_)[i];
  return reinterpret_cast<const uint32_t*>(payload_)[i];
}

template <typename T>
void ShardReader::copy_impl(uint64_t begin, uint64_t n, T* out) const {
  check_range(begin, n);
  if (dtype_ == 2) {
    const auto* src = reinterpret_cast<const uint16_t*>(payload_) + begin;
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<T>(src[i]);
  } else {
    const auto* src = reinterpret_cast<const uint32_t*>(payload_) + begin;
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<T>(src[i]);
  }
}

void ShardReader::copy_to(uint64_t begin, uint64_t n, uint32_t* out) const {
  copy_impl(begin, n, out);
}
void ShardReader::copy_to(uint64_t begin, uint64_t n, int64_t* out) const {
  copy_impl(begin, n, out);
}

}  // namespace scalevec

#include "scalevec/checkpoint.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "scalevec/config_io.h"
#include "scalevec/shard_format.h"

namespace scalevec {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kFormatVersion = 1;

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

at::Tensor scalar(int64_t v) {
  return at::tensor(std::vector<int64_t>{v}, at::kLong);
}

int64_t read_scalar(torch::serialize::InputArchive& a, const std::string& key) {
  at::Tensor t;
  a.read(key, t);
  return t.item<int64_t>();
}

// The file: a 32-byte header (magic, payload length, FNV-1a 64 of the payload, reserved), then
// LibTorch's zip archive as the payload. The checksum catches truncation and bit flips before
// any state is touched; LibTorch's reader does not (a flipped byte loads as other weights).
constexpr char kMagic[8] = {'S', 'V', 'C', 'K', 'P', 'T', '0', '1'};
constexpr size_t kHeaderBytes = 32;

struct Header {
  char magic[8];
  uint64_t payload_bytes;
  uint64_t checksum;
  uint64_t reserved;
};
static_assert(sizeof(Header) == kHeaderBytes, "checkpoint header must be 32 bytes");

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// Free bytes for an unprivileged writer on the filesystem holding `dir`.
uint64_t free_bytes(const std::string& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// Streams the archive to `path` behind the header. LibTorch's writer must never see a failed
// write (its destructor would throw again during unwinding and terminate the process), so a
// failure is remembered, the rest swallowed, and reported once the writer is done.
void write_container(torch::serialize::OutputArchive& archive, const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw CheckpointError("cannot create checkpoint " + path + ": " + std::strerror(errno));
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  int error = 0;
  uint64_t bytes = 0;
  uint64_t hash = fnv1a64(nullptr, 0);
  auto put = [&](const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    for (size_t done = 0; done < n && !error;) {
      const ssize_t w = ::write(fd, p + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        error = w < 0 ? errno : ENOSPC;
      else
        done += static_cast<size_t>(w);
    }
  };
  put(&header, sizeof(header));
  try {
    archive.save_to([&](const void* data, size_t n) -> size_t {
      hash = fnv1a64(data, n, hash);
      bytes += n;
      put(data, n);
      return n;
    });
  } catch (const std::exception& e) {
    ::close(fd);
    std::remove(path.c_str());
    throw CheckpointError("cannot serialize checkpoint " + path + ": " + e.what());
  }
  if (!error) {
    header.payload_bytes = bytes;
    header.checksum = hash;
    if (::pwrite(fd, &header, sizeof(header), 0) != static_cast<ssize_t>(sizeof(header)))
      error = errno ? errno : EIO;
  }
  if (!error && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && !error) error = errno;
  if (error) {
    std::remove(path.c_str());
    const std::string dir = fs::path(path).parent_path().string();
    throw CheckpointError("cannot write checkpoint " + path + ": " + std::strerror(error) +
                          " (the checkpoint needs " + mib(bytes + kHeaderBytes) + ", " +
                          mib(free_bytes(dir.empty() ? "." : dir)) + " free in " +
                          (dir.empty() ? "." : dir) + "); the previous checkpoints are kept");
  }
}

// Checks the header and checksum, then opens the payload as LibTorch's archive. Files from before
// the header (a bare zip) load unchecked.
void read_container(torch::serialize::InputArchive& archive, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw CheckpointError("cannot open checkpoint " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const auto file_bytes = static_cast<uint64_t>(fs::file_size(path));
  Header header{};
  const bool has_header = file_bytes >= kHeaderBytes &&
                          ::pread(fd, &header, sizeof(header), 0) == sizeof(header) &&
                          std::memcmp(header.magic, kMagic, sizeof(kMagic)) == 0;
  if (!has_header) {
    if (file_bytes >= 4 && ::pread(fd, &header, 4, 0) == 4 &&
        std::memcmp(&header, "PK\x03\x04", 4) == 0) {
      archive.load_from(path, at::kCPU);  // written before checksums: LibTorch's own checks only
      return;
    }
    throw CorruptCheckpointError("checkpoint " + path +
                                 " is corrupt or not a scalevec checkpoint: "
                                 "no checkpoint header");
  }
  if (header.payload_bytes != file_bytes - kHeaderBytes)
    throw CorruptCheckpointError("checkpoint " + path +
                                 " is corrupt: truncated or oversized (its "
                                 "header says " +
                                 std::to_string(header.payload_bytes + kHeaderBytes) +
                                 " bytes, the file has " + std::to_string(file_bytes) + ")");
  uint64_t hash = fnv1a64(nullptr, 0);
  std::vector<char> buffer(1 << 20);
  for (uint64_t pos = kHeaderBytes; pos < file_bytes;) {
    const ssize_t n =
        ::pread(fd, buffer.data(), std::min<uint64_t>(buffer.size(), file_bytes - pos),
                static_cast<off_t>(pos));
    if (n <= 0)
      throw CorruptCheckpointError("checkpoint " + path + ": read failed: " + std::strerror(errno));
    hash = fnv1a64(buffer.data(), static_cast<size_t>(n), hash);
    pos += static_cast<uint64_t>(n);
  }
  if (hash != header.checksum)
    throw CorruptCheckpointError("checkpoint " + path +
                                 " is corrupt: checksum mismatch (the file "
                                 "changed after it was written)");
  archive.load_from(
      [&](uint64_t pos, void* buf, size_t n) -> size_t {
        const ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(pos + kHeaderBytes));
        return r < 0 ? 0 : static_cast<size_t>(r);
      },
      [&]() -> size_t { return static_cast<size_t>(header.payload_bytes); }, at::kCPU);
}

}  // namespace

std::string checkpoint_path(const std::string& out_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "ckpt_%08lld.pt", static_cast<long long>(step));
  return (fs::path(out_dir) / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& out_dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(out_dir)) return out;
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ckpt_", 0) == 0 && e.path().extension() == ".pt")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort by step
  return out;
}

void save_checkpoint(const std::string& path, TransformerImpl& model, const Optimizer& optimizer,
                     const TrainState& state, const Config& config,
                     const std::string& data_fingerprint) {
  torch::serialize::OutputArchive root;
  root.write("format_version", scalar(kFormatVersion));
  torch::serialize::OutputArchive weights;
  for (const auto& p : model.named_parameters()) weights.write(p.key(), p.value().detach().cpu());
  for (const auto& b : model.named_buffers())
    weights.write(b.key(), b.value().cpu(), /*is_buffer=*/true);
  root.write("model", weights);
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  root.write("optimizer", opt);
  root.write("step", scalar(state.step));
  root.write("tokens", scalar(state.tokens));
  root.write("nan_skips", scalar(state.nan_skips));
  root.write("config_yaml", c10::IValue(config_to_yaml(config)));
  if (!data_fingerprint.empty()) root.write("data_fingerprint", c10::IValue(data_fingerprint));
  const std::string tmp = path + ".tmp";
  write_container(root, tmp);  // removes tmp and throws on any failure
  fs::rename(tmp, path);  // atomic: a crash leaves the old checkpoint or the new, never half of one
  fsync_path(fs::path(path).parent_path().string());
}

LoadedCheckpoint load_checkpoint(const std::string& path, TransformerImpl& model,
                                 Optimizer* optimizer) {
  if (!fs::exists(path)) throw CheckpointError("checkpoint not found: " + path);
  torch::serialize::InputArchive root;
  try {
    read_container(root, path);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CorruptCheckpointError(
        "checkpoint " + path +
        " is corrupt or not a scalevec checkpoint: " + std::string(e.what()).substr(0, 300));
  }
  try {
    const int64_t version = read_scalar(root, "format_version");
    if (version != kFormatVersion)
      throw CheckpointError("checkpoint " + path + " has format version " +
                            std::to_string(version) + ", this build reads " +
                            std::to_string(kFormatVersion));
    torch::serialize::InputArchive weights;
    root.read("model", weights);
    at::NoGradGuard no_grad;
    // Every tensor is read and checked before the first is copied: a mismatch leaves the model
    // as it was.
    std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
    auto check = [&](const std::string& name, const at::Tensor& dst, bool is_buffer) {
      at::Tensor src;
      if (!weights.try_read(name, src, is_buffer))
        throw CheckpointError("checkpoint " + path + " has no tensor '" + name +
                              "': it was written by a different model config");
      if (src.sizes() != dst.sizes())
        throw CheckpointError("checkpoint " + path + ": tensor '" + name + "' has shape " +
                              c10::str(src.sizes()) + " but the model expects " +
                              c10::str(dst.sizes()));
      copies.emplace_back(dst, src);
    };
    for (auto& p : model.named_parameters()) check(p.key(), p.value(), false);
    for (auto& b : model.named_buffers()) check(b.key(), b.value(), true);
    LoadedCheckpoint out;
    out.state.step = read_scalar(root, "step");
    out.state.tokens = read_scalar(root, "tokens");
    out.state.nan_skips = read_scalar(root, "nan_skips");
    c10::IValue yaml;
    root.read("config_yaml", yaml);
    out.config_yaml = yaml.toStringRef();
    c10::IValue fingerprint;
    if (root.try_read("data_fingerprint", fingerprint))
      out.data_fingerprint = fingerprint.toStringRef();
    torch::serialize::InputArchive opt;
    if (optimizer) root.read("optimizer", opt);
    for (auto& [dst, src] : copies) dst.copy_(src);
    if (optimizer) optimizer->load(opt);
    return out;
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError("cannot restore checkpoint " + path + ": " +
                          std::string(e.what()).substr(0, 400));
  }
}

void prune_checkpoints(const std::string& out_dir, int64_t keep_last) {
  auto all = list_checkpoints(out_dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep_last, 1)) < all.size(); ++i)
    fs::remove(all[i]);
}

}  // namespace scalevec

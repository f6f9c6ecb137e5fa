// Helpers shared by the test files.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/shard_format.h"

namespace scalevec::testing {

// A loopback port that was free a moment ago (small race until the child binds it).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// train.bin (8000 tokens) and val.bin (2000) of uniform random ids below `vocab` in `dir`.
inline void write_random_shards(const std::filesystem::path& dir, uint32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> train(8000), val(2000);
  for (auto& x : train) x = rng() % vocab;
  for (auto& x : val) x = rng() % vocab;
  write_shard((dir / "train.bin").string(), train, vocab);
  write_shard((dir / "val.bin").string(), val, vocab);
}

// A CPU config of a 32-wide, 2-head model over `dir`/train.bin and val.bin, one thread,
// sequences of 16 tokens; each fixture sets its own depth, batch and schedule on top.
inline Config tiny_cpu_config(const std::filesystem::path& dir, int64_t vocab) {
  Config cfg;
  cfg.model.vocab_size = vocab;
  cfg.model.d_model = 32;
  cfg.model.n_heads = 2;
  cfg.model.max_seq_len = 16;
  cfg.train.seq_len = 16;
  cfg.train.threads = 1;
  cfg.train.device = "cpu";
  cfg.data.train_shard = (dir / "train.bin").string();
  cfg.data.val_shard = (dir / "val.bin").string();
  return cfg;
}

}  // namespace scalevec::testing

// libFuzzer target: the checkpoint loader. Input: a first byte choosing the mode, then bytes.
// Mode even: the bytes are a whole checkpoint file (the header and checksum must reject it
// before any state is touched). Mode odd: the bytes are the payload, wrapped in a valid header
// with its real checksum, so the fuzzer reaches LibTorch's archive reader and the restore logic
// behind it. Every bad input must end in a CheckpointError. Run: scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "scalevec/checkpoint.h"
#include "scalevec/config.h"
#include "scalevec/model.h"
#include "scalevec/optim.h"
#include "scalevec/shard_format.h"

namespace {

scalevec::Config fuzz_config() {
  scalevec::Config cfg;  // the model of scripts/fuzz.sh's seed checkpoint
  cfg.model.vocab_size = 61;
  cfg.model.d_model = 16;
  cfg.model.n_layers = 1;
  cfg.model.n_heads = 2;
  cfg.model.max_seq_len = 8;
  return cfg;
}

}  // namespace

// SCALEVEC_FUZZ_SEED_DIR=DIR: write two seeds there (a real checkpoint of the model above, in
// both modes) at start-up; scripts/fuzz.sh does this.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("SCALEVEC_FUZZ_SEED_DIR");
  if (!dir) return 0;
  const scalevec::Config cfg = fuzz_config();
  scalevec::Transformer model(cfg.model, 1);
  auto optimizer = scalevec::make_optimizer(cfg.optim, model->named_params());
  const std::string ckpt = std::string(dir) + "/checkpoint.pt";
  scalevec::save_checkpoint(ckpt, *model, *optimizer, {}, cfg, "");
  std::ifstream in(ckpt, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::ofstream(std::string(dir) + "/whole-file", std::ios::binary) << '\0' << bytes;
  std::ofstream(std::string(dir) + "/payload", std::ios::binary) << '\1' << bytes.substr(32);
  std::remove(ckpt.c_str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const scalevec::Config cfg = fuzz_config();
  static scalevec::Transformer model(cfg.model, 1);
  static auto optimizer = scalevec::make_optimizer(cfg.optim, model->named_params());
  static const std::string path = "/tmp/scalevec_fuzz_ckpt_" + std::to_string(::getpid()) + ".pt";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  if (data[0] & 1) {
    char header[32] = {'S', 'V', 'C', 'K', 'P', 'T', '0', '1'};
    const uint64_t bytes = size - 1, sum = scalevec::fnv1a64(data + 1, size - 1);
    std::memcpy(header + 8, &bytes, 8);
    std::memcpy(header + 16, &sum, 8);
    std::fwrite(header, 1, sizeof(header), f);
  }
  std::fwrite(data + 1, 1, size - 1, f);
  std::fclose(f);
  try {
    scalevec::load_checkpoint(path, *model, optimizer.get());
  } catch (const scalevec::CheckpointError&) {
  }
  return 0;
}

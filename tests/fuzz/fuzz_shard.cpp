// libFuzzer target: the token shard reader. Input: a whole shard file. A bad file must end in a
// ShardError naming it; a file that opens must serve every token it claims. Run: scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "scalevec/shard_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/scalevec_fuzz_shard_" + std::to_string(::getpid()) + ".bin";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  for (bool verify : {true, false}) {
    try {
      const scalevec::ShardReader shard(path, verify);
      std::vector<int64_t> all(shard.count());
      shard.copy_to(0, shard.count(), all.data());
      if (verify)
        for (int64_t t : all)
          if (static_cast<uint64_t>(t) >= shard.vocab_size()) __builtin_trap();
      try {
        shard.token(shard.count());  // one past the end: must throw
        __builtin_trap();
      } catch (const scalevec::ShardError&) {
      }
    } catch (const scalevec::ShardError&) {
    }
  }
  return 0;
}

// libFuzzer target: the safetensors reader (export/import of HF folders). Input: the bytes of a
// file. Every bad input must end in a SafetensorsError; a good one must give tensors whose sizes
// match what the header promised. Run: scripts/fuzz.sh 60 safetensors.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "scalevec/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto file = scalevec::parse_safetensors(bytes, "fuzz");
    size_t total = 0;
    for (const auto& nt : file.tensors) total += nt.second.numel() * nt.second.element_size();
    if (total > size) {
      std::fprintf(stderr, "tensors hold %zu bytes of a %zu-byte input\n", total, size);
      std::abort();
    }
  } catch (const scalevec::SafetensorsError&) {
    // the expected way to refuse
  }
  return 0;
}

// libFuzzer target: the config parser. Input: YAML text, then optionally a NUL byte and `--set`
// overrides one per line. Every bad input must end in a ConfigError (a clear message), never a
// crash, a hang or another exception type. Run: scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "scalevec/config_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const std::string yaml = input.substr(0, nul);
  std::vector<std::string> overrides;
  if (nul != std::string::npos) {
    std::istringstream lines(input.substr(nul + 1));
    for (std::string line; std::getline(lines, line);) overrides.push_back(line);
  }
  try {
    const scalevec::Config cfg = scalevec::load_config_string(yaml, overrides, "fuzz.yaml");
    // What parses must print and parse back to the same config.
    const std::string text = scalevec::config_to_yaml(cfg);
    if (scalevec::config_to_yaml(scalevec::load_config_string(text, {}, "roundtrip")) != text)
      __builtin_trap();
  } catch (const scalevec::ConfigError&) {
  }
  return 0;
}

// YAML <-> Config: includes (`defaults:`), --set overrides, strict validation with key paths and
// file:line in every message, and the resolved config written next to each run.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "scalevec/config.h"

namespace scalevec {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Loads `path` (following `defaults:` includes, relative to the including file), then applies
// overrides of the form "a.b.c=value" in order. Throws ConfigError naming every problem.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Same from an in-memory YAML document; `name` stands in for the file name in messages.
Config load_config_string(const std::string& yaml, const std::vector<std::string>& overrides = {},
                          const std::string& name = "<string>");

// Semantic checks that need several keys at once (heads divide width, ...).
void validate_config(const Config& config);

std::string config_to_yaml(const Config& config);
// Writes atomically (temp file + rename).
void save_config(const Config& config, const std::string& path);
// Every accepted key, dotted, in declaration order.
std::vector<std::string> config_keys();

}  // namespace scalevec

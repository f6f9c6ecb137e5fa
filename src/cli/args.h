// Command-line arguments shared by every subcommand: --config FILE, --set key=value (repeatable),
// and flags/options of the form --name or --name VALUE.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "scalevec/config.h"

namespace scalevec::cli {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Args {
  std::vector<std::string> argv;  // the whole command line, for run_info.yaml
  std::string command;
  std::string config_path;
  std::vector<std::string> overrides;          // from --set
  std::map<std::string, std::string> options;  // --name VALUE (or "" for a bare flag)

  bool has(const std::string& name) const { return options.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  // Loads --config with the --set overrides; UsageError when --config is missing.
  Config load() const;
};

// `flags` names the options that take no value.
Args parse_args(int argc, char** argv, const std::vector<std::string>& flags);

}  // namespace scalevec::cli

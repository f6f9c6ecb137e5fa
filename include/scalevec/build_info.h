// What this binary is and what it was built against (scalevec --version, run_info.yaml).
#pragma once

#include <map>
#include <string>

namespace scalevec {

struct BuildInfo {
  std::string version;     // scalevec's own version
  std::string git_commit;  // "unknown" outside a git checkout
  std::string git_dirty;   // "true", "false" or "unknown"
  std::string build_type;  // CMAKE_BUILD_TYPE
  std::string compiler;    // e.g. "gcc 12.2.0"
  std::string cxx_standard;
  std::string torch;  // LibTorch version
  std::string cuda;   // CUDA runtime the build targets, or "none"
  std::string cudnn;  // cuDNN seen at run time, or "none"
  std::string nccl;   // NCCL headers of the build, or "none"
};

BuildInfo build_info();
// The multi-line text of `scalevec --version`.
std::string version_text();

// The machine at run time: OS, kernel, CPU model and cores, GPUs with their memory, host name.
std::map<std::string, std::string> machine_info();

}  // namespace scalevec

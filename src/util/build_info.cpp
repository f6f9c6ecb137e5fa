#include "scalevec/build_info.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "scalevec/compat.h"
#include "scalevec/dist_compat.h"
#include "scalevec_git.h"

namespace scalevec {

namespace {

std::string os_pretty_name() {
  std::ifstream in("/etc/os-release");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string v = line.substr(12);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return v;
  }
  return "unknown";
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "unknown";
}

}  // namespace

BuildInfo build_info() {
  BuildInfo b;
  b.version = "0.1.0";
  b.git_commit = SCALEVEC_GIT_COMMIT;
  b.git_dirty = SCALEVEC_GIT_DIRTY;
  b.build_type = SCALEVEC_BUILD_TYPE;
#if defined(__clang__)
  b.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  b.compiler = "gcc " __VERSION__;
#else
  b.compiler = "unknown";
#endif
  b.cxx_standard = "C++" + std::to_string(SCALEVEC_CXX_STANDARD);
  b.torch = TORCH_VERSION;
  b.cuda = compat::cuda_runtime_version();
  b.cudnn = compat::cudnn_version();
  b.nccl = dist_compat::nccl_build_version();
  return b;
}

std::string version_text() {
  const BuildInfo b = build_info();
  std::ostringstream os;
  os << "scalevec " << b.version << " (commit " << b.git_commit
     << (b.git_dirty == "true" ? ", dirty" : "") << ", " << b.build_type << ")\n"
     << "LibTorch " << b.torch << ", CUDA " << b.cuda << ", cuDNN " << b.cudnn << ", NCCL "
     << b.nccl << "\n"
     << b.compiler << ", " << b.cxx_standard << "\n";
  return os.str();
}

std::map<std::string, std::string> machine_info() {
  std::map<std::string, std::string> m;
  utsname u{};
  if (::uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  m["host"] = host;
  m["os"] = os_pretty_name();
  m["cpu"] = cpu_model();
  m["cpu_cores"] = std::to_string(std::thread::hardware_concurrency());
  const int gpus = compat::cuda_device_count();
  m["gpus"] = std::to_string(gpus);
  for (int i = 0; i < gpus; ++i) m["gpu" + std::to_string(i)] = compat::cuda_device_summary(i);
  return m;
}

}  // namespace scalevec

#include "scalevec/run_info.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "scalevec/build_info.h"
#include "scalevec/log.h"

extern char** environ;

namespace scalevec {
namespace fs = std::filesystem;

namespace {

// Variables that change what a run computes or where it runs.
bool is_relevant_variable(const std::string& name) {
  static const char* const prefixes[] = {"SCALEVEC_", "OMP_",     "OPENBLAS_", "MKL_",
                                         "CUDA_",     "NCCL_",    "TORCH_",    "GLOO_",
                                         "MASTER_",   "SLURM_JOB"};
  for (const char* p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return name == "RANK" || name == "WORLD_SIZE" || name == "LOCAL_RANK" ||
         name == "LOCAL_WORLD_SIZE" || name == "USE_LIBUV";
}

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::vector<std::string> append_run_info(const std::string& out_dir, const RunRecord& record) {
  const fs::path path = fs::path(out_dir) / "run_info.yaml";
  YAML::Node root;
  if (fs::exists(path)) {
    try {
      root = YAML::LoadFile(path.string());
      if (!root["records"] || !root["records"].IsSequence())
        throw YAML::Exception({}, "no records");
    } catch (const YAML::Exception&) {
      fs::rename(path, path.string() + ".prev");
      log::warn("run_info: " + path.string() + " was unreadable; kept as run_info.yaml.prev");
      root = YAML::Node();
    }
  }
  const BuildInfo b = build_info();
  const auto machine = machine_info();
  YAML::Node r;
  r["event"] = record.event;
  r["time"] = utc_now();
  r["step"] = record.step;
  if (!record.resumed_from.empty()) r["resumed_from"] = record.resumed_from;
  if (!record.init_from.empty()) r["init_from"] = record.init_from;
  if (!record.data_check.empty()) r["data_check"] = record.data_check;
  if (!record.data_changes.empty()) r["data_changes"] = record.data_changes;
  if (!record.skipped_checkpoints.empty())
    r["skipped_damaged_checkpoints"] = record.skipped_checkpoints;
  r["command"] = record.command_line;
  r["world_size"] = record.world_size;
  r["hosts"] = record.hosts;
  r["scalevec"]["version"] = b.version;
  r["scalevec"]["git_commit"] = b.git_commit;
  r["scalevec"]["git_dirty"] = b.git_dirty;
  r["scalevec"]["build_type"] = b.build_type;
  r["libraries"]["libtorch"] = b.torch;
  r["libraries"]["cuda"] = b.cuda;
  r["libraries"]["cudnn"] = b.cudnn;
  r["libraries"]["nccl"] = b.nccl;
  r["compiler"]["name"] = b.compiler;
  r["compiler"]["standard"] = b.cxx_standard;
  for (const auto& [k, v] : machine) r["machine"][k] = v;
  YAML::Node env(YAML::NodeType::Map);
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (!eq) continue;
    const std::string name(*e, static_cast<size_t>(eq - *e));
    if (is_relevant_variable(name)) env[name] = std::string(eq + 1);
  }
  r["environment"] = env;
  root["records"].push_back(r);

  const std::string tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << "# Provenance of this run folder: one record per start or resume (scalevec).\n"
        << root << "\n";
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);

  std::vector<std::string> lines;
  lines.push_back(log::cat("run: ", record.event, " at step ", record.step, ", scalevec ",
                           b.version, " commit ", b.git_commit.substr(0, 12),
                           b.git_dirty == "true" ? " (dirty)" : "", ", LibTorch ", b.torch,
                           ", CUDA ", b.cuda, ", cuDNN ", b.cudnn, ", NCCL ", b.nccl));
  lines.push_back(log::cat("machine: ", machine.at("host"), ", ", machine.at("os"), ", ",
                           machine.at("cpu"), " (", machine.at("cpu_cores"), " cores), ",
                           machine.at("gpus"), " GPUs",
                           machine.count("gpu0") ? " (" + machine.at("gpu0") + ")" : "",
                           ", world size ", record.world_size));
  return lines;
}

}  // namespace scalevec

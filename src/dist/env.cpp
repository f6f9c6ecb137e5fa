// DistEnv discovery from torchrun or SLURM variables.
#include <cstdlib>
#include <stdexcept>

#include "scalevec/dist.h"

namespace scalevec {
namespace {

int parse_int(const std::string& name, const std::string& text) {
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) {
    throw std::invalid_argument("distributed env: " + name + "='" + text + "' is not an integer");
  }
  return value;
}

}  // namespace

DistEnv dist_env_from_variables(
    const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  DistEnv env;
  // torchrun's variables win; SLURM's are the fallback for plain srun launches.
  const bool torchrun = lookup("RANK").has_value() || lookup("WORLD_SIZE").has_value();
  const char* rank_var = torchrun ? "RANK" : "SLURM_PROCID";
  const char* size_var = torchrun ? "WORLD_SIZE" : "SLURM_NTASKS";
  const char* local_var = torchrun ? "LOCAL_RANK" : "SLURM_LOCALID";
  const auto rank = lookup(rank_var);
  const auto size = lookup(size_var);
  if (!rank && !size) return env;  // single process
  if (!rank || !size) {
    throw std::invalid_argument(std::string("distributed env: ") + rank_var + " and " + size_var +
                                " must be set together");
  }
  env.rank = parse_int(rank_var, *rank);
  env.world_size = parse_int(size_var, *size);
  const auto local = lookup(local_var);
  env.local_rank = local ? parse_int(local_var, *local) : env.rank;
  if (const auto addr = lookup("MASTER_ADDR"); addr && !addr->empty()) env.master_addr = *addr;
  if (const auto port = lookup("MASTER_PORT")) env.master_port = parse_int("MASTER_PORT", *port);

  if (env.world_size < 1) {
    throw std::invalid_argument("distributed env: " + std::string(size_var) + "=" +
                                std::to_string(env.world_size) + " must be >= 1");
  }
  if (env.rank < 0 || env.rank >= env.world_size) {
    throw std::invalid_argument("distributed env: " + std::string(rank_var) + "=" +
                                std::to_string(env.rank) + " must be in [0, " +
                                std::to_string(env.world_size) + ")");
  }
  if (env.local_rank < 0 || env.local_rank > env.rank) {
    throw std::invalid_argument("distributed env: " + std::string(local_var) + "=" +
                                std::to_string(env.local_rank) +
                                " must be in [0, rank=" + std::to_string(env.rank) + "]");
  }
  if (env.master_port < 1 || env.master_port > 65535) {
    throw std::invalid_argument("distributed env: MASTER_PORT=" + std::to_string(env.master_port) +
                                " must be in [1, 65535]");
  }
  return env;
}

DistEnv dist_env_from_environment() {
  return dist_env_from_variables([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace scalevec

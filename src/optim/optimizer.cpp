#include <cstdio>
#include <stdexcept>

#include "scalevec/optim.h"

namespace scalevec {

namespace {
// The entry of a per-group config table (lr multipliers, weight decays) for one group.
double entry(const PerGroup& table, ParamGroup group) {
  switch (group) {
    case ParamGroup::Matrix:
      return table.matrix;
    case ParamGroup::Embedding:
      return table.embedding;
    case ParamGroup::InputNorm:
      return table.input_norm;
    case ParamGroup::OutputNorm:
      return table.output_norm;
  }
  throw std::logic_error("unknown ParamGroup");
}
}  // namespace

double group_lr_mult(const OptimConfig& cfg, ParamGroup group) {
  return entry(cfg.lr_mult, group);
}

double group_weight_decay(const OptimConfig& cfg, ParamGroup group, bool decay) {
  return decay ? entry(cfg.weight_decay, group) : 0.0;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg,
                                          const std::vector<NamedParam>& params) {
  switch (cfg.name) {
    case OptimizerKind::AdamW:
      return std::make_unique<AdamW>(cfg, params);
    case OptimizerKind::Muon:
      return std::make_unique<Muon>(cfg, params);
  }
  throw std::runtime_error("make_optimizer: unknown optimizer kind");
}

std::string format_summary(const std::vector<GroupSummary>& rows) {
  std::string out;
  char line[160];
  std::snprintf(line, sizeof(line), "%-22s %-6s %8s %12s %10s %8s\n", "group", "algo", "tensors",
                "numel", "lr", "wd");
  out += line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof(line), "%-22s %-6s %8lld %12lld %10.3g %8.3g\n", r.name.c_str(),
                  r.algorithm.c_str(), static_cast<long long>(r.tensors),
                  static_cast<long long>(r.numel), r.lr, r.weight_decay);
    out += line;
  }
  return out;
}

}  // namespace scalevec

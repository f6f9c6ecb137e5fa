// `inspect-config` and `inspect-model`: what a config resolves to and what model it builds.
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "scalevec/config_io.h"
#include "scalevec/model.h"
#include "scalevec/optim.h"

namespace scalevec::cli {
namespace {

template <typename... A>
std::string fmt(const char* f, A... a) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), f, a...);
  return buf;
}

// 1234567 -> "1,234,567": parameter counts are read by eye.
std::string grouped(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string group_label(ParamGroup g, bool decay) {
  return std::string(to_string(g)) + (decay ? "" : "/no_decay");
}

// Matrices go to Muon when it is selected; everything else is AdamW with optim.lr.
double group_lr(const OptimConfig& o, ParamGroup g) {
  const double base = o.name == OptimizerKind::Muon && g == ParamGroup::Matrix ? o.muon_lr : o.lr;
  return base * group_lr_mult(o, g);
}

std::string algorithm_of(const OptimConfig& o, ParamGroup g) {
  return o.name == OptimizerKind::Muon && g == ParamGroup::Matrix ? "muon" : "adamw";
}

// "input_norm wd=0.1 [gamma]": each (group, decay) once, with the tensor kinds it holds.
std::string norm_groups(const ScaleNorm& norm, const std::string& name, const OptimConfig& o) {
  std::vector<NamedParam> params;
  norm->collect(name, params);
  if (params.empty()) return "-";
  std::map<std::pair<int, bool>, std::set<std::string>> kinds;
  for (const auto& p : params)
    kinds[{static_cast<int>(p.group), p.decay}].insert(p.name.substr(p.name.rfind('.') + 1));
  std::string out;
  for (const auto& [key, names] : kinds) {
    const auto g = static_cast<ParamGroup>(key.first);
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ",") + n;
    out += (out.empty() ? "" : "; ") + std::string(to_string(g)) +
           fmt(" wd=%g [", group_weight_decay(o, g, key.second)) + list + "]";
  }
  return out;
}

// " IWD" when an Input-Norm's scale vectors take weight decay (the paper's IWD policy).
std::string iwd_mark(const ScaleNorm& norm, const std::string& name, const OptimConfig& o) {
  if (norm->role() != NormRole::Input) return "";
  std::vector<NamedParam> params;
  norm->collect(name, params);
  for (const auto& p : params)
    if (group_weight_decay(o, p.group, p.decay) > 0) return " IWD";
  return "";
}

void print_summary(const Config& cfg, const Transformer& model) {
  const auto& m = cfg.model;
  int64_t scales = 0;
  for (const auto& [name, norm] : model->norms()) scales += norm->scale_numel();
  const int64_t total = model->num_params();
  std::cout << "model: " << (m.moe.enabled ? "moe" : "dense") << "  d_model " << m.d_model
            << "  layers " << m.n_layers << "  heads " << m.n_heads << "/" << m.kv_heads()
            << "  ffn " << (m.moe.enabled ? m.expert_dim() : m.ffn_dim()) << "  vocab "
            << m.vocab_size << (m.tie_embeddings ? "  tied" : "  untied");
  if (m.moe.enabled)
    std::cout << "  experts " << m.moe.num_experts << " top-" << m.moe.top_k
              << (m.moe.shared_expert ? " +shared" : "");
  std::cout << "\n"
            << "total params:          " << grouped(total) << fmt(" (%.3fB)\n", total / 1e9)
            << "active matmul params:  " << grouped(model->active_matmul_params()) << "\n"
            << "FLOPs/token:           " << fmt("%.4g", model->flops_per_token(cfg.train.seq_len))
            << " (train, seq_len " << cfg.train.seq_len << ")\n"
            << "scale-vector params:   " << grouped(scales)
            << fmt(" (%.4f%% of total)\n", total > 0 ? 100.0 * scales / total : 0.0);
}

void print_norms(const Config& cfg, const Transformer& model) {
  std::cout << "\nnorms:\n"
            << fmt("  %-28s %-10s %-6s %-9s %12s  %-34s %s\n", "name", "position", "role",
                   "variant", "scale_params", "parts", "optimizer groups");
  for (const auto& [name, norm] : model->norms()) {
    std::cout << fmt("  %-28s %-10s %-6s %-9s %12s  %-34s ", name.c_str(),
                     to_string(norm->position()), to_string(norm->role()),
                     to_string(norm->options().variant), grouped(norm->scale_numel()).c_str(),
                     (norm->parts() + iwd_mark(norm, name, cfg.optim)).c_str())
              << norm_groups(norm, name, cfg.optim) << "\n";
  }
}

void print_groups(const Config& cfg, const Transformer& model) {
  struct Total {
    int64_t tensors = 0, numel = 0;
  };
  std::map<std::pair<int, bool>, Total> totals;
  for (ParamGroup g :
       {ParamGroup::Matrix, ParamGroup::Embedding, ParamGroup::InputNorm, ParamGroup::OutputNorm})
    totals[{static_cast<int>(g), true}];  // the four groups always show, even when empty
  for (const auto& p : model->named_params()) {
    auto& t = totals[{static_cast<int>(p.group), p.decay}];
    t.tensors += 1;
    t.numel += p.tensor.numel();
  }
  const auto& o = cfg.optim;
  std::cout << "\ngroups:\n"
            << fmt("  %-22s %-6s %8s %14s %12s %10s\n", "group", "optim", "tensors", "numel",
                   "weight_decay", "lr");
  for (const auto& [key, t] : totals) {
    const auto g = static_cast<ParamGroup>(key.first);
    std::cout << fmt("  %-22s %-6s %8lld %14s %12g %10g\n", group_label(g, key.second).c_str(),
                     algorithm_of(o, g).c_str(), static_cast<long long>(t.tensors),
                     grouped(t.numel).c_str(), group_weight_decay(o, g, key.second),
                     group_lr(o, g));
  }
}

}  // namespace

int cmd_inspect_config(const Args& args) {
  std::cout << config_to_yaml(args.load());
  return 0;
}

int cmd_inspect_model(const Args& args) {
  const Config cfg = args.load();
  // CPU and float32: counts and tags do not depend on the training device.
  const Transformer model(cfg.model, cfg.train.seed);
  print_summary(cfg, model);
  print_norms(cfg, model);
  print_groups(cfg, model);
  return 0;
}

}  // namespace scalevec::cli

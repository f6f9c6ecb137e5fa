// Analytic parameter counts; mirrors the module constructors (tests compare against them).
#include "scalevec/model.h"

namespace scalevec {
namespace {

struct Counts {
  int64_t matrices = 0;
  int64_t scales = 0;
};

Counts count(const ModelConfig& cfg) {
  const int64_t V = cfg.vocab_size, C = cfg.d_model, H = cfg.n_heads;
  const int64_t kv = cfg.kv_heads() * cfg.head_dim();
  Counts c;
  c.matrices = V * C * (cfg.tie_embeddings ? 1 : 2);
  int64_t layer = 2 * C * C + 2 * kv * C;  // wq, wo, wk, wv
  int64_t layer_scales = scale_numel_of(NormPosition::PreAttn, cfg.norm.pre_attn, C,
                                        {{"q", C}, {"k", kv}, {"v", kv}}, H);
  if (cfg.qk_norm)
    layer_scales += 2 * scale_numel_of(NormPosition::Qk, cfg.norm.qk, cfg.head_dim(), {});
  if (cfg.moe.enabled) {
    const int64_t E = cfg.moe.num_experts, F = cfg.expert_dim();
    std::vector<NormBranch> branches{{"router", E, 1, false}, {"gate", F, E}, {"up", F, E}};
    layer += E * C + 3 * E * F * C;
    if (cfg.moe.shared_expert) {
      branches.push_back({"shared_gate", F});
      branches.push_back({"shared_up", F});
      layer += 3 * F * C;
    }
    layer_scales += scale_numel_of(NormPosition::PreFfn, cfg.norm.pre_ffn, C, branches, H);
  } else {
    const int64_t F = cfg.ffn_dim();
    layer += 3 * C * F;
    layer_scales +=
        scale_numel_of(NormPosition::PreFfn, cfg.norm.pre_ffn, C, {{"gate", F}, {"up", F}}, H);
  }
  if (cfg.branch_out_norm)
    layer_scales += 2 * scale_numel_of(NormPosition::BranchOut, cfg.norm.branch_out, C, {});
  c.matrices += cfg.n_layers * layer;
  c.scales = cfg.n_layers * layer_scales +
             scale_numel_of(NormPosition::Final, cfg.norm.final, C, {{"lm_head", V, 1, false}}, H);
  return c;
}

}  // namespace

int64_t count_params(const ModelConfig& cfg) {
  const Counts c = count(cfg);
  return c.matrices + c.scales;
}

int64_t count_scale_params(const ModelConfig& cfg) {
  return count(cfg).scales;
}

}  // namespace scalevec

#include <cmath>

#include "scalevec/ffn.h"
#include "scalevec/tensor_util.h"

namespace scalevec {

namespace {
enum Branch : size_t { kRouter = 0, kGate = 1, kUp = 2, kSharedGate = 3, kSharedUp = 4 };
}

MoeImpl::MoeImpl(const ModelConfig& cfg)
    : moe_(cfg.moe), d_model_(cfg.d_model), hidden_(cfg.expert_dim()) {
  const int64_t C = d_model_, F = hidden_, E = moe_.num_experts;
  std::vector<NormBranch> branches{{"router", E, 1, false}, {"gate", F, E}, {"up", F, E}};
  if (moe_.shared_expert) {
    branches.push_back({"shared_gate", F});
    branches.push_back({"shared_up", F});
  }
  norm = register_module("norm", ScaleNorm(NormPosition::PreFfn, cfg.norm.pre_ffn, C,
                                           std::move(branches), cfg.n_heads));
  w_router = register_parameter("w_router", at::empty({E, C}));
  w_gate = register_parameter("w_gate", at::empty({E, F, C}));
  w_up = register_parameter("w_up", at::empty({E, F, C}));
  w_down = register_parameter("w_down", at::empty({E, C, F}));
  if (moe_.shared_expert) {
    s_gate = register_parameter("s_gate", at::empty({F, C}));
    s_up = register_parameter("s_up", at::empty({F, C}));
    s_down = register_parameter("s_down", at::empty({C, F}));
  }
}

at::Tensor MoeImpl::forward(const at::Tensor& x) {
  const auto shape = x.sizes().vec();
  const int64_t E = moe_.num_experts, K = moe_.top_k;
  const at::Tensor n = norm->normalize(x).reshape({-1, d_model_});
  const int64_t N = n.size(0);

  // Router in float32: the softmax and z-loss are sensitive to bf16 rounding.
  const at::Tensor logits = at_least_float32(norm->project(n, kRouter, w_router));
  const at::Tensor probs = at::softmax(logits, -1);
  auto [top_p, top_i] = probs.topk(K, -1);
  at::Tensor weights = top_p / top_p.sum(-1, /*keepdim=*/true);

  // Assignment a = token * K + slot; its rank inside its expert decides capacity drops.
  const at::Tensor flat_expert = top_i.reshape({-1});
  const at::Tensor one_hot = at::one_hot(flat_expert, E);  // [N*K, E]
  at::Tensor keep = at::ones({N * K}, x.options().dtype(at::kBool));
  if (moe_.capacity_factor > 0) {
    const int64_t capacity = static_cast<int64_t>(std::ceil(moe_.capacity_factor * N * K / E));
    const at::Tensor rank_in_expert = (one_hot.cumsum(0) * one_hot).sum(-1) - 1;
    keep = rank_in_expert < capacity;
  }
  stats_.expert_index = top_i;
  stats_.expert_weight = weights;
  stats_.dropped = (~keep).sum();
  // Switch load balance: f_e = share of assignments to e, P_e = mean router prob of e.
  const at::Tensor f = one_hot.to(probs.scalar_type()).mean(0);
  const at::Tensor P = probs.mean(0);
  stats_.load_balance = (f * P).sum() * static_cast<double>(E);
  stats_.z_loss = at::logsumexp(logits, -1).pow(2).mean();

  // Grouped experts: sort assignments by expert, run each expert on its contiguous slice.
  const at::Tensor kept = keep.nonzero().squeeze(-1);
  const at::Tensor kept_expert = flat_expert.index_select(0, kept);
  const at::Tensor order = kept_expert.argsort();
  const at::Tensor sorted_assign = kept.index_select(0, order);
  const at::Tensor token_of = at::floor_divide(sorted_assign, K);
  const at::Tensor gate_w = norm->scaled_weight(kGate, w_gate);
  const at::Tensor up_w = norm->scaled_weight(kUp, w_up);
  const at::Tensor counts = at::bincount(kept_expert, {}, E).to(at::kCPU);
  const at::Tensor x_sorted = n.index_select(0, token_of);
  const at::Tensor w_sorted = weights.reshape({-1}).index_select(0, sorted_assign).unsqueeze(-1);
  std::vector<at::Tensor> outs;
  int64_t start = 0;
  const auto* c = counts.data_ptr<int64_t>();
  for (int64_t e = 0; e < E; ++e) {
    if (c[e] == 0) continue;
    const at::Tensor xe = x_sorted.slice(0, start, start + c[e]);
    const at::Tensor h = at::silu(norm->after_matmul(kGate, at::matmul(xe, gate_w[e].t()), e)) *
                         norm->after_matmul(kUp, at::matmul(xe, up_w[e].t()), e);
    outs.push_back(at::matmul(h, w_down[e].t()));
    start += c[e];
  }
  at::Tensor y = at::zeros({N, d_model_}, x.options());
  if (!outs.empty()) {
    const at::Tensor expert_out = at::cat(outs, 0);
    y = y.index_add(0, token_of,
                    (expert_out * w_sorted.to(expert_out.scalar_type())).to(y.scalar_type()));
  }
  if (moe_.shared_expert) {
    const at::Tensor h =
        at::silu(norm->project(n, kSharedGate, s_gate)) * norm->project(n, kSharedUp, s_up);
    y = y + at::matmul(h, s_down.t()).to(y.scalar_type());
  }
  return y.reshape(shape);
}

at::Tensor MoeImpl::aux_loss() const {
  return stats_.load_balance * moe_.aux_loss_coef + stats_.z_loss * moe_.z_loss_coef;
}

}  // namespace scalevec

// Feed-forward branches: dense SwiGLU and top-k routed mixture of experts. Both read the
// pre-FFN Input-Norm through its branches (gate, up; router and experts in MoE).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "scalevec/config.h"
#include "scalevec/norm.h"

namespace scalevec {

class SwiGluImpl : public torch::nn::Module {
 public:
  explicit SwiGluImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x);  // [.., C] -> [.., C]

  ScaleNorm norm{nullptr};
  at::Tensor w_gate, w_up, w_down;
};
TORCH_MODULE(SwiGlu);

// Router statistics of one forward, for the auxiliary losses and for tests.
struct RouterStats {
  at::Tensor expert_index;   // [N, k] chosen experts per token
  at::Tensor expert_weight;  // [N, k] combine weights (renormalized over the top-k)
  at::Tensor load_balance;   // Switch loss: E * sum_e f_e * P_e
  at::Tensor z_loss;         // mean(logsumexp(logits)^2)
  at::Tensor dropped;        // number of (token, expert) assignments over capacity
};

class MoeImpl : public torch::nn::Module {
 public:
  explicit MoeImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x);  // [B, T, C] -> [B, T, C]; fills last_stats()
  const RouterStats& last_stats() const { return stats_; }
  // Weighted auxiliary loss of the last forward: aux_coef * balance + z_coef * z.
  at::Tensor aux_loss() const;

  ScaleNorm norm{nullptr};
  at::Tensor w_router;              // [E, C]
  at::Tensor w_gate, w_up, w_down;  // [E, F, C], [E, F, C], [E, C, F]
  at::Tensor s_gate, s_up, s_down;  // shared expert (optional): [F, C], [F, C], [C, F]

 private:
  MoeConfig moe_;
  int64_t d_model_, hidden_;
  RouterStats stats_;
};
TORCH_MODULE(Moe);

}  // namespace scalevec

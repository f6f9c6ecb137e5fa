// Causal self-attention with RoPE, optional grouped-query heads and optional QK-norm. W_q, W_k,
// W_v read the pre-attention norm through its branches (one GEMM in weight mode).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "scalevec/config.h"
#include "scalevec/norm.h"

namespace scalevec {

// Rotary embedding tables for positions [0, max_seq_len): cos and sin, [T, head_dim / 2].
struct Rope {
  at::Tensor cos, sin;
  static Rope build(int64_t max_seq_len, int64_t head_dim, double theta);
};
// Rotates pairs (x[2i], x[2i+1]) of [B, H, T, D] by position.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// softmax(q k^T / sqrt(d) + causal mask) v on [B, H, T, D]; exact reference path.
at::Tensor causal_attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
// Fused kernel where LibTorch has one (2.x), else the math path.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            AttentionKernel kernel);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& cfg);
  // x: residual stream [B, T, C]; returns the attention branch output [B, T, C].
  at::Tensor forward(const at::Tensor& x, const Rope& rope);
  // Math attention (twice differentiable) instead of the configured kernel while on.
  void set_math_only(bool on) { kernel_ = on ? AttentionKernel::Math : configured_kernel_; }

  ScaleNorm norm{nullptr};                     // pre-attention Input-Norm
  ScaleNorm q_norm{nullptr}, k_norm{nullptr};  // QK Output-Norms (optional)
  at::Tensor wq, wk, wv, wo;

 private:
  int64_t n_heads_, n_kv_heads_, head_dim_;
  AttentionKernel configured_kernel_, kernel_;
};
TORCH_MODULE(Attention);

}  // namespace scalevec

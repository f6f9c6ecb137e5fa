#include "scalevec/attention.h"

#include <cmath>
#include <limits>

#include "scalevec/compat.h"
#include "scalevec/tensor_util.h"

namespace scalevec {

Rope Rope::build(int64_t max_seq_len, int64_t head_dim, double theta) {
  // Double precision tables, cast once: angles of late positions keep their accuracy.
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor inv_freq =
      at::pow(theta, -at::arange(0, head_dim, 2, opts) / static_cast<double>(head_dim));
  const at::Tensor angles = at::outer(at::arange(max_seq_len, opts), inv_freq);
  return {angles.cos().to(at::kFloat), angles.sin().to(at::kFloat)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t T = x.size(2);
  const at::Tensor c = cos.slice(0, 0, T).to(x.scalar_type());
  const at::Tensor s = sin.slice(0, 0, T).to(x.scalar_type());
  const at::Tensor pairs = x.unflatten(-1, {-1, 2});
  const at::Tensor x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  return at::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).flatten(-2);
}

at::Tensor causal_attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t T = q.size(2), S = k.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at_least_float32(at::matmul(q, k.transpose(-2, -1))) * scale;
  const at::Tensor future = at::ones({T, S}, q.options().dtype(at::kBool)).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  return at::matmul(at::softmax(scores, -1).to(v.scalar_type()), v);
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            AttentionKernel kernel) {
  const bool fused = kernel == AttentionKernel::Fused ||
                     (kernel == AttentionKernel::Auto && compat::kHasFusedSdpa);
  if (fused) return compat::fused_causal_sdpa(q, k, v);
  return causal_attention_math(q, k, v);
}

AttentionImpl::AttentionImpl(const ModelConfig& cfg)
    : n_heads_(cfg.n_heads),
      n_kv_heads_(cfg.kv_heads()),
      head_dim_(cfg.head_dim()),
      configured_kernel_(cfg.attention),
      kernel_(cfg.attention) {
  TORCH_CHECK(!(cfg.attention == AttentionKernel::Fused && !compat::kHasFusedSdpa),
              "model.attention=fused needs LibTorch >= 2.0; use auto or math");
  const int64_t C = cfg.d_model, kv = n_kv_heads_ * head_dim_;
  norm = register_module(
      "norm", ScaleNorm(NormPosition::PreAttn, cfg.norm.pre_attn, C,
                        std::vector<NormBranch>{{"q", C}, {"k", kv}, {"v", kv}}, cfg.n_heads));
  if (cfg.qk_norm) {
    q_norm = register_module("q_norm", ScaleNorm(NormPosition::Qk, cfg.norm.qk, head_dim_));
    k_norm = register_module("k_norm", ScaleNorm(NormPosition::Qk, cfg.norm.qk, head_dim_));
  }
  wq = register_parameter("wq", at::empty({C, C}));
  wk = register_parameter("wk", at::empty({kv, C}));
  wv = register_parameter("wv", at::empty({kv, C}));
  wo = register_parameter("wo", at::empty({C, C}));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const Rope& rope) {
  const int64_t B = x.size(0), T = x.size(1);
  const auto qkv = norm->project_all(norm->normalize(x), {wq, wk, wv});
  at::Tensor q = qkv[0].view({B, T, n_heads_, head_dim_}).transpose(1, 2);
  at::Tensor k = qkv[1].view({B, T, n_kv_heads_, head_dim_}).transpose(1, 2);
  at::Tensor v = qkv[2].view({B, T, n_kv_heads_, head_dim_}).transpose(1, 2);
  if (q_norm) {
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  q = apply_rope(q, rope.cos.to(x.device()), rope.sin.to(x.device()));
  k = apply_rope(k, rope.cos.to(x.device()), rope.sin.to(x.device()));
  if (n_kv_heads_ != n_heads_) {
    const int64_t rep = n_heads_ / n_kv_heads_;
    k = k.repeat_interleave(rep, 1);
    v = v.repeat_interleave(rep, 1);
  }
  const at::Tensor y = causal_attention(q, k, v, kernel_).transpose(1, 2).reshape({B, T, -1});
  return at::matmul(y, wo.t());
}

}  // namespace scalevec

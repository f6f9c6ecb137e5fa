// Decoder-only Pre-Norm transformer (dense or MoE) built from ModelConfig.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <utility>
#include <vector>

#include "scalevec/attention.h"
#include "scalevec/config.h"
#include "scalevec/ffn.h"
#include "scalevec/norm.h"
#include "scalevec/params.h"

namespace scalevec {

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x, const Rope& rope);
  at::Tensor aux_loss() const;  // MoE auxiliary loss of the last forward (0 for dense)

  Attention attn{nullptr};
  SwiGlu mlp{nullptr};
  Moe moe{nullptr};
  ScaleNorm attn_out_norm{nullptr}, ffn_out_norm{nullptr};  // branch-output Output-Norms
};
TORCH_MODULE(Block);

// A norm with the linear maps that read its output: weights[b] reads branch b (empty for an
// Output-Norm, whose output no map reads).
struct NormReaders {
  std::string name;
  ScaleNorm norm;
  std::vector<at::Tensor> weights;
};

struct LossOutput {
  at::Tensor loss;  // ce + aux: what backward() sees
  at::Tensor ce;    // mean next-token cross-entropy (nats)
  at::Tensor aux;   // weighted MoE auxiliary losses (0 for dense)
};

class TransformerImpl : public torch::nn::Module {
 public:
  // Weights are drawn from a generator seeded with `seed`: same seed, same model.
  TransformerImpl(const ModelConfig& cfg, uint64_t seed);

  at::Tensor forward(const at::Tensor& tokens);  // [B, T] int64 -> logits [B, T, V]
  LossOutput loss(const at::Tensor& tokens, const at::Tensor& targets);

  const ModelConfig& config() const { return cfg_; }
  // Every trainable tensor once, tagged with its optimizer group.
  std::vector<NamedParam> named_params() const;
  // Every norm with its dotted name.
  std::vector<std::pair<std::string, ScaleNorm>> norms() const;
  // Every norm with its readers' weights (same names and order as norms()).
  std::vector<NormReaders> norm_readers() const;
  // On: unfused ATen attention and RMS normalization everywhere, which are differentiable twice
  // (double backward for Hessian probes); off: the configured kernels again.
  void set_reference_kernels(bool on);
  int64_t num_params() const;
  // Parameters a token passes through (MoE: top_k of num_experts experts), embeddings excluded
  // unless tied into the LM head.
  int64_t active_matmul_params() const;
  // Training FLOPs per token: 6 * active_matmul_params + 12 * n_layers * d_model * seq_len.
  double flops_per_token(int64_t seq_len) const;

  at::Tensor tok_emb, lm_head;  // lm_head undefined when tied
  torch::nn::ModuleList blocks{nullptr};
  ScaleNorm final_norm{nullptr};

 private:
  void init_weights(uint64_t seed);

  ModelConfig cfg_;
  Rope rope_;
};
TORCH_MODULE(Transformer);

// Parameters of Transformer(cfg) from the config alone: sizes the 2B configs without allocating.
int64_t count_params(const ModelConfig& cfg);
// The scale-vector part of count_params (every norm's scale_numel()).
int64_t count_scale_params(const ModelConfig& cfg);

}  // namespace scalevec

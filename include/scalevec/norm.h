// The pluggable normalization layer: RMS normalization n(x) computed once, plus the scale vectors
// of the chosen variant (docs/norms.md; design: ../shared/design/scale-vectors.md).
//
// Input-Norm (output feeds linear maps W_b, the "branches"):
//   y_b = g_out_b * (W_b (g_in_b * n(x)))
//   none: no g.  standard: one g_in shared by all branches.  branch: one g_in per branch.
//   relocated: g_in shared (placement input|both) and g_out per branch (placement output|both).
//     DP form as above; DNP form y_b = g_out_b * Norm(W_b (g_in_b * n(x))), Norm an RMS
//     normalization over the branch's output features (per expert for stacks).
//   magdir: standard with g = beta * sqrt(d) * v / ||v|| (beta = m: OR, beta = exp(s): ER).
//   unified: branch + relocated (DNP at the pre-FFN norm, DP elsewhere) + magdir.
// Output-Norm (no linear map follows: QK-norm, branch-output norms): y = g * n(x), g plain
//   (standard/branch/relocated: nothing to branch or relocate) or magdir (magdir/unified).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/params.h"

namespace scalevec {

// n(x) = x / sqrt(mean(x^2) + eps) over the last dim; accumulates in float32 for low precision.
// CUDA float32/bfloat16 inputs take the fused kernels (scalevec/rms_norm_cuda.h).
at::Tensor rms_normalize(const at::Tensor& x, double eps);
// The unfused ATen form of the same function (any device/dtype; higher-order differentiable).
at::Tensor rms_normalize_reference(const at::Tensor& x, double eps);

// A learnable scale vector of shape [copies?, dim]: plain gamma, or magnitude-direction
// gamma = beta * sqrt(d_g) * v / ||v||_g over `groups` equal slices of the last dim, with the
// magnitude beta = m (OR, parameter "magnitude") or beta = exp(s) (ER, "log_magnitude").
class ScaleVectorImpl : public torch::nn::Module {
 public:
  ScaleVectorImpl(int64_t copies, int64_t dim, double init, bool magdir, int64_t groups,
                  MagnitudeSpace space = MagnitudeSpace::Original);
  at::Tensor value() const;
  bool is_magdir() const { return magdir_; }
  int64_t numel() const;
  // Appends this vector's tensors with the group of its role and the decay flags of `opts`.
  void collect(const std::string& prefix, NormRole role, const NormOptions& opts,
               std::vector<NamedParam>& out) const;

 private:
  bool magdir_;
  int64_t groups_;
  MagnitudeSpace space_;
  at::Tensor gamma_, magnitude_, direction_;
};
TORCH_MODULE(ScaleVector);

// One linear map that reads the norm's output. copies > 1: a stack of maps (MoE experts),
// whose weights are [copies, out_dim, dim].
struct NormBranch {
  std::string name;
  int64_t out_dim = 0;
  int64_t copies = 1;
  // False for logits (MoE router, LM head): DNP would fix the softmax temperature, so such a
  // branch keeps the DP form.
  bool dnp_allowed = true;
};

class ScaleNormImpl : public torch::nn::Module {
 public:
  // `heads` sets the group count of per-head magdir magnitudes (1 for scalar).
  ScaleNormImpl(NormPosition position, const NormOptions& opts, int64_t dim,
                std::vector<NormBranch> branches = {}, int64_t heads = 1);

  NormPosition position() const { return position_; }
  NormRole role() const { return role_; }
  const NormOptions& options() const { return opts_; }
  const std::vector<NormBranch>& branches() const { return branches_; }

  at::Tensor normalize(const at::Tensor& x) const;
  // The ATen reference normalization (twice differentiable) instead of fused kernels while on.
  void set_reference_only(bool on) { reference_only_ = on; }
  // Output-Norm: g * n(x). Also valid for an Input-Norm without branches-specific scales.
  at::Tensor forward(const at::Tensor& x);

  // Scales around branch b's linear map; undefined tensor when that side has none.
  at::Tensor input_scale(size_t b) const;
  // Which distinct vector branch b's input scale is (branches sharing one have the same id);
  // -1 when the branch has no input scale.
  int64_t input_scale_id(size_t b) const;
  at::Tensor output_scale(size_t b) const;
  // True when branch b has the DNP form (a normalization between W_b and g_out_b).
  bool is_dnp(size_t b) const { return b < dnp_.size() && dnp_[b]; }
  // diag(g_out_b) W diag(g_in_b): the exact weight-side form (W: [out, dim] or [copies, out, dim]);
  // for a DNP branch only diag(g_in_b) is folded: g_out_b comes after the normalization.
  at::Tensor scaled_weight(size_t b, const at::Tensor& weight) const;
  // What follows `y = n @ scaled_weight(b, W)^T`: DNP's Norm and g_out_b (of copy `expert` of a
  // stack; all copies when expert < 0 and y is [copies, rows, out]); y itself for a DP branch.
  at::Tensor after_matmul(size_t b, const at::Tensor& y, int64_t expert = -1) const;
  // g_out_b * (W (g_in_b * n)) for one branch, following opts.apply (weight or activation side).
  at::Tensor project(const at::Tensor& n, size_t b, const at::Tensor& weight) const;
  // All branches at once; in weight mode the 2-D branches share one matmul.
  std::vector<at::Tensor> project_all(const at::Tensor& n,
                                      const std::vector<at::Tensor>& weights) const;

  // The paper's parts this norm uses, e.g. "HG DNP[gate,up] DP[router] OR" ("-": no scale).
  std::string parts() const;

  // Scale-vector tensors with their optimizer tags.
  void collect(const std::string& prefix, std::vector<NamedParam>& out) const;
  int64_t scale_numel() const;
  // Stacked values of every scale vector (for mean/std/min/max logging); undefined if none.
  at::Tensor scale_values() const;

 private:
  NormPosition position_;
  NormRole role_;
  NormOptions opts_;
  int64_t dim_;
  std::vector<NormBranch> branches_;
  std::vector<bool> dnp_;                // per branch
  std::vector<ScaleVector> in_scales_;   // per branch; entries may alias (shared) or be empty
  std::vector<ScaleVector> out_scales_;  // per branch; may be empty
  std::vector<ScaleVector> owned_;       // each distinct vector once, in registration order
  bool reference_only_ = false;
};
TORCH_MODULE(ScaleNorm);

NormRole role_of(NormPosition position);

// scale_numel() of ScaleNorm(position, opts, dim, branches, heads) without building it.
int64_t scale_numel_of(NormPosition position, const NormOptions& opts, int64_t dim,
                       const std::vector<NormBranch>& branches, int64_t heads = 1);

}  // namespace scalevec

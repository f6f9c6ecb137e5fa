// Optimizers (AdamW, Muon) over role-tagged parameters, plus global-norm gradient clipping.
// Parameter groups come from NamedParam tags (ParamGroup x decay flag), never from names.
// See docs/optim.md for the formulas.
#pragma once

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/params.h"

namespace scalevec {

// Adam's per-coordinate step size for the next update of one tensor:
// lr_group * lr_scale / ((1 - beta1^t) (sqrt(v_t / (1 - beta2^t)) + eps)), i.e. the update is
// -step_size * m_t. This is P^-1 of Cohen et al. 2022 (Adaptive Gradient Methods at the Edge of
// Stability), times the learning rate.
struct AdamStepSize {
  at::Tensor param;
  at::Tensor step_size;  // same shape as param
};

// One line of the optimizer table printed at startup.
struct GroupSummary {
  std::string name;       // "matrix", "input_norm", "embedding/no_decay", ...
  std::string algorithm;  // "adamw" or "muon"
  int64_t tensors = 0;
  int64_t numel = 0;
  double lr = 0.0;  // base lr (before the schedule multiplier)
  double weight_decay = 0.0;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update; every group's lr is its base lr times lr_scale (the schedule multiplier).
  virtual void step(double lr_scale) = 0;
  // Drops all gradients (undefined grads are skipped by step()).
  virtual void zero_grad() = 0;
  // All state (step counts, moments, momentum buffers) so that a resumed run is bit-identical.
  virtual void save(torch::serialize::OutputArchive& archive) const = 0;
  // Throws std::runtime_error naming the parameter when a saved shape or name does not match.
  virtual void load(torch::serialize::InputArchive& archive) = 0;
  virtual std::vector<GroupSummary> summary() const = 0;
  // Every tensor this optimizer updates with Adam and has taken at least one step on (Muon's
  // orthogonalized matrices are not Adam-preconditioned and are absent).
  virtual std::vector<AdamStepSize> adam_step_sizes(double lr_scale) const = 0;
};

// Base lr and weight decay of a parameter group from the config (wd is 0 when decay is false).
double group_lr_mult(const OptimConfig& cfg, ParamGroup group);
double group_weight_decay(const OptimConfig& cfg, ParamGroup group, bool decay);

// AdamW (decoupled decay, bias correction), one group per (ParamGroup, decay), every tensor shape.
class AdamW : public Optimizer {
 public:
  AdamW(const OptimConfig& cfg, std::vector<NamedParam> params);
  void step(double lr_scale) override;
  void zero_grad() override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  std::vector<GroupSummary> summary() const override;
  std::vector<AdamStepSize> adam_step_sizes(double lr_scale) const override;

 private:
  struct State {
    at::Tensor exp_avg, exp_avg_sq;
    at::Tensor step_t;  // float32 on the parameter's device: the fused kernel reads it
    int64_t step = 0;   // host copy: bias corrections without a device sync
  };
  struct Group {
    ParamGroup group;
    bool decay;
    double lr, weight_decay;
    std::vector<size_t> members;  // indices into params_
  };
  void step_group(const Group& g, double lr_scale);

  OptimConfig cfg_;
  std::vector<NamedParam> params_;
  std::vector<State> state_;
  std::vector<Group> groups_;
};

// Muon (Keller Jordan): Nesterov momentum, then Newton-Schulz orthogonalization, for Matrix
// params (2-D [out, in] or 3-D [experts, out, in], per slice); everything else goes to AdamW.
class Muon : public Optimizer {
 public:
  Muon(const OptimConfig& cfg, const std::vector<NamedParam>& params);
  void step(double lr_scale) override;
  void zero_grad() override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  std::vector<GroupSummary> summary() const override;
  std::vector<AdamStepSize> adam_step_sizes(double lr_scale) const override;

 private:
  OptimConfig cfg_;
  std::vector<NamedParam> matrices_;
  std::vector<at::Tensor> momentum_;
  std::vector<int64_t> steps_;
  std::unique_ptr<AdamW> adamw_;  // embeddings and norm scales
};

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg,
                                          const std::vector<NamedParam>& params);

// Quintic Newton-Schulz iteration (a, b, c = 3.4445, -4.7750, 2.0315) on the last two dims:
// returns an approximately semi-orthogonal matrix (singular values ~[0.7, 1.2]) of g's shape and
// dtype. Computes in bfloat16 on CUDA and float32 elsewhere.
at::Tensor newton_schulz(const at::Tensor& g, int64_t steps);

// Global L2 norm of all defined grads as a 0-dim tensor (no host sync). When max_norm > 0, grads
// are scaled in place by min(1, max_norm / (norm + 1e-6)), also without a host sync.
at::Tensor clip_grad_norm(const std::vector<NamedParam>& params, double max_norm);

// Printable table of summary() rows.
std::string format_summary(const std::vector<GroupSummary>& rows);

}  // namespace scalevec

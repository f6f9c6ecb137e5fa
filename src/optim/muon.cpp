#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "scalevec/optim.h"
#include "state_io.h"

namespace scalevec {

Muon::Muon(const OptimConfig& cfg, const std::vector<NamedParam>& params) : cfg_(cfg) {
  at::NoGradGuard no_grad;
  std::vector<NamedParam> rest;
  for (const auto& p : params) {
    if (p.group != ParamGroup::Matrix) {
      rest.push_back(p);
      continue;
    }
    if (!p.tensor.defined() || (p.tensor.dim() != 2 && p.tensor.dim() != 3))
      throw std::runtime_error("Muon: matrix parameter '" + p.name +
                               "' must be 2-D [out, in] or 3-D [experts, out, in]");
    matrices_.push_back(p);
    momentum_.push_back(at::zeros_like(p.tensor, at::MemoryFormat::Preserve));
    steps_.push_back(0);
  }
  adamw_ = std::make_unique<AdamW>(cfg_, std::move(rest));
}

void Muon::step(double lr_scale) {
  at::NoGradGuard no_grad;
  const double lr = cfg_.muon_lr * cfg_.lr_mult.matrix * lr_scale;
  const double mu = cfg_.muon_momentum;
  for (size_t i = 0; i < matrices_.size(); ++i) {
    auto& p = matrices_[i].tensor;
    const auto& grad = p.grad();
    if (!grad.defined()) continue;
    momentum_[i].lerp_(grad, 1.0 - mu);
    const auto nesterov = grad.lerp(momentum_[i], mu);
    const auto update = newton_schulz(nesterov, cfg_.muon_ns_steps);
    // RMS-matching factor of Keller Jordan's Muon: sqrt(max(1, out / in)) per [out, in] slice.
    const double rows = static_cast<double>(p.size(-2)), cols = static_cast<double>(p.size(-1));
    const double shape_scale = std::sqrt(std::max(1.0, rows / cols));
    const double wd = group_weight_decay(cfg_, ParamGroup::Matrix, matrices_[i].decay);
    if (wd != 0.0) p.mul_(1.0 - lr * wd);
    p.add_(update, -lr * shape_scale);
    steps_[i] += 1;
  }
  adamw_->step(lr_scale);
}

void Muon::zero_grad() {
  for (auto& p : matrices_) p.tensor.mutable_grad().reset();
  adamw_->zero_grad();
}

void Muon::save(torch::serialize::OutputArchive& ar) const {
  state_io::write_string(ar, "kind", "muon");
  state_io::write_int(ar, "count", static_cast<int64_t>(matrices_.size()));
  for (size_t i = 0; i < matrices_.size(); ++i) {
    state_io::write_string(ar, state_io::key("name", i), matrices_[i].name);
    state_io::write_int(ar, state_io::key("step", i), steps_[i]);
    ar.write(state_io::key("momentum", i), momentum_[i], /*is_buffer=*/true);
  }
  torch::serialize::OutputArchive nested;
  adamw_->save(nested);
  ar.write("adamw", nested);
}

void Muon::load(torch::serialize::InputArchive& ar) {
  at::NoGradGuard no_grad;
  state_io::check_header(ar, "muon", matrices_.size());
  std::vector<at::Tensor> momentum;
  std::vector<int64_t> steps;
  for (size_t i = 0; i < matrices_.size(); ++i) {
    state_io::check_name(ar, i, matrices_[i], "Muon");
    momentum.push_back(at::empty_like(momentum_[i]));
    state_io::read_into(ar, "momentum", i, matrices_[i], momentum.back(), "Muon");
    steps.push_back(state_io::read_int(ar, state_io::key("step", i), "Muon"));
  }
  torch::serialize::InputArchive nested;
  if (!ar.try_read("adamw", nested)) throw std::runtime_error("Muon state: no 'adamw' entry");
  adamw_->load(nested);  // throws before Muon's own state changes when the AdamW part mismatches
  momentum_ = std::move(momentum);
  steps_ = std::move(steps);
}

std::vector<AdamStepSize> Muon::adam_step_sizes(double lr_scale) const {
  return adamw_->adam_step_sizes(lr_scale);
}

std::vector<GroupSummary> Muon::summary() const {
  std::vector<GroupSummary> rows;
  for (bool decay : {true, false}) {
    GroupSummary r;
    r.name = decay ? "matrix" : "matrix/no_decay";
    r.algorithm = "muon";
    for (const auto& p : matrices_) {
      if (p.decay != decay) continue;
      r.tensors += 1;
      r.numel += p.tensor.numel();
    }
    r.lr = cfg_.muon_lr * cfg_.lr_mult.matrix;
    r.weight_decay = group_weight_decay(cfg_, ParamGroup::Matrix, decay);
    if (r.tensors > 0) rows.push_back(std::move(r));
  }
  for (auto& r : adamw_->summary()) rows.push_back(std::move(r));
  return rows;
}

}  // namespace scalevec

#include <cmath>
#include <stdexcept>
#include <tuple>

#include "scalevec/compat.h"
#include "scalevec/optim.h"
#include "state_io.h"

namespace scalevec {

namespace {

// Tensors of one group that share device and dtype: what foreach fast paths and the fused
// kernel need.
struct Bucket {
  at::Device device;
  at::ScalarType dtype;
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, step_ts;
  std::vector<at::Scalar> bc2_sqrt, neg_step_size;  // per tensor: step counts may differ
};

Bucket& bucket_for(std::vector<Bucket>& buckets, const at::Tensor& p) {
  for (auto& b : buckets)
    if (b.device == p.device() && b.dtype == p.scalar_type()) return b;
  buckets.push_back(Bucket{p.device(), p.scalar_type(), {}, {}, {}, {}, {}, {}, {}});
  return buckets.back();
}

}  // namespace

AdamW::AdamW(const OptimConfig& cfg, std::vector<NamedParam> params)
    : cfg_(cfg), params_(std::move(params)) {
  at::NoGradGuard no_grad;
  state_.reserve(params_.size());
  for (const auto& p : params_) {
    if (!p.tensor.defined())
      throw std::runtime_error("AdamW: parameter '" + p.name + "' is undefined");
    State s;
    s.exp_avg = at::zeros_like(p.tensor, at::MemoryFormat::Preserve);
    s.exp_avg_sq = at::zeros_like(p.tensor, at::MemoryFormat::Preserve);
    s.step_t = at::zeros({}, p.tensor.options().dtype(at::kFloat));
    state_.push_back(std::move(s));
  }
  // Fixed group order (role, then decay before no-decay) keeps summaries and logs stable.
  for (auto role :
       {ParamGroup::Matrix, ParamGroup::Embedding, ParamGroup::InputNorm, ParamGroup::OutputNorm}) {
    for (bool decay : {true, false}) {
      Group g{role,
              decay,
              cfg_.lr * group_lr_mult(cfg_, role),
              group_weight_decay(cfg_, role, decay),
              {}};
      for (size_t i = 0; i < params_.size(); ++i)
        if (params_[i].group == role && params_[i].decay == decay) g.members.push_back(i);
      if (!g.members.empty()) groups_.push_back(std::move(g));
    }
  }
}

void AdamW::step(double lr_scale) {
  at::NoGradGuard no_grad;
  for (const auto& g : groups_) step_group(g, lr_scale);
}

void AdamW::step_group(const Group& g, double lr_scale) {
  const double lr = g.lr * lr_scale;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  std::vector<Bucket> buckets;
  for (size_t i : g.members) {
    const auto& grad = params_[i].tensor.grad();
    if (!grad.defined()) continue;  // no grad this step: moments and step count stay as they are
    auto& s = state_[i];
    s.step += 1;
    auto& b = bucket_for(buckets, params_[i].tensor);
    b.params.push_back(params_[i].tensor);
    b.grads.push_back(grad);
    b.exp_avgs.push_back(s.exp_avg);
    b.exp_avg_sqs.push_back(s.exp_avg_sq);
    b.step_ts.push_back(s.step_t);
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(s.step));
    const double bc2 = 1.0 - std::pow(b2, static_cast<double>(s.step));
    b.bc2_sqrt.emplace_back(std::sqrt(bc2));
    b.neg_step_size.emplace_back(-lr / bc1);
  }
  for (auto& b : buckets) {
    // The fused kernel reads the already-incremented step (as torch.optim does).
    at::_foreach_add_(b.step_ts, 1.0);
    if (cfg_.fused && compat::fused_adamw_step(b.params, b.grads, b.exp_avgs, b.exp_avg_sqs,
                                               b.step_ts, lr, b1, b2, g.weight_decay, cfg_.eps))
      continue;
    // Same op sequence as torch.optim.AdamW(foreach=True).
    if (g.weight_decay != 0.0) at::_foreach_mul_(b.params, 1.0 - lr * g.weight_decay);
    at::_foreach_mul_(b.exp_avgs, b1);
    at::_foreach_add_(b.exp_avgs, b.grads, 1.0 - b1);
    at::_foreach_mul_(b.exp_avg_sqs, b2);
    at::_foreach_addcmul_(b.exp_avg_sqs, b.grads, b.grads, 1.0 - b2);
    auto denom = at::_foreach_sqrt(b.exp_avg_sqs);
    at::_foreach_div_(denom, b.bc2_sqrt);
    at::_foreach_add_(denom, cfg_.eps);
    at::_foreach_addcdiv_(b.params, b.exp_avgs, denom, b.neg_step_size);
  }
}

std::vector<AdamStepSize> AdamW::adam_step_sizes(double lr_scale) const {
  std::vector<AdamStepSize> out;
  at::NoGradGuard no_grad;
  for (const auto& g : groups_) {
    for (const size_t i : g.members) {
      const State& s = state_[i];
      if (s.step == 0) continue;
      const double t = static_cast<double>(s.step);
      const double bc1 = 1.0 - std::pow(cfg_.beta1, t);
      const double bc2 = 1.0 - std::pow(cfg_.beta2, t);
      // Same operation order as step_group's denominator.
      const at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)) + cfg_.eps;
      out.push_back({params_[i].tensor, denom.reciprocal() * (g.lr * lr_scale / bc1)});
    }
  }
  return out;
}

void AdamW::zero_grad() {
  for (auto& p : params_) p.tensor.mutable_grad().reset();
}

void AdamW::save(torch::serialize::OutputArchive& ar) const {
  state_io::write_string(ar, "kind", "adamw");
  state_io::write_int(ar, "count", static_cast<int64_t>(params_.size()));
  for (size_t i = 0; i < params_.size(); ++i) {
    state_io::write_string(ar, state_io::key("name", i), params_[i].name);
    state_io::write_int(ar, state_io::key("step", i), state_[i].step);
    ar.write(state_io::key("exp_avg", i), state_[i].exp_avg, /*is_buffer=*/true);
    ar.write(state_io::key("exp_avg_sq", i), state_[i].exp_avg_sq, /*is_buffer=*/true);
  }
}

void AdamW::load(torch::serialize::InputArchive& ar) {
  at::NoGradGuard no_grad;
  state_io::check_header(ar, "adamw", params_.size());
  // Validate everything before touching state, so a failed load leaves the optimizer intact.
  std::vector<State> loaded;
  for (size_t i = 0; i < params_.size(); ++i) {
    state_io::check_name(ar, i, params_[i], "AdamW");
    State s{at::empty_like(state_[i].exp_avg), at::empty_like(state_[i].exp_avg_sq),
            at::empty_like(state_[i].step_t), 0};
    state_io::read_into(ar, "exp_avg", i, params_[i], s.exp_avg, "AdamW");
    state_io::read_into(ar, "exp_avg_sq", i, params_[i], s.exp_avg_sq, "AdamW");
    s.step = state_io::read_int(ar, state_io::key("step", i), "AdamW");
    s.step_t.fill_(static_cast<double>(s.step));
    loaded.push_back(std::move(s));
  }
  state_ = std::move(loaded);
}

std::vector<GroupSummary> AdamW::summary() const {
  std::vector<GroupSummary> rows;
  for (const auto& g : groups_) {
    GroupSummary r;
    r.name = std::string(to_string(g.group)) + (g.decay ? "" : "/no_decay");
    r.algorithm = "adamw";
    r.tensors = static_cast<int64_t>(g.members.size());
    for (size_t i : g.members) r.numel += params_[i].tensor.numel();
    r.lr = g.lr;
    r.weight_decay = g.weight_decay;
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace scalevec

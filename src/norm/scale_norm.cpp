#include "scalevec/norm.h"
#include "scalevec/rms_norm_cuda.h"
#include "scalevec/tensor_util.h"

namespace scalevec {

at::Tensor rms_normalize_reference(const at::Tensor& x, double eps) {
  // Low-precision inputs accumulate the mean square in float32.
  const at::Tensor xf = at_least_float32(x);
  const at::Tensor inv = at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (xf * inv).to(x.scalar_type());
}

at::Tensor rms_normalize(const at::Tensor& x, double eps) {
  // CUDA float32/bfloat16: the fused kernels (forward and backward); else the ATen reference.
  if (fused_rms_norm_available(x)) return fused_rms_normalize(x, eps);
  return rms_normalize_reference(x, eps);
}

NormRole role_of(NormPosition position) {
  switch (position) {
    case NormPosition::PreAttn:
    case NormPosition::PreFfn:
    case NormPosition::Final:
      return NormRole::Input;
    case NormPosition::Qk:
    case NormPosition::BranchOut:
      return NormRole::Output;
  }
  return NormRole::Input;
}

namespace {

bool is_magdir(NormVariant v) {
  return v == NormVariant::MagDir || v == NormVariant::Unified;
}

bool relocates(NormVariant v) {
  return v == NormVariant::Relocated || v == NormVariant::Unified;
}

// auto: the paper's unified puts DNP on the FFN branches and DP on the attention projections.
PlacementForm resolved_form(NormPosition position, const NormOptions& opts) {
  if (opts.placement_form != PlacementForm::Auto) return opts.placement_form;
  return opts.variant == NormVariant::Unified && position == NormPosition::PreFfn
             ? PlacementForm::Dnp
             : PlacementForm::Dp;
}

int64_t magnitude_groups(const NormOptions& opts, int64_t dim, int64_t heads) {
  if (opts.magnitude == MagnitudeShape::Scalar || heads <= 1 || dim % heads != 0) return 1;
  return heads;
}

}  // namespace

ScaleNormImpl::ScaleNormImpl(NormPosition position, const NormOptions& opts, int64_t dim,
                             std::vector<NormBranch> branches, int64_t heads)
    : position_(position),
      role_(role_of(position)),
      opts_(opts),
      dim_(dim),
      branches_(std::move(branches)) {
  TORCH_CHECK(dim > 0, "norm at ", to_string(position), " needs dim > 0");
  const NormVariant v = opts.variant;
  const bool magdir = is_magdir(v);
  auto make = [&](const std::string& name, int64_t copies, int64_t d) {
    auto sv =
        register_module(name, ScaleVector(copies, d, opts.gamma_init, magdir,
                                          magnitude_groups(opts, d, heads), opts.magnitude_space));
    owned_.push_back(sv);
    return sv;
  };
  if (v == NormVariant::None) return;
  if (role_ == NormRole::Output || branches_.empty()) {
    make("scale", 1, dim);  // no linear map to branch over or relocate around
    return;
  }
  const bool per_branch_in = v == NormVariant::Branch || v == NormVariant::Unified;
  const bool moves = relocates(v);
  const bool has_in = !moves || opts.placement != Placement::Output;
  const bool has_out = moves && opts.placement != Placement::Input;
  const bool dnp = moves && resolved_form(position, opts) == PlacementForm::Dnp;
  for (const auto& br : branches_) dnp_.push_back(dnp && br.dnp_allowed);
  in_scales_.resize(branches_.size(), ScaleVector(nullptr));
  out_scales_.resize(branches_.size(), ScaleVector(nullptr));
  if (has_in && !per_branch_in) {
    // Experts of one stack can share the vector only when every branch has the same copies.
    auto shared = make("scale_in", 1, dim);
    for (auto& s : in_scales_) s = shared;
  }
  for (size_t b = 0; b < branches_.size(); ++b) {
    const auto& br = branches_[b];
    if (has_in && per_branch_in) in_scales_[b] = make("scale_in_" + br.name, br.copies, dim);
    if (has_out) out_scales_[b] = make("scale_out_" + br.name, br.copies, br.out_dim);
  }
}

at::Tensor ScaleNormImpl::normalize(const at::Tensor& x) const {
  return reference_only_ ? rms_normalize_reference(x, opts_.eps) : rms_normalize(x, opts_.eps);
}

at::Tensor ScaleNormImpl::forward(const at::Tensor& x) {
  at::Tensor n = normalize(x);
  if (owned_.empty()) return n;
  TORCH_CHECK(in_scales_.empty(), "norm at ", to_string(position_),
              " has branch scales: call project() instead of forward()");
  return n * owned_[0]->value();
}

at::Tensor ScaleNormImpl::input_scale(size_t b) const {
  if (branches_.empty() || in_scales_.empty())
    return owned_.empty() ? at::Tensor() : owned_[0]->value();
  TORCH_CHECK(b < branches_.size(), "branch index ", b, " out of range");
  return in_scales_[b] ? in_scales_[b]->value() : at::Tensor();
}

int64_t ScaleNormImpl::input_scale_id(size_t b) const {
  const ScaleVectorImpl* target = nullptr;
  if (branches_.empty() || in_scales_.empty()) {
    if (!owned_.empty()) target = owned_[0].get();
  } else {
    TORCH_CHECK(b < branches_.size(), "branch index ", b, " out of range");
    if (in_scales_[b]) target = in_scales_[b].get();
  }
  for (size_t i = 0; i < owned_.size(); ++i)
    if (owned_[i].get() == target) return static_cast<int64_t>(i);
  return -1;
}

at::Tensor ScaleNormImpl::output_scale(size_t b) const {
  TORCH_CHECK(branches_.empty() || b < branches_.size(), "branch index ", b, " out of range");
  return out_scales_.empty() || !out_scales_[b] ? at::Tensor() : out_scales_[b]->value();
}

at::Tensor ScaleNormImpl::scaled_weight(size_t b, const at::Tensor& weight) const {
  at::Tensor w = weight;
  const at::Tensor gi = input_scale(b);
  const at::Tensor go = output_scale(b);
  if (gi.defined()) w = w * (gi.dim() == 2 ? gi.unsqueeze(-2) : gi);
  if (go.defined() && !is_dnp(b)) w = w * go.unsqueeze(-1);
  return w;
}

at::Tensor ScaleNormImpl::after_matmul(size_t b, const at::Tensor& y, int64_t expert) const {
  if (!is_dnp(b)) return y;
  const at::Tensor z = normalize(y);
  at::Tensor go = output_scale(b);
  if (!go.defined()) return z;
  if (go.dim() == 2) go = expert >= 0 ? go[expert] : go.unsqueeze(-2);  // a stack's vectors
  return z * go;
}

at::Tensor ScaleNormImpl::project(const at::Tensor& n, size_t b, const at::Tensor& weight) const {
  if (opts_.apply == ScaleApply::Weight)
    return after_matmul(b, at::matmul(n, scaled_weight(b, weight).transpose(-1, -2)));
  TORCH_CHECK(weight.dim() == 2, "activation-side scaling supports 2-D weights only (norm at ",
              to_string(position_), ")");
  const at::Tensor gi = input_scale(b);
  const at::Tensor go = output_scale(b);
  const at::Tensor y = at::matmul(gi.defined() ? n * gi : n, weight.t());
  if (is_dnp(b)) return after_matmul(b, y);
  return go.defined() ? y * go : y;
}

std::vector<at::Tensor> ScaleNormImpl::project_all(const at::Tensor& n,
                                                   const std::vector<at::Tensor>& weights) const {
  std::vector<at::Tensor> out;
  bool fusable = opts_.apply == ScaleApply::Weight && weights.size() > 1;
  for (const auto& w : weights) fusable = fusable && w.dim() == 2;
  if (!fusable) {
    for (size_t b = 0; b < weights.size(); ++b) out.push_back(project(n, b, weights[b]));
    return out;
  }
  std::vector<at::Tensor> scaled;
  std::vector<int64_t> sizes;
  for (size_t b = 0; b < weights.size(); ++b) {
    scaled.push_back(scaled_weight(b, weights[b]));
    sizes.push_back(weights[b].size(0));
  }
  // One GEMM over the concatenated weights: the normalization and the read of n happen once.
  const at::Tensor y = at::matmul(n, at::cat(scaled, 0).t());
  out = y.split_with_sizes(sizes, -1);
  for (size_t b = 0; b < out.size(); ++b) out[b] = after_matmul(b, out[b]);
  return out;
}

std::string ScaleNormImpl::parts() const {
  if (owned_.empty()) return "-";
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : " ") + part; };
  const NormVariant v = opts_.variant;
  if (!branches_.empty() && (v == NormVariant::Branch || v == NormVariant::Unified)) add("HG");
  if (!branches_.empty() && relocates(v)) {
    const char* sides = opts_.placement == Placement::Both    ? ""
                        : opts_.placement == Placement::Input ? "(in)"
                                                              : "(out)";
    std::string dnp, dp;
    for (size_t b = 0; b < branches_.size(); ++b) {
      std::string& list = is_dnp(b) ? dnp : dp;
      list += (list.empty() ? "" : ",") + branches_[b].name;
    }
    if (!dnp.empty()) add("DNP" + std::string(sides) + "[" + dnp + "]");
    if (!dp.empty()) add("DP" + std::string(sides) + "[" + dp + "]");
  }
  if (is_magdir(v)) {
    add(opts_.magnitude_space == MagnitudeSpace::Exp ? "ER" : "OR");
    if (opts_.magnitude == MagnitudeShape::PerHead) out += "(per_head)";
  }
  return out.empty() ? "plain" : out;
}

void ScaleNormImpl::collect(const std::string& prefix, std::vector<NamedParam>& out) const {
  for (const auto& child : named_children()) {
    auto sv = std::dynamic_pointer_cast<ScaleVectorImpl>(child.value());
    if (sv) sv->collect(prefix + "." + child.key(), role_, opts_, out);
  }
}

int64_t ScaleNormImpl::scale_numel() const {
  int64_t n = 0;
  for (const auto& sv : owned_) n += sv->numel();
  return n;
}

at::Tensor ScaleNormImpl::scale_values() const {
  if (owned_.empty()) return {};
  std::vector<at::Tensor> flat;
  for (const auto& sv : owned_) flat.push_back(sv->value().detach().reshape({-1}));
  return at::cat(flat);
}

}  // namespace scalevec

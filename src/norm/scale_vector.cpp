#include <cmath>

#include "scalevec/norm.h"

namespace scalevec {

ScaleVectorImpl::ScaleVectorImpl(int64_t copies, int64_t dim, double init, bool magdir,
                                 int64_t groups, MagnitudeSpace space)
    : magdir_(magdir), groups_(groups), space_(space) {
  TORCH_CHECK(dim > 0 && copies > 0, "scale vector needs positive dims, got copies=", copies,
              " dim=", dim);
  TORCH_CHECK(groups >= 1 && dim % groups == 0, "scale vector dim ", dim, " is not divisible into ",
              groups, " magnitude groups");
  std::vector<int64_t> shape =
      copies > 1 ? std::vector<int64_t>{copies, dim} : std::vector<int64_t>{dim};
  if (!magdir_) {
    gamma_ = register_parameter("gamma", at::full(shape, init, at::kFloat));
    return;
  }
  // beta = init and v = 1 make gamma = init * sqrt(d_g) / ||1_{d_g}|| = init exactly.
  std::vector<int64_t> mshape = shape;
  mshape.back() = groups;
  if (space_ == MagnitudeSpace::Exp) {
    TORCH_CHECK(init > 0, "exp-space magnitude needs gamma_init > 0, got ", init);
    magnitude_ = register_parameter("log_magnitude", at::full(mshape, std::log(init), at::kFloat));
  } else {
    magnitude_ = register_parameter("magnitude", at::full(mshape, init, at::kFloat));
  }
  direction_ = register_parameter("direction", at::ones(shape, at::kFloat));
}

at::Tensor ScaleVectorImpl::value() const {
  if (!magdir_) return gamma_;
  const int64_t dim = direction_.size(-1);
  const int64_t group_dim = dim / groups_;
  std::vector<int64_t> grouped(direction_.sizes().begin(), direction_.sizes().end());
  grouped.back() = groups_;
  grouped.push_back(group_dim);
  const at::Tensor v = direction_.reshape(grouped);
  const at::Tensor unit = v / v.norm(2, /*dim=*/{-1}, /*keepdim=*/true);
  const at::Tensor beta = space_ == MagnitudeSpace::Exp ? magnitude_.exp() : magnitude_;
  const at::Tensor g = beta.unsqueeze(-1) * std::sqrt(static_cast<double>(group_dim)) * unit;
  return g.reshape(direction_.sizes());
}

int64_t ScaleVectorImpl::numel() const {
  return magdir_ ? magnitude_.numel() + direction_.numel() : gamma_.numel();
}

void ScaleVectorImpl::collect(const std::string& prefix, NormRole role, const NormOptions& opts,
                              std::vector<NamedParam>& out) const {
  const ParamGroup group = role == NormRole::Input ? ParamGroup::InputNorm : ParamGroup::OutputNorm;
  if (!magdir_) {
    out.push_back({prefix + ".gamma", gamma_, group, true});
    return;
  }
  const auto d = opts.magdir_decay;
  // ER decays s toward 0, i.e. beta toward 1.
  const char* magnitude_name = space_ == MagnitudeSpace::Exp ? ".log_magnitude" : ".magnitude";
  out.push_back({prefix + magnitude_name, magnitude_, group,
                 d == MagDirDecay::Magnitude || d == MagDirDecay::Both});
  out.push_back({prefix + ".direction", direction_, group,
                 d == MagDirDecay::Direction || d == MagDirDecay::Both});
}

}  // namespace scalevec

// Scale-vector counts from options alone; mirrors the ScaleNormImpl constructor (tests compare).
#include "scalevec/norm.h"

namespace scalevec {
namespace {

int64_t vector_numel(const NormOptions& opts, int64_t copies, int64_t dim, int64_t heads) {
  const bool magdir = opts.variant == NormVariant::MagDir || opts.variant == NormVariant::Unified;
  if (!magdir) return copies * dim;
  const bool grouped = opts.magnitude == MagnitudeShape::PerHead && heads > 1 && dim % heads == 0;
  return copies * dim + copies * (grouped ? heads : 1);  // direction + magnitude
}

}  // namespace

int64_t scale_numel_of(NormPosition position, const NormOptions& opts, int64_t dim,
                       const std::vector<NormBranch>& branches, int64_t heads) {
  const NormVariant v = opts.variant;
  if (v == NormVariant::None) return 0;
  if (role_of(position) == NormRole::Output || branches.empty())
    return vector_numel(opts, 1, dim, heads);
  const bool per_branch_in = v == NormVariant::Branch || v == NormVariant::Unified;
  const bool relocates = v == NormVariant::Relocated || v == NormVariant::Unified;
  const bool has_in = !relocates || opts.placement != Placement::Output;
  const bool has_out = relocates && opts.placement != Placement::Input;
  int64_t n = has_in && !per_branch_in ? vector_numel(opts, 1, dim, heads) : 0;
  for (const auto& br : branches) {
    if (has_in && per_branch_in) n += vector_numel(opts, br.copies, dim, heads);
    if (has_out) n += vector_numel(opts, br.copies, br.out_dim, heads);
  }
  return n;
}

}  // namespace scalevec

#include "scalevec/compat.h"
#include "scalevec/optim.h"

namespace scalevec {

at::Tensor clip_grad_norm(const std::vector<NamedParam>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
  if (grads.empty()) return at::zeros({}, at::kFloat);

  // Accumulate in float64 when any grad is float64 (tests, references), else float32.
  auto acc = at::kFloat;
  for (const auto& g : grads)
    if (g.scalar_type() == at::kDouble) acc = at::kDouble;
  const auto device = grads.front().device();

  std::vector<at::Tensor> norms;
  std::vector<bool> done(grads.size(), false);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (done[i]) continue;
    // One multi-tensor norm per (device, dtype); reduced precision is upcast first.
    std::vector<at::Tensor> same;
    for (size_t j = i; j < grads.size(); ++j) {
      if (done[j] || grads[j].device() != grads[i].device() ||
          grads[j].scalar_type() != grads[i].scalar_type())
        continue;
      done[j] = true;
      const auto t = grads[j].scalar_type();
      same.push_back(t == at::kHalf || t == at::kBFloat16 ? grads[j].to(at::kFloat) : grads[j]);
    }
    for (auto& n : at::_foreach_norm(same)) norms.push_back(n.to(device, acc));
  }
  auto total = at::stack(norms).norm();
  if (max_norm <= 0.0) return total;

  // min(1, max_norm / (norm + 1e-6)) stays on the device: no host sync in the training loop.
  const auto coef = at::reciprocal(total + 1e-6).mul_(max_norm).clamp_max_(1.0);
  compat::foreach_mul_tensor_(grads, coef);
  return total;
}

}  // namespace scalevec

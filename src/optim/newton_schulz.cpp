#include "scalevec/optim.h"

namespace scalevec {

at::Tensor newton_schulz(const at::Tensor& g, int64_t steps) {
  TORCH_CHECK(g.dim() == 2 || g.dim() == 3, "newton_schulz: expected a 2-D or 3-D tensor, got ",
              g.sizes());
  // Quintic coefficients from Keller Jordan's Muon: steepest slope at 0, not exact convergence.
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  // bf16 is accurate enough for an approximate orthogonalization and ~2x faster on tensor cores.
  auto x = g.to(g.is_cuda() ? at::kBFloat16 : at::kFloat);
  if (x.dim() == 2) x = x.unsqueeze(0);  // one batched code path for dense and expert matrices
  // Iterate on the wide orientation: X X^T is then the smaller Gram matrix.
  const bool tall = g.size(-2) > g.size(-1);
  if (tall) x = x.transpose(-2, -1);
  // Frobenius normalization puts every singular value in [0, 1], inside the basin of the map.
  x = x / (x.norm(2, {-2, -1}, /*keepdim=*/true) + 1e-7);
  for (int64_t i = 0; i < steps; ++i) {
    const auto gram = at::bmm(x, x.transpose(-2, -1));
    const auto poly = at::baddbmm(gram, gram, gram, /*beta=*/b, /*alpha=*/c);  // b A + c A^2
    x = at::baddbmm(x, poly, x, /*beta=*/a, /*alpha=*/1.0);                    // a X + B X
  }
  if (tall) x = x.transpose(-2, -1);
  if (g.dim() == 2) x = x.squeeze(0);
  return x.to(g.scalar_type()).contiguous();
}

}  // namespace scalevec

#include "scalevec/hessian.h"

#include <torch/csrc/autograd/autograd.h>

#include <cmath>

namespace scalevec {

HessianVectorProduct::HessianVectorProduct(const at::Tensor& loss, TensorList params)
    : params_(std::move(params)) {
  // create_graph: the gradient itself is differentiable, so H v = d<g, v>/dparams.
  grads_ = torch::autograd::grad({loss}, params_, /*grad_outputs=*/{}, /*retain_graph=*/true,
                                 /*create_graph=*/true, /*allow_unused=*/true);
}

TensorList HessianVectorProduct::apply(const TensorList& v) const {
  TORCH_CHECK(v.size() == params_.size(), "HVP: vector has ", v.size(), " parts, parameters ",
              params_.size());
  at::Tensor gv;
  TensorList reached, reached_params;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!grads_[i].defined() || !grads_[i].requires_grad()) continue;
    const at::Tensor term = (grads_[i] * v[i].to(grads_[i].scalar_type())).sum();
    gv = gv.defined() ? gv + term : term;
  }
  TensorList out(params_.size());
  if (!gv.defined()) {
    for (size_t i = 0; i < params_.size(); ++i) out[i] = at::zeros_like(params_[i]);
    return out;
  }
  // retain_graph: the same gradient graph serves every iteration.
  const TensorList hv = torch::autograd::grad({gv}, params_, {}, /*retain_graph=*/true,
                                              /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < params_.size(); ++i)
    out[i] = hv[i].defined() ? hv[i].detach() : at::zeros_like(params_[i]);
  return out;
}

double dot(const TensorList& a, const TensorList& b) {
  TORCH_CHECK(a.size() == b.size(), "dot: lists of ", a.size(), " and ", b.size(), " tensors");
  if (a.empty()) return 0;
  // Accumulated on the tensors' device: one host sync per dot, not one per tensor.
  at::Tensor s = at::zeros({}, a[0].options().dtype(at::kDouble));
  for (size_t i = 0; i < a.size(); ++i) s += (a[i].to(at::kDouble) * b[i].to(at::kDouble)).sum();
  return s.item<double>();
}

double norm(const TensorList& a) {
  return std::sqrt(dot(a, a));
}

TensorList scaled(const TensorList& a, double s) {
  TensorList out;
  out.reserve(a.size());
  for (const auto& t : a) out.push_back(t * s);
  return out;
}

TensorList multiplied(const TensorList& a, const TensorList& d) {
  TORCH_CHECK(a.size() == d.size(), "multiplied: lists of ", a.size(), " and ", d.size());
  TensorList out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i)
    out.push_back(d[i].defined() ? a[i] * d[i] : at::zeros_like(a[i]));
  return out;
}

TensorList random_like(const TensorList& like, at::Generator& gen, bool rademacher) {
  TensorList out;
  out.reserve(like.size());
  for (const auto& t : like) {
    // Drawn on the CPU from `gen` alone: the same vectors on every device and rank.
    const auto cpu = at::TensorOptions().dtype(at::kFloat);
    at::Tensor r = rademacher ? at::randint(2, t.sizes(), gen, cpu).mul_(2).sub_(1)
                              : at::randn(t.sizes(), gen, cpu);
    out.push_back(r.to(t.device(), t.scalar_type()));
  }
  return out;
}

EigenEstimate power_iteration(const LinearOperator& op, TensorList v0, int64_t max_iters,
                              double tol) {
  EigenEstimate est;
  double n = norm(v0);
  TORCH_CHECK(n > 0, "power iteration: zero start vector");
  TensorList v = scaled(v0, 1.0 / n);
  double previous = NAN;
  for (int64_t k = 0; k < max_iters; ++k) {
    const TensorList w = op(v);
    const double value = dot(v, w);  // Rayleigh quotient, |v| = 1
    est.value = value;
    est.iterations = k + 1;
    if (!std::isnan(previous)) {
      est.rel_change = std::abs(value - previous) / std::max(std::abs(value), 1e-30);
      if (est.rel_change <= tol) {
        est.converged = true;
        break;
      }
    }
    previous = value;
    n = norm(w);
    if (!(n > 0) || !std::isfinite(n)) break;  // zero operator on this vector, or a NaN
    v = scaled(w, 1.0 / n);
  }
  return est;
}

namespace {

at::Tensor flatten(const TensorList& v) {
  std::vector<at::Tensor> parts;
  parts.reserve(v.size());
  for (const auto& t : v) parts.push_back(t.reshape({-1}));
  return at::cat(parts);
}

TensorList unflatten(const at::Tensor& flat, const TensorList& like) {
  TensorList out;
  out.reserve(like.size());
  int64_t offset = 0;
  for (const auto& t : like) {
    out.push_back(flat.slice(0, offset, offset + t.numel()).view(t.sizes()));
    offset += t.numel();
  }
  return out;
}

}  // namespace

SpectrumEdge lanczos_extremes(const LinearOperator& op, const TensorList& v0, int64_t max_iters,
                              double tol) {
  SpectrumEdge edge;
  // The Krylov basis as rows of one matrix: reorthogonalization is two matrix-vector products.
  at::Tensor q = flatten(v0);
  const double n0 = q.to(at::kDouble).norm().item<double>();
  TORCH_CHECK(n0 > 0, "Lanczos: zero start vector");
  at::Tensor basis = at::empty({std::max<int64_t>(max_iters, 1), q.numel()}, q.options());
  basis[0].copy_(q / n0);
  std::vector<double> alpha, beta;
  for (int64_t j = 0; j < max_iters; ++j) {
    const at::Tensor qj = basis[j];
    at::Tensor w = flatten(op(unflatten(qj, v0)));
    alpha.push_back(at::dot(qj.to(at::kDouble), w.to(at::kDouble)).item<double>());
    // Full reorthogonalization, two passes (classical Gram-Schmidt twice): without it converged
    // Ritz values reappear as spurious copies.
    const at::Tensor q_sofar = basis.slice(0, 0, j + 1);
    for (int pass = 0; pass < 2; ++pass) w = w - at::mv(q_sofar.t(), at::mv(q_sofar, w));
    const double b = w.to(at::kDouble).norm().item<double>();
    // Ritz values: eigenvalues of the tridiagonal T_j (alpha on the diagonal, beta beside it).
    const int64_t m = j + 1;
    at::Tensor t = at::zeros({m, m}, at::kDouble);
    for (int64_t i = 0; i < m; ++i) {
      t[i][i] = alpha[i];
      if (i + 1 < m) t[i][i + 1] = t[i + 1][i] = beta[i];
    }
    const auto [theta, s] = at::linalg_eigh(t);
    edge.top = theta[m - 1].item<double>();
    edge.bottom = theta[0].item<double>();
    edge.iterations = m;
    // |A y - theta y| = beta_j |s_{j, top}| for the Ritz vector y = Q s.
    edge.rel_residual =
        b * std::abs(s[m - 1][m - 1].item<double>()) / std::max(std::abs(edge.top), 1e-30);
    if (!std::isfinite(b)) break;
    if (edge.rel_residual <= tol || b <= 1e-12 * std::max(std::abs(edge.top), 1e-30)) {
      edge.converged = true;  // converged, or an invariant subspace: T_j is exact
      break;
    }
    if (j + 1 == max_iters) break;
    beta.push_back(b);
    basis[j + 1].copy_(w / b);
  }
  return edge;
}

TraceEstimate hutchinson_trace(const LinearOperator& op, const TensorList& like, int64_t samples,
                               at::Generator& gen) {
  TraceEstimate est;
  if (samples <= 0) return est;
  double sum = 0, sum_sq = 0;
  for (int64_t s = 0; s < samples; ++s) {
    const TensorList z = random_like(like, gen, /*rademacher=*/true);
    const double q = dot(z, op(z));
    sum += q;
    sum_sq += q * q;
  }
  est.samples = samples;
  est.mean = sum / samples;
  if (samples > 1) {
    const double var = std::max(0.0, (sum_sq - samples * est.mean * est.mean) / (samples - 1));
    est.std_error = std::sqrt(var / samples);
  }
  return est;
}

}  // namespace scalevec

// Curvature of a loss without forming its Hessian: Hessian-vector products by double backward,
// Lanczos (and power iteration) for extreme eigenvalues, Hutchinson's trace estimate. Vectors are
// lists of tensors shaped like the parameters they perturb.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace scalevec {

using TensorList = std::vector<at::Tensor>;
// A symmetric linear map on parameter-shaped vectors (H, or D^1/2 H D^1/2).
using LinearOperator = std::function<TensorList(const TensorList&)>;

// H v for the Hessian of `loss` with respect to `params`. The gradient graph is built once
// (create_graph) and reused by every apply(); parameters the loss does not reach give zeros.
// Never touches params' .grad.
class HessianVectorProduct {
 public:
  HessianVectorProduct(const at::Tensor& loss, TensorList params);
  TensorList apply(const TensorList& v) const;
  const TensorList& gradient() const { return grads_; }  // dL/dparams (part of the graph)

 private:
  TensorList params_, grads_;
};

// Sum over the list of <a_i, b_i>, accumulated in double.
double dot(const TensorList& a, const TensorList& b);
double norm(const TensorList& a);
TensorList scaled(const TensorList& a, double s);
// Elementwise product with a same-shaped list; an undefined entry of `d` means zero.
TensorList multiplied(const TensorList& a, const TensorList& d);
// Standard normal (or Rademacher +-1) entries shaped like `like`, from `gen` only.
TensorList random_like(const TensorList& like, at::Generator& gen, bool rademacher = false);

struct EigenEstimate {
  double value = NAN;       // Rayleigh quotient v^T A v at the last iterate (|v| = 1)
  int64_t iterations = 0;   // operator applications
  double rel_change = NAN;  // |value_k - value_{k-1}| / |value_k| at the last iteration
  bool converged = false;   // rel_change <= tol before max_iters
};

// Power iteration from v0: converges to the eigenvalue of largest magnitude (the top one when
// the spectrum's largest |lambda| is positive, as for the loss Hessians probed here).
EigenEstimate power_iteration(const LinearOperator& op, TensorList v0, int64_t max_iters,
                              double tol);

struct SpectrumEdge {
  double top = NAN;           // the largest eigenvalue (Ritz value)
  double bottom = NAN;        // the smallest Ritz value (less converged than `top`)
  int64_t iterations = 0;     // operator applications
  double rel_residual = NAN;  // |A y - top y| / |top| for the top Ritz vector y
  bool converged = false;     // rel_residual <= tol before max_iters
};

// Both ends of a symmetric operator's spectrum by Lanczos with full reorthogonalization (keeps
// max_iters vectors). Unlike power iteration it finds the largest eigenvalue even where
// negative curvature is larger in magnitude (small-batch Hessians) or the top is barely
// separated from the bulk. Stops when the top Ritz pair's residual is <= tol |top|.
SpectrumEdge lanczos_extremes(const LinearOperator& op, const TensorList& v0, int64_t max_iters,
                              double tol);

struct TraceEstimate {
  double mean = NAN;
  double std_error = NAN;  // sample std / sqrt(samples); NaN for one sample
  int64_t samples = 0;
};

// tr(A) ~ mean over Rademacher z of z^T A z (exact for a diagonal A).
TraceEstimate hutchinson_trace(const LinearOperator& op, const TensorList& like, int64_t samples,
                               at::Generator& gen);

}  // namespace scalevec

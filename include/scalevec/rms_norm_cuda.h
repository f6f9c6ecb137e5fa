// Fused CUDA RMS normalization n(x) = x / sqrt(mean(x^2) + eps) over the last dim, with its own
// backward (src/norm/rms_norm_kernels.cu). Same semantics as the reference: float32 math and
// accumulation, result in x's dtype.
//
// Autocast: the fused op is a custom autograd Function, not a dispatcher op, so autocast never
// casts its input: it runs in the dtype it is given (under bf16 autocast the fp32 residual stream
// stays fp32 here, exactly as the reference's pow/mean/rsqrt do; the following matmul autocasts).
// Double backward is not supported (the backward is a kernel, not differentiable ops).
#pragma once

#include <ATen/ATen.h>

namespace scalevec {

// The unfused ATen implementation (any device and dtype; differentiable to any order).
at::Tensor rms_normalize_reference(const at::Tensor& x, double eps);

#ifdef SCALEVEC_WITH_CUDA
// True for CUDA tensors of float32 or bfloat16 with a non-empty last dim.
bool fused_rms_norm_available(const at::Tensor& x);
// The fused path; falls back to the reference for inputs where fused_rms_norm_available is false.
at::Tensor fused_rms_normalize(const at::Tensor& x, double eps);
#else
inline bool fused_rms_norm_available(const at::Tensor&) {
  return false;
}
inline at::Tensor fused_rms_normalize(const at::Tensor& x, double eps) {
  return rms_normalize_reference(x, eps);
}
#endif

}  // namespace scalevec

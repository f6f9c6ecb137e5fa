// Fused scale-free RMS normalization kernels (pure CUDA, no LibTorch headers).
//
// Rows of a contiguous [N, C] tensor, each normalized over its C elements:
//   forward:  rstd = 1 / sqrt(mean(x^2) + eps),  y = x * rstd
//   backward: y_hat = x * rstd,  dx = rstd * (dy - y_hat * mean(dy * y_hat))
// x, y, dy and dx share the element type T (float or __nv_bfloat16); rstd is float [N];
// all arithmetic is float32. One warp per row for small rows, one block per row otherwise;
// 16-byte vector accesses when C is a multiple of 16 / sizeof(T) and every pointer is 16-byte
// aligned. The launchers return the launch error (cudaSuccess when N == 0 or C == 0).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace scalevec::kernels {

template <typename T>
cudaError_t launch_rms_norm_forward(const T* x, T* y, float* rstd, int64_t rows, int64_t cols,
                                    float eps, cudaStream_t stream);

template <typename T>
cudaError_t launch_rms_norm_backward(const T* x, const T* dy, const float* rstd, T* dx,
                                     int64_t rows, int64_t cols, cudaStream_t stream);

// Explicitly instantiated in rms_norm_kernels.cu for T = float and T = __nv_bfloat16.

}  // namespace scalevec::kernels

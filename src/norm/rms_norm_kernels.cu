// Fused scale-free RMS normalization, forward and backward (see rms_norm_kernels.h).
//
// Layout: blockDim = (32, warps). In warp mode each warp owns one row (rows_per_block = warps);
// in block mode the whole block owns one row. Each row is read twice (reduction pass, then the
// elementwise pass); the second read of a row (at most a few KB) is served from L1/L2.
// No fast-math: the reductions and the 1/sqrt use IEEE float operations.
#include "rms_norm_kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace scalevec::kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 1024;
// A row whose vector count fits in this many vectors per lane goes to one warp.
constexpr int kMaxVecsPerLane = 8;
// Warps per block in warp mode (rows per block).
constexpr int kWarpsPerBlockWarpMode = 4;

__device__ __forceinline__ float to_float(float v) {
  return v;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// VEC consecutive elements moved as one access (16 bytes when VEC * sizeof(T) == 16).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ Pack<T, VEC> load_pack(const T* row, int64_t vec_index) {
  return reinterpret_cast<const Pack<T, VEC>*>(row)[vec_index];
}

template <typename T, int VEC>
__device__ __forceinline__ void store_pack(T* row, int64_t vec_index, const Pack<T, VEC>& p) {
  reinterpret_cast<Pack<T, VEC>*>(row)[vec_index] = p;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the threads that share a row. Warp mode: the warp. Block mode: the whole block
// (every thread of the block must call it; `scratch` holds at least 32 floats).
template <bool kWarpPerRow>
__device__ __forceinline__ float row_sum(float v, float* scratch) {
  v = warp_sum(v);
  if constexpr (kWarpPerRow) {
    return v;
  } else {
    const int warps = static_cast<int>(blockDim.y);
    if (threadIdx.x == 0) scratch[threadIdx.y] = v;
    __syncthreads();
    float total = 0.f;
    if (threadIdx.y == 0) {
      total = threadIdx.x < static_cast<unsigned>(warps) ? scratch[threadIdx.x] : 0.f;
      total = warp_sum(total);
      if (threadIdx.x == 0) scratch[kWarp] = total;
    }
    __syncthreads();
    total = scratch[kWarp];
    // The scratch is reused by a later call of this block: nobody may overwrite it before all
    // threads have read the result.
    __syncthreads();
    return total;
  }
}

// Row index, the thread's rank among the row's threads, and how many threads share the row.
template <bool kWarpPerRow>
struct RowSlot {
  int64_t row;
  int rank;
  int stride;
  __device__ __forceinline__ RowSlot() {
    if constexpr (kWarpPerRow) {
      row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
      rank = static_cast<int>(threadIdx.x);
      stride = kWarp;
    } else {
      row = static_cast<int64_t>(blockIdx.x);
      rank = static_cast<int>(threadIdx.y * kWarp + threadIdx.x);
      stride = static_cast<int>(blockDim.x * blockDim.y);
    }
  }
};

template <typename T, int VEC, bool kWarpPerRow>
__global__ void rms_norm_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                        float* __restrict__ rstd, int64_t rows, int64_t cols,
                                        float eps) {
  __shared__ float scratch[kWarp + 1];
  const RowSlot<kWarpPerRow> slot;
  // Warp mode: a whole warp leaves together (the row index is uniform across the warp), so the
  // full-mask shuffles below never see an exited lane. Block mode: the row is uniform per block.
  if (slot.row >= rows) return;
  const int64_t nvec = cols / VEC;
  const T* xr = x + slot.row * cols;
  T* yr = y + slot.row * cols;

  float sq = 0.f;
  for (int64_t i = slot.rank; i < nvec; i += slot.stride) {
    const Pack<T, VEC> p = load_pack<T, VEC>(xr, i);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float v = to_float(p.v[k]);
      sq += v * v;
    }
  }
  const float total = row_sum<kWarpPerRow>(sq, scratch);
  const float r = 1.0f / sqrtf(total / static_cast<float>(cols) + eps);
  if (slot.rank == 0) rstd[slot.row] = r;

  for (int64_t i = slot.rank; i < nvec; i += slot.stride) {
    const Pack<T, VEC> p = load_pack<T, VEC>(xr, i);
    Pack<T, VEC> o;
#pragma unroll
    for (int k = 0; k < VEC; ++k) o.v[k] = from_float<T>(to_float(p.v[k]) * r);
    store_pack<T, VEC>(yr, i, o);
  }
}

template <typename T, int VEC, bool kWarpPerRow>
__global__ void rms_norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                                         const float* __restrict__ rstd, T* __restrict__ dx,
                                         int64_t rows, int64_t cols) {
  __shared__ float scratch[kWarp + 1];
  const RowSlot<kWarpPerRow> slot;
  if (slot.row >= rows) return;
  const int64_t nvec = cols / VEC;
  const T* xr = x + slot.row * cols;
  const T* dyr = dy + slot.row * cols;
  T* dxr = dx + slot.row * cols;
  const float r = rstd[slot.row];

  // sum(dy * y_hat) with y_hat = x * rstd, recomputed per element as in the forward.
  float dot = 0.f;
  for (int64_t i = slot.rank; i < nvec; i += slot.stride) {
    const Pack<T, VEC> px = load_pack<T, VEC>(xr, i);
    const Pack<T, VEC> pg = load_pack<T, VEC>(dyr, i);
#pragma unroll
    for (int k = 0; k < VEC; ++k) dot += to_float(pg.v[k]) * (to_float(px.v[k]) * r);
  }
  const float mean_dot = row_sum<kWarpPerRow>(dot, scratch) / static_cast<float>(cols);

  for (int64_t i = slot.rank; i < nvec; i += slot.stride) {
    const Pack<T, VEC> px = load_pack<T, VEC>(xr, i);
    const Pack<T, VEC> pg = load_pack<T, VEC>(dyr, i);
    Pack<T, VEC> o;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float y_hat = to_float(px.v[k]) * r;
      o.v[k] = from_float<T>(r * (to_float(pg.v[k]) - y_hat * mean_dot));
    }
    store_pack<T, VEC>(dxr, i, o);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

int round_up_warp(int64_t n) {
  return static_cast<int>((n + kWarp - 1) / kWarp * kWarp);
}

// Launch geometry for rows of `nvec` vectors: warp mode or block mode.
struct Geometry {
  bool warp_per_row;
  dim3 grid;
  dim3 block;
};

Geometry plan(int64_t rows, int64_t nvec) {
  Geometry g{};
  if (nvec <= static_cast<int64_t>(kWarp) * kMaxVecsPerLane) {
    g.warp_per_row = true;
    g.block = dim3(kWarp, kWarpsPerBlockWarpMode, 1);
    g.grid = dim3(
        static_cast<unsigned>((rows + kWarpsPerBlockWarpMode - 1) / kWarpsPerBlockWarpMode), 1, 1);
  } else {
    // About four vectors per thread, between 2 and 32 warps.
    int threads = round_up_warp((nvec + 3) / 4);
    if (threads < 2 * kWarp) threads = 2 * kWarp;
    if (threads > kMaxThreads) threads = kMaxThreads;
    g.warp_per_row = false;
    g.block = dim3(kWarp, static_cast<unsigned>(threads / kWarp), 1);
    g.grid = dim3(static_cast<unsigned>(rows), 1, 1);
  }
  return g;
}

constexpr int64_t kMaxGrid = 2147483647;  // gridDim.x limit

template <typename T, int VEC>
cudaError_t forward_with(const T* x, T* y, float* rstd, int64_t rows, int64_t cols, float eps,
                         cudaStream_t stream) {
  const Geometry g = plan(rows, cols / VEC);
  if (g.grid.x == 0 || static_cast<int64_t>(g.grid.x) > kMaxGrid)
    return cudaErrorInvalidConfiguration;
  if (g.warp_per_row) {
    rms_norm_forward_kernel<T, VEC, true>
        <<<g.grid, g.block, 0, stream>>>(x, y, rstd, rows, cols, eps);
  } else {
    rms_norm_forward_kernel<T, VEC, false>
        <<<g.grid, g.block, 0, stream>>>(x, y, rstd, rows, cols, eps);
  }
  return cudaGetLastError();
}

template <typename T, int VEC>
cudaError_t backward_with(const T* x, const T* dy, const float* rstd, T* dx, int64_t rows,
                          int64_t cols, cudaStream_t stream) {
  const Geometry g = plan(rows, cols / VEC);
  if (g.grid.x == 0 || static_cast<int64_t>(g.grid.x) > kMaxGrid)
    return cudaErrorInvalidConfiguration;
  if (g.warp_per_row) {
    rms_norm_backward_kernel<T, VEC, true>
        <<<g.grid, g.block, 0, stream>>>(x, dy, rstd, dx, rows, cols);
  } else {
    rms_norm_backward_kernel<T, VEC, false>
        <<<g.grid, g.block, 0, stream>>>(x, dy, rstd, dx, rows, cols);
  }
  return cudaGetLastError();
}

}  // namespace

template <typename T>
cudaError_t launch_rms_norm_forward(const T* x, T* y, float* rstd, int64_t rows, int64_t cols,
                                    float eps, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  if (rows > kMaxGrid) return cudaErrorInvalidValue;
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));
  if (cols % kVec == 0 && aligned16(x) && aligned16(y)) {
    return forward_with<T, kVec>(x, y, rstd, rows, cols, eps, stream);
  }
  return forward_with<T, 1>(x, y, rstd, rows, cols, eps, stream);
}

template <typename T>
cudaError_t launch_rms_norm_backward(const T* x, const T* dy, const float* rstd, T* dx,
                                     int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  if (rows > kMaxGrid) return cudaErrorInvalidValue;
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));
  if (cols % kVec == 0 && aligned16(x) && aligned16(dy) && aligned16(dx)) {
    return backward_with<T, kVec>(x, dy, rstd, dx, rows, cols, stream);
  }
  return backward_with<T, 1>(x, dy, rstd, dx, rows, cols, stream);
}

template cudaError_t launch_rms_norm_forward<float>(const float*, float*, float*, int64_t, int64_t,
                                                    float, cudaStream_t);
template cudaError_t launch_rms_norm_forward<__nv_bfloat16>(const __nv_bfloat16*, __nv_bfloat16*,
                                                            float*, int64_t, int64_t, float,
                                                            cudaStream_t);
template cudaError_t launch_rms_norm_backward<float>(const float*, const float*, const float*,
                                                     float*, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_rms_norm_backward<__nv_bfloat16>(const __nv_bfloat16*,
                                                             const __nv_bfloat16*, const float*,
                                                             __nv_bfloat16*, int64_t, int64_t,
                                                             cudaStream_t);

}  // namespace scalevec::kernels

// Every LibTorch version difference (1.13 vs 2.x) lives here, and only here.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#include <optional>
#include <string>

#define SCALEVEC_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace scalevec::compat {

// True when LibTorch ships at::scaled_dot_product_attention (2.0+; flash kernel on CUDA).
constexpr bool kHasFusedSdpa = SCALEVEC_TORCH_AT_LEAST(2, 0);
// True when LibTorch ships the fused multi-tensor AdamW kernel (2.0+, CUDA).
constexpr bool kHasFusedAdamW = SCALEVEC_TORCH_AT_LEAST(2, 0);

// Causal attention on [B, H, T, D] tensors through the fused kernel. Only call when kHasFusedSdpa.
at::Tensor fused_causal_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// bf16 autocast on CUDA for the lifetime of the guard (no-op when disabled).
class CudaAutocastGuard {
 public:
  explicit CudaAutocastGuard(bool enabled);
  ~CudaAutocastGuard();
  CudaAutocastGuard(const CudaAutocastGuard&) = delete;
  CudaAutocastGuard& operator=(const CudaAutocastGuard&) = delete;

 private:
  bool enabled_;
  bool previous_ = false;
};

// One fused AdamW step over a parameter list (CUDA, 2.x). Returns false when unavailable,
// in which case the caller runs its foreach path.
bool fused_adamw_step(std::vector<at::Tensor>& params, std::vector<at::Tensor>& grads,
                      std::vector<at::Tensor>& exp_avgs, std::vector<at::Tensor>& exp_avg_sqs,
                      std::vector<at::Tensor>& state_steps, double lr, double beta1, double beta2,
                      double weight_decay, double eps);

// tensors[i] *= scale (a 0-dim tensor) in place without a host sync: one multi-tensor kernel
// on 2.1+ (the Tensor overload of _foreach_mul_), a loop of mul_ before.
void foreach_mul_tensor_(std::vector<at::Tensor>& tensors, const at::Tensor& scale);

// A fixed-seed generator on a device, independent of the global one.
at::Generator make_generator(uint64_t seed, const at::Device& device);

// Uses `threads` cores for the CPU math: LibTorch's intra-op pool, or, when LibTorch's BLAS is
// OpenBLAS with its own pthread pool (Debian), OpenBLAS's pool with LibTorch's at one thread, so
// that the two pools never oversubscribe the cores.
void set_cpu_threads(int threads);

// The vector ISA LibTorch's CPU kernels dispatch to ("AVX2", "AVX512", "DEFAULT"), and the
// kernel family OpenBLAS picked for this CPU ("Zen", "Haswell"; "none" without OpenBLAS): together
// with the LibTorch build they decide the bits of a CPU result.
std::string cpu_capability();
std::string blas_core();

// Bytes of the current CUDA peak allocation (0 on CPU builds).
int64_t cuda_peak_memory_bytes();
void cuda_reset_peak_memory();
bool cuda_available();
int cuda_device_count();
std::string cuda_device_name();
// "name, N GiB" of CUDA device i.
std::string cuda_device_summary(int device);
// The CUDA runtime version the build targets ("12.4"), "none" in CPU builds.
std::string cuda_runtime_version();
// cuDNN loaded at run time ("9.1.0"), "none" without CUDA/cuDNN.
std::string cudnn_version();

// Times device work: CUDA events on a CUDA device (no host sync until stop), a clock on CPU.
class DeviceTimer {
 public:
  explicit DeviceTimer(const at::Device& device);
  ~DeviceTimer();
  void start();
  double stop_ms();  // synchronizes on the stop event

 private:
  struct Impl;
  Impl* impl_;
};
void cuda_synchronize();

}  // namespace scalevec::compat

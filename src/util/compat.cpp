#include "scalevec/compat.h"

#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <dlfcn.h>

#include <chrono>

#ifdef SCALEVEC_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace scalevec::compat {

at::Tensor fused_causal_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if SCALEVEC_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/true);
#else
  TORCH_CHECK(false, "fused scaled_dot_product_attention needs LibTorch >= 2.0");
#endif
}

CudaAutocastGuard::CudaAutocastGuard(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
#if SCALEVEC_TORCH_AT_LEAST(2, 4)
  previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
  previous_ = at::autocast::is_enabled();
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(true);
#endif
}

CudaAutocastGuard::~CudaAutocastGuard() {
  if (!enabled_) return;
#if SCALEVEC_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, previous_);
#else
  at::autocast::set_enabled(previous_);
#endif
  // Cached bf16 weight casts must not outlive the region (they would pin stale copies).
  at::autocast::clear_cache();
}

bool fused_adamw_step(std::vector<at::Tensor>& params, std::vector<at::Tensor>& grads,
                      std::vector<at::Tensor>& exp_avgs, std::vector<at::Tensor>& exp_avg_sqs,
                      std::vector<at::Tensor>& state_steps, double lr, double beta1, double beta2,
                      double weight_decay, double eps) {
#if SCALEVEC_TORCH_AT_LEAST(2, 0)
  if (params.empty() || !params[0].is_cuda()) return false;
  std::vector<at::Tensor> max_exp_avg_sqs;
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1,
                    beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
  return true;
#else
  return false;
#endif
}

void foreach_mul_tensor_(std::vector<at::Tensor>& tensors, const at::Tensor& scale) {
#if SCALEVEC_TORCH_AT_LEAST(2, 1)
  bool same_device = true;
  for (const auto& t : tensors) same_device = same_device && t.device() == scale.device();
  if (same_device) {
    at::_foreach_mul_(tensors, scale);
    return;
  }
#endif
  for (auto& t : tensors) t.mul_(scale.to(t.device()));
}

at::Generator make_generator(uint64_t seed, const at::Device& device) {
  at::Generator gen;
#ifdef SCALEVEC_WITH_CUDA
  if (device.is_cuda())
    gen = at::cuda::detail::createCUDAGenerator(device.index());
  else
#endif
    gen = at::detail::createCPUGenerator();
  gen.set_current_seed(seed);
  return gen;
}

int64_t cuda_peak_memory_bytes() {
#ifdef SCALEVEC_WITH_CUDA
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  return stats.allocated_bytes[0].peak;  // aggregate over pools
#else
  return 0;
#endif
}

void cuda_reset_peak_memory() {
#ifdef SCALEVEC_WITH_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
#endif
}

bool cuda_available() {
#ifdef SCALEVEC_WITH_CUDA
  return at::cuda::is_available();
#else
  return false;
#endif
}

void set_cpu_threads(int threads) {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    // Two pools of `threads` spinning on `threads` cores (LibTorch's OpenMP and OpenBLAS's
    // pthreads) take turns instead of working: tiny.yaml on 2 cores ran 518 ms/step with 2 + 2,
    // 257 with 1 + 2 (docs/performance.md). The matmuls, where the time goes, get the cores.
    fn(threads);
    at::set_num_threads(1);
  } else {
    at::set_num_threads(threads);
  }
}

std::string cpu_capability() {
  // at::native::get_cpu_capability is not exported by every LibTorch; show_config always says it.
  const std::string config = at::show_config();
  const std::string key = "CPU capability usage: ";
  const auto pos = config.find(key);
  if (pos == std::string::npos) return "unknown";
  const auto begin = pos + key.size();
  return config.substr(begin, config.find_first_of("\r\n", begin) - begin);
}

std::string blas_core() {
  using CoreName = char* (*)();
  if (auto fn = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename")))
    return fn();
  return "none";
}

int cuda_device_count() {
#ifdef SCALEVEC_WITH_CUDA
  return at::cuda::is_available() ? static_cast<int>(at::cuda::device_count()) : 0;
#else
  return 0;
#endif
}

std::string cuda_device_name() {
#ifdef SCALEVEC_WITH_CUDA
  if (at::cuda::is_available()) return at::cuda::getCurrentDeviceProperties()->name;
#endif
  return "cpu";
}

std::string cuda_device_summary(int device) {
#ifdef SCALEVEC_WITH_CUDA
  const auto* p = at::cuda::getDeviceProperties(device);
  return std::string(p->name) + ", " +
         std::to_string(static_cast<int64_t>(p->totalGlobalMem >> 30)) + " GiB";
#else
  (void)device;
  return "none";
#endif
}

std::string cuda_runtime_version() {
#if defined(SCALEVEC_WITH_CUDA) && defined(CUDART_VERSION)
  return std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
#else
  return "none";
#endif
}

std::string cudnn_version() {
#ifdef SCALEVEC_WITH_CUDA
  try {
    if (!at::detail::getCUDAHooks().hasCuDNN()) return "none";
    const long v = at::detail::getCUDAHooks().versionCuDNN();
    // cuDNN >= 9 encodes MAJOR*10000 + MINOR*100 + PATCH, earlier MAJOR*1000 + MINOR*100 + PATCH.
    const long major = v >= 90000 ? v / 10000 : v / 1000;
    const long minor = v >= 90000 ? v % 10000 / 100 : v % 1000 / 100;
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
  } catch (const std::exception&) {
    return "unknown";
  }
#else
  return "none";
#endif
}

struct DeviceTimer::Impl {
  bool cuda = false;
  std::chrono::steady_clock::time_point t0;
#ifdef SCALEVEC_WITH_CUDA
  at::cuda::CUDAEvent begin{cudaEventDefault}, end{cudaEventDefault};
#endif
};

DeviceTimer::DeviceTimer(const at::Device& device) : impl_(new Impl) {
  impl_->cuda = device.is_cuda();
}
DeviceTimer::~DeviceTimer() {
  delete impl_;
}

void DeviceTimer::start() {
#ifdef SCALEVEC_WITH_CUDA
  if (impl_->cuda) {
    impl_->begin.record();
    return;
  }
#endif
  impl_->t0 = std::chrono::steady_clock::now();
}

double DeviceTimer::stop_ms() {
#ifdef SCALEVEC_WITH_CUDA
  if (impl_->cuda) {
    impl_->end.record();
    impl_->end.synchronize();
    return impl_->begin.elapsed_time(impl_->end);
  }
#endif
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - impl_->t0)
      .count();
}

void cuda_synchronize() {
#ifdef SCALEVEC_WITH_CUDA
  if (at::cuda::is_available()) c10::cuda::device_synchronize();
#endif
}

}  // namespace scalevec::compat

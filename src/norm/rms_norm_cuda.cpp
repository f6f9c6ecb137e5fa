// The fused CUDA RMS normalization as an autograd Function (CUDA builds only; compiles to nothing
// otherwise). Kernels: rms_norm_kernels.cu.
#ifdef SCALEVEC_WITH_CUDA

#include "scalevec/rms_norm_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <limits>

#include "rms_norm_kernels.h"

namespace scalevec {
namespace {

void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "scalevec fused RMS norm ", what,
              " failed: ", cudaGetErrorString(err));
}

// x is contiguous; rows = numel / cols.
void run_forward(const at::Tensor& x, at::Tensor& y, at::Tensor& rstd, int64_t rows, int64_t cols,
                 double eps) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(x.device().index()).stream();
  const float feps = static_cast<float>(eps);
  if (x.scalar_type() == at::kFloat) {
    check_cuda(
        kernels::launch_rms_norm_forward<float>(x.data_ptr<float>(), y.data_ptr<float>(),
                                                rstd.data_ptr<float>(), rows, cols, feps, stream),
        "forward");
  } else {
    TORCH_CHECK(x.scalar_type() == at::kBFloat16, "fused RMS norm: unsupported dtype ",
                x.scalar_type());
    check_cuda(kernels::launch_rms_norm_forward<__nv_bfloat16>(
                   reinterpret_cast<const __nv_bfloat16*>(x.data_ptr<at::BFloat16>()),
                   reinterpret_cast<__nv_bfloat16*>(y.data_ptr<at::BFloat16>()),
                   rstd.data_ptr<float>(), rows, cols, feps, stream),
               "forward");
  }
}

void run_backward(const at::Tensor& x, const at::Tensor& dy, const at::Tensor& rstd, at::Tensor& dx,
                  int64_t rows, int64_t cols) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(x.device().index()).stream();
  if (x.scalar_type() == at::kFloat) {
    check_cuda(kernels::launch_rms_norm_backward<float>(x.data_ptr<float>(), dy.data_ptr<float>(),
                                                        rstd.data_ptr<float>(),
                                                        dx.data_ptr<float>(), rows, cols, stream),
               "backward");
  } else {
    TORCH_CHECK(x.scalar_type() == at::kBFloat16, "fused RMS norm: unsupported dtype ",
                x.scalar_type());
    check_cuda(
        kernels::launch_rms_norm_backward<__nv_bfloat16>(
            reinterpret_cast<const __nv_bfloat16*>(x.data_ptr<at::BFloat16>()),
            reinterpret_cast<const __nv_bfloat16*>(dy.data_ptr<at::BFloat16>()),
            rstd.data_ptr<float>(), reinterpret_cast<__nv_bfloat16*>(dx.data_ptr<at::BFloat16>()),
            rows, cols, stream),
        "backward");
  }
}

// Autograd runs forward with grad mode off and never applies autocast to a custom Function, so
// the kernels see the input dtype as given.
struct FusedRmsNorm : public torch::autograd::Function<FusedRmsNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            double eps) {
    const at::Tensor xc = x.contiguous();
    const int64_t cols = xc.size(-1);
    const int64_t rows = cols == 0 ? 0 : xc.numel() / cols;
    const c10::cuda::CUDAGuard guard(xc.device());
    at::Tensor y = at::empty(xc.sizes(), xc.options());
    at::Tensor rstd = at::empty({rows}, xc.options().dtype(at::kFloat));
    run_forward(xc, y, rstd, rows, cols, eps);
    ctx->save_for_backward({xc, rstd});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& rstd = saved[1];
    const int64_t cols = x.size(-1);
    const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
    const c10::cuda::CUDAGuard guard(x.device());
    // Autograd materializes an unused output's gradient as zeros; dy may arrive non-contiguous
    // or (in mixed code) in another dtype.
    const at::Tensor dy = grads[0].to(x.scalar_type()).contiguous();
    at::Tensor dx = at::empty(x.sizes(), x.options());
    run_backward(x, dy, rstd, dx, rows, cols);
    return {dx, at::Tensor()};
  }
};

}  // namespace

bool fused_rms_norm_available(const at::Tensor& x) {
  if (!x.defined() || !x.is_cuda() || x.dim() < 1) return false;
  const auto s = x.scalar_type();
  if (s != at::kFloat && s != at::kBFloat16) return false;
  const int64_t cols = x.size(-1);
  return cols > 0 && x.numel() / cols <= std::numeric_limits<int32_t>::max();
}

at::Tensor fused_rms_normalize(const at::Tensor& x, double eps) {
  if (!fused_rms_norm_available(x)) return rms_normalize_reference(x, eps);
  return FusedRmsNorm::apply(x, eps);
}

}  // namespace scalevec

#endif  // SCALEVEC_WITH_CUDA

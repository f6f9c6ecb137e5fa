// Fused CUDA RMS normalization against the float64 reference: forward values and gradients
// (of sum(y * probe) w.r.t. x) for float32 and bfloat16, vectorized and scalar row widths,
// warp-per-row and block-per-row shapes, a 3-D and a non-contiguous input, zero rows.
// Skips on CPU builds and on machines without a CUDA device.
#include <gtest/gtest.h>

#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

#include "scalevec/compat.h"
#include "scalevec/rms_norm_cuda.h"

using namespace scalevec;

namespace {

constexpr double kEps = 1e-6;

// Why the CUDA tests cannot run here, or "" when they can.
std::string cuda_skip_reason() {
#ifdef SCALEVEC_WITH_CUDA
  return compat::cuda_available() ? "" : "CUDA build, but no GPU visible to this process";
#else
  return "built without CUDA (CPU LibTorch)";
#endif
}
bool have_cuda() {
  return cuda_skip_reason().empty();
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor a64 = a.to(at::kCPU, at::kDouble);
  const at::Tensor b64 = b.to(at::kCPU, at::kDouble);
  const double denom = b64.norm().item<double>();
  return (a64 - b64).norm().item<double>() / (denom > 0 ? denom : 1.0);
}

double tolerance(at::ScalarType dtype) {
  return dtype == at::kBFloat16 ? 1e-2 : 1e-5;
}

// y and dx (gradient of sum(y * probe)) from the fused path on `x` and from the float64
// reference on the same (already rounded) values.
struct Results {
  at::Tensor y, dx, y_ref, dx_ref;
};

Results run_both(const at::Tensor& x_in, const at::Tensor& probe64) {
  at::Tensor x = x_in.detach().requires_grad_(true);
  at::Tensor y = fused_rms_normalize(x, kEps);
  const at::Tensor probe = probe64.to(y.scalar_type());
  at::Tensor dx = torch::autograd::grad({(y * probe).sum()}, {x})[0];

  at::Tensor x64 = x_in.detach().to(at::kDouble).requires_grad_(true);
  at::Tensor y64 = rms_normalize_reference(x64, kEps);
  // The fused backward sees the probe rounded to y's dtype: use the same probe here.
  at::Tensor dx64 = torch::autograd::grad({(y64 * probe.to(at::kDouble)).sum()}, {x64})[0];
  return {y.detach(), dx, y64.detach(), dx64};
}

void check_shape(const std::vector<int64_t>& shape, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
  // Offset from zero so rows have a non-trivial mean; never all zeros.
  const at::Tensor x = (at::randn(shape, opts.dtype(at::kFloat)) * 2.0 + 0.5).to(dtype);
  const at::Tensor probe = at::randn(shape, opts.dtype(at::kDouble));
  const Results r = run_both(x, probe);
  ASSERT_EQ(r.y.scalar_type(), dtype);
  ASSERT_EQ(r.dx.scalar_type(), dtype);
  ASSERT_EQ(r.y.sizes(), x.sizes());
  ASSERT_EQ(r.dx.sizes(), x.sizes());
  EXPECT_LT(rel_err(r.y, r.y_ref), tolerance(dtype)) << "forward " << x.sizes() << " " << dtype;
  EXPECT_LT(rel_err(r.dx, r.dx_ref), tolerance(dtype)) << "backward " << x.sizes() << " " << dtype;
}

}  // namespace

TEST(RmsNormCuda, AvailabilityMatchesBuildAndDevice) {
  const at::Tensor cpu = at::randn({4, 8});
  EXPECT_FALSE(fused_rms_norm_available(cpu));
  if (!have_cuda()) GTEST_SKIP() << cuda_skip_reason();
  EXPECT_TRUE(fused_rms_norm_available(cpu.cuda()));
  EXPECT_TRUE(fused_rms_norm_available(cpu.cuda().to(at::kBFloat16)));
  EXPECT_FALSE(fused_rms_norm_available(cpu.cuda().to(at::kHalf)));
  EXPECT_FALSE(fused_rms_norm_available(cpu.cuda().to(at::kDouble)));
}

TEST(RmsNormCuda, MatchesFloat64Reference2D) {
  if (!have_cuda()) GTEST_SKIP() << cuda_skip_reason();
  at::manual_seed(1234);
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    for (const int64_t c : {64, 768, 1000, 4096}) {
      for (const int64_t n : {1, 7, 300}) check_shape({n, c}, dtype);
    }
  }
}

TEST(RmsNormCuda, MatchesFloat64Reference3DAndOddWidths) {
  if (!have_cuda()) GTEST_SKIP() << cuda_skip_reason();
  at::manual_seed(99);
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    check_shape({3, 17, 768}, dtype);
    check_shape({2, 5, 1000}, dtype);
    check_shape({4, 3}, dtype);      // scalar path, tiny rows
    check_shape({5, 2050}, dtype);   // scalar path (not a multiple of 8), block per row
    check_shape({2, 12288}, dtype);  // vectorized, wide rows, many vectors per thread
  }
}

TEST(RmsNormCuda, NonContiguousInput) {
  if (!have_cuda()) GTEST_SKIP() << cuda_skip_reason();
  at::manual_seed(7);
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
    const at::Tensor x = (at::randn({768, 33}, opts) + 0.25).to(dtype).t();  // [33, 768], strided
    ASSERT_FALSE(x.is_contiguous());
    const Results r = run_both(x, at::randn({33, 768}, opts.dtype(at::kDouble)));
    EXPECT_LT(rel_err(r.y, r.y_ref), tolerance(dtype));
    EXPECT_LT(rel_err(r.dx, r.dx_ref), tolerance(dtype));
  }
}

TEST(RmsNormCuda, ZeroRowsGiveZerosNotNaN) {
  if (!have_cuda()) GTEST_SKIP() << cuda_skip_reason();
  at::manual_seed(5);
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
    at::Tensor x = (at::randn({6, 768}, opts) + 1.0);
    x.select(0, 1).zero_();
    x.select(0, 4).zero_();
    x = x.to(dtype);
    const Results r = run_both(x, at::randn({6, 768}, opts.dtype(at::kDouble)));
    EXPECT_TRUE(at::isfinite(r.y).all().item<bool>());
    EXPECT_TRUE(at::isfinite(r.dx).all().item<bool>());
    EXPECT_EQ(r.y[1].abs().max().item<float>(), 0.0f);
    EXPECT_EQ(r.y[4].abs().max().item<float>(), 0.0f);
    EXPECT_LT(rel_err(r.y, r.y_ref), tolerance(dtype));
    EXPECT_LT(rel_err(r.dx, r.dx_ref), tolerance(dtype));
  }
  // A fully zero input as well.
  const at::Tensor z = at::zeros({3, 64}, at::TensorOptions().device(at::kCUDA));
  const at::Tensor yz = fused_rms_normalize(z, kEps);
  EXPECT_TRUE(at::isfinite(yz).all().item<bool>());
  EXPECT_EQ(yz.abs().max().item<float>(), 0.0f);
}

TEST(RmsNormCuda, EmptyBatchAndUnsupportedDtypeFallBack) {
  if (!have_cuda()) GTEST_SKIP() << cuda_skip_reason();
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const at::Tensor empty = at::randn({0, 768}, opts);
  EXPECT_EQ(fused_rms_normalize(empty, kEps).sizes(), empty.sizes());
  const at::Tensor h = at::randn({4, 64}, opts).to(at::kHalf);
  const at::Tensor yh = fused_rms_normalize(h, kEps);
  EXPECT_EQ(yh.scalar_type(), at::kHalf);
  EXPECT_LT(rel_err(yh, rms_normalize_reference(h.to(at::kDouble), kEps)), 1e-2);
}

// Small tensor helpers shared by the model code.
#pragma once

#include <ATen/ATen.h>

namespace scalevec {

// bf16/fp16 -> float32; float32 and float64 unchanged (float64 tests stay exact).
inline at::Tensor at_least_float32(const at::Tensor& t) {
  const auto s = t.scalar_type();
  return s == at::kBFloat16 || s == at::kHalf ? t.to(at::kFloat) : t;
}

}  // namespace scalevec

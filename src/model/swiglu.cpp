#include "scalevec/ffn.h"

namespace scalevec {

SwiGluImpl::SwiGluImpl(const ModelConfig& cfg) {
  const int64_t C = cfg.d_model, F = cfg.ffn_dim();
  norm = register_module("norm",
                         ScaleNorm(NormPosition::PreFfn, cfg.norm.pre_ffn, C,
                                   std::vector<NormBranch>{{"gate", F}, {"up", F}}, cfg.n_heads));
  w_gate = register_parameter("w_gate", at::empty({F, C}));
  w_up = register_parameter("w_up", at::empty({F, C}));
  w_down = register_parameter("w_down", at::empty({C, F}));
}

at::Tensor SwiGluImpl::forward(const at::Tensor& x) {
  const auto gu = norm->project_all(norm->normalize(x), {w_gate, w_up});
  return at::matmul(at::silu(gu[0]) * gu[1], w_down.t());
}

}  // namespace scalevec

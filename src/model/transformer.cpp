#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "scalevec/compat.h"
#include "scalevec/model.h"
#include "scalevec/tensor_util.h"

namespace scalevec {

BlockImpl::BlockImpl(const ModelConfig& cfg) {
  attn = register_module("attn", Attention(cfg));
  if (cfg.moe.enabled)
    moe = register_module("moe", Moe(cfg));
  else
    mlp = register_module("mlp", SwiGlu(cfg));
  if (cfg.branch_out_norm) {
    attn_out_norm = register_module(
        "attn_out_norm", ScaleNorm(NormPosition::BranchOut, cfg.norm.branch_out, cfg.d_model));
    ffn_out_norm = register_module(
        "ffn_out_norm", ScaleNorm(NormPosition::BranchOut, cfg.norm.branch_out, cfg.d_model));
  }
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const Rope& rope) {
  at::Tensor a = attn->forward(x, rope);
  if (attn_out_norm) a = attn_out_norm->forward(a);
  const at::Tensor h = x + a;
  at::Tensor f = moe ? moe->forward(h) : mlp->forward(h);
  if (ffn_out_norm) f = ffn_out_norm->forward(f);
  return h + f;
}

at::Tensor BlockImpl::aux_loss() const {
  return moe ? moe->aux_loss() : at::Tensor();
}

TransformerImpl::TransformerImpl(const ModelConfig& cfg, uint64_t seed) : cfg_(cfg) {
  const int64_t V = cfg.vocab_size, C = cfg.d_model;
  tok_emb = register_parameter("tok_emb", at::empty({V, C}));
  if (!cfg.tie_embeddings) lm_head = register_parameter("lm_head", at::empty({V, C}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layers; ++i) blocks->push_back(Block(cfg));
  final_norm = register_module(
      "final_norm", ScaleNorm(NormPosition::Final, cfg.norm.final, C,
                              std::vector<NormBranch>{{"lm_head", V, 1, false}}, cfg.n_heads));
  rope_ = Rope::build(cfg.max_seq_len, cfg.head_dim(), cfg.rope_theta);
  rope_.cos = register_buffer("rope_cos", rope_.cos);
  rope_.sin = register_buffer("rope_sin", rope_.sin);
  init_weights(seed);
}

void TransformerImpl::init_weights(uint64_t seed) {
  // Explicit generator: the model depends on `seed` alone, not on the global RNG's history.
  at::Generator gen = compat::make_generator(seed, at::Device(at::kCPU));
  const double std = cfg_.init_std;
  const double out_std = cfg_.scaled_residual_init ? std / std::sqrt(2.0 * cfg_.n_layers) : std;
  at::NoGradGuard no_grad;
  auto normal = [&](at::Tensor& t, double s) { t.normal_(0.0, s, gen); };
  normal(tok_emb, std);
  if (lm_head.defined()) normal(lm_head, std);
  for (const auto& m : *blocks) {
    auto* b = m->as<BlockImpl>();
    normal(b->attn->wq, std);
    normal(b->attn->wk, std);
    normal(b->attn->wv, std);
    normal(b->attn->wo, out_std);  // residual-writing maps shrink with depth (GPT-2 init)
    if (b->mlp) {
      normal(b->mlp->w_gate, std);
      normal(b->mlp->w_up, std);
      normal(b->mlp->w_down, out_std);
    } else {
      normal(b->moe->w_router, std);
      normal(b->moe->w_gate, std);
      normal(b->moe->w_up, std);
      normal(b->moe->w_down, out_std);
      if (b->moe->s_gate.defined()) {
        normal(b->moe->s_gate, std);
        normal(b->moe->s_up, std);
        normal(b->moe->s_down, out_std);
      }
    }
  }
}

at::Tensor TransformerImpl::forward(const at::Tensor& tokens) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [batch, seq], got ", tokens.sizes());
  TORCH_CHECK(tokens.size(1) <= cfg_.max_seq_len, "sequence length ", tokens.size(1),
              " exceeds model.max_seq_len = ", cfg_.max_seq_len);
  at::Tensor x = at::embedding(tok_emb, tokens);
  for (const auto& m : *blocks) x = m->as<BlockImpl>()->forward(x, rope_);
  const at::Tensor head = lm_head.defined() ? lm_head : tok_emb;
  return final_norm->project(final_norm->normalize(x), 0, head);
}

LossOutput TransformerImpl::loss(const at::Tensor& tokens, const at::Tensor& targets) {
  const at::Tensor logits = forward(tokens);
  TORCH_CHECK(targets.sizes() == tokens.sizes(), "targets ", targets.sizes(), " must match tokens ",
              tokens.sizes());
  LossOutput out;
  // Cross-entropy in float32 even under bf16 autocast.
  out.ce = at::cross_entropy_loss(at_least_float32(logits.reshape({-1, logits.size(-1)})),
                                  targets.reshape({-1}));
  out.aux = at::zeros({}, out.ce.options());
  for (const auto& m : *blocks) {
    const at::Tensor a = m->as<BlockImpl>()->aux_loss();
    if (a.defined()) out.aux = out.aux + a;
  }
  out.loss = out.ce + out.aux;
  return out;
}

std::vector<std::pair<std::string, ScaleNorm>> TransformerImpl::norms() const {
  std::vector<std::pair<std::string, ScaleNorm>> out;
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    auto impl = std::dynamic_pointer_cast<ScaleNormImpl>(item.value());
    if (impl) out.emplace_back(item.key(), ScaleNorm(impl));
  }
  return out;
}

std::vector<NormReaders> TransformerImpl::norm_readers() const {
  // Which tensors read which norm is the model's wiring (attention.cpp, swiglu.cpp, moe.cpp).
  std::unordered_map<const ScaleNormImpl*, std::vector<at::Tensor>> readers;
  for (const auto& m : *blocks) {
    const auto* b = m->as<BlockImpl>();
    readers[b->attn->norm.get()] = {b->attn->wq, b->attn->wk, b->attn->wv};
    if (b->mlp) readers[b->mlp->norm.get()] = {b->mlp->w_gate, b->mlp->w_up};
    if (b->moe) {
      auto& r = readers[b->moe->norm.get()];
      r = {b->moe->w_router, b->moe->w_gate, b->moe->w_up};
      if (b->moe->s_gate.defined()) r.insert(r.end(), {b->moe->s_gate, b->moe->s_up});
    }
  }
  readers[final_norm.get()] = {lm_head.defined() ? lm_head : tok_emb};
  std::vector<NormReaders> out;
  for (const auto& [name, norm] : norms()) {
    auto it = readers.find(norm.get());
    std::vector<at::Tensor> weights = it == readers.end() ? std::vector<at::Tensor>{} : it->second;
    TORCH_CHECK(weights.size() == norm->branches().size(), "norm ", name, " has ",
                norm->branches().size(), " branches but ", weights.size(), " reader weights");
    out.push_back({name, norm, std::move(weights)});
  }
  return out;
}

void TransformerImpl::set_reference_kernels(bool on) {
  for (const auto& item : norms()) item.second.ptr()->set_reference_only(on);
  for (const auto& m : *blocks) m->as<BlockImpl>()->attn->set_math_only(on);
}

std::vector<NamedParam> TransformerImpl::named_params() const {
  std::vector<NamedParam> tagged;
  for (const auto& [name, norm] : norms()) norm->collect(name, tagged);
  std::unordered_map<const void*, size_t> index;
  for (size_t i = 0; i < tagged.size(); ++i) index[tagged[i].tensor.unsafeGetTensorImpl()] = i;
  std::vector<NamedParam> out;
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    const auto* key = item.value().unsafeGetTensorImpl();
    auto it = index.find(key);
    if (it != index.end()) {
      NamedParam p = tagged[it->second];
      p.name = item.key();
      out.push_back(p);
      continue;
    }
    const bool is_embedding =
        item.value().is_same(tok_emb) || (lm_head.defined() && item.value().is_same(lm_head));
    out.push_back({item.key(), item.value(),
                   is_embedding ? ParamGroup::Embedding : ParamGroup::Matrix, true});
  }
  return out;
}

int64_t TransformerImpl::num_params() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

int64_t TransformerImpl::active_matmul_params() const {
  int64_t n = 0;
  for (const auto& p : named_params()) {
    if (p.tensor.is_same(tok_emb) && !cfg_.tie_embeddings) continue;  // a lookup, not a matmul
    n += p.tensor.numel();
  }
  if (cfg_.moe.enabled) {
    // Only top_k of num_experts expert stacks see a token.
    const int64_t E = cfg_.moe.num_experts;
    for (const auto& m : *blocks) {
      const auto* b = m->as<BlockImpl>();
      const int64_t expert = b->moe->w_gate.numel() + b->moe->w_up.numel() + b->moe->w_down.numel();
      n -= expert - expert / E * cfg_.moe.top_k;
    }
  }
  return n;
}

double TransformerImpl::flops_per_token(int64_t seq_len) const {
  return 6.0 * static_cast<double>(active_matmul_params()) +
         12.0 * static_cast<double>(cfg_.n_layers * cfg_.d_model * seq_len);
}

}  // namespace scalevec

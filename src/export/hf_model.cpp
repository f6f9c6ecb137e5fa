// scalevec <-> transformers: architecture choice, tensor names, config.json (docs/export.md).
#include <ATen/ATen.h>

#include <map>
#include <set>
#include <sstream>

#include "scalevec/hf_format.h"
#include "scalevec/json.h"

namespace scalevec {

namespace {

bool is_moe(HfArch a) {
  return a == HfArch::Mixtral || a == HfArch::Qwen3Moe;
}
bool has_qk_norm(HfArch a) {
  return a == HfArch::Qwen3 || a == HfArch::Qwen3Moe;
}

std::vector<NormPosition> used_positions(const ModelConfig& c) {
  std::vector<NormPosition> out{NormPosition::PreAttn, NormPosition::PreFfn, NormPosition::Final};
  if (c.qk_norm) out.push_back(NormPosition::Qk);
  if (c.branch_out_norm) out.push_back(NormPosition::BranchOut);
  return out;
}

std::string norm_key(NormPosition p, const std::string& field) {
  return std::string("model.norm.") + to_string(p) + "." + field;
}

// How a scalevec tensor maps onto its transformers counterpart.
enum class Perm { None, RopeRows, RopeVector };
struct Slot {
  std::string name;
  at::Tensor param;  // the scalevec tensor (a view of one expert for stacks)
  Perm perm = Perm::None;
  int64_t heads = 1;
};

at::Tensor gamma_of(const ScaleNorm& norm) {
  return standard_norm_weight(*norm, to_string(norm->position()));
}

std::vector<Slot> slots(TransformerImpl& m, HfArch arch) {
  const ModelConfig& c = m.config();
  std::vector<Slot> out;
  out.push_back({"model.embed_tokens.weight", m.tok_emb});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    auto* b = m.blocks[i]->as<BlockImpl>();
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", gamma_of(b->attn->norm)});
    out.push_back({p + "self_attn.q_proj.weight", b->attn->wq, Perm::RopeRows, c.n_heads});
    out.push_back({p + "self_attn.k_proj.weight", b->attn->wk, Perm::RopeRows, c.kv_heads()});
    out.push_back({p + "self_attn.v_proj.weight", b->attn->wv});
    out.push_back({p + "self_attn.o_proj.weight", b->attn->wo});
    if (has_qk_norm(arch)) {
      out.push_back({p + "self_attn.q_norm.weight", gamma_of(b->attn->q_norm), Perm::RopeVector});
      out.push_back({p + "self_attn.k_norm.weight", gamma_of(b->attn->k_norm), Perm::RopeVector});
    }
    if (!is_moe(arch)) {
      out.push_back({p + "post_attention_layernorm.weight", gamma_of(b->mlp->norm)});
      out.push_back({p + "mlp.gate_proj.weight", b->mlp->w_gate});
      out.push_back({p + "mlp.up_proj.weight", b->mlp->w_up});
      out.push_back({p + "mlp.down_proj.weight", b->mlp->w_down});
      continue;
    }
    out.push_back({p + "post_attention_layernorm.weight", gamma_of(b->moe->norm)});
    const bool mixtral = arch == HfArch::Mixtral;
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    out.push_back({moe + "gate.weight", b->moe->w_router});
    for (int64_t e = 0; e < c.moe.num_experts; ++e) {
      const std::string x = moe + "experts." + std::to_string(e) + ".";
      out.push_back({x + (mixtral ? "w1" : "gate_proj") + ".weight", b->moe->w_gate[e]});
      out.push_back({x + (mixtral ? "w3" : "up_proj") + ".weight", b->moe->w_up[e]});
      out.push_back({x + (mixtral ? "w2" : "down_proj") + ".weight", b->moe->w_down[e]});
    }
  }
  out.push_back({"model.norm.weight", gamma_of(m.final_norm)});
  if (m.lm_head.defined()) out.push_back({"lm_head.weight", m.lm_head});
  return out;
}

// scalevec rotates pairs (x[2i], x[2i+1]); transformers' rotate_half pairs (x[i], x[i + d/2]).
// Row 2i + h of each head goes to row h * d/2 + i.
at::Tensor to_hf_order(const at::Tensor& t, Perm perm, int64_t heads) {
  if (perm == Perm::None) return t;
  if (perm == Perm::RopeVector) return t.reshape({-1, 2}).t().reshape({-1});
  const int64_t rows = t.size(0), cols = t.size(1), d = rows / heads;
  return t.reshape({heads, d / 2, 2, cols}).transpose(1, 2).reshape({rows, cols});
}
at::Tensor from_hf_order(const at::Tensor& t, Perm perm, int64_t heads) {
  if (perm == Perm::None) return t;
  if (perm == Perm::RopeVector) return t.reshape({2, -1}).t().reshape({-1});
  const int64_t rows = t.size(0), cols = t.size(1), d = rows / heads;
  return t.reshape({heads, 2, d / 2, cols}).transpose(1, 2).reshape({rows, cols});
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

}  // namespace

const char* hf_model_type(HfArch arch) {
  switch (arch) {
    case HfArch::Llama:
      return "llama";
    case HfArch::Qwen3:
      return "qwen3";
    case HfArch::Mixtral:
      return "mixtral";
    case HfArch::Qwen3Moe:
      return "qwen3_moe";
  }
  return "llama";
}

const char* hf_architecture(HfArch arch) {
  switch (arch) {
    case HfArch::Llama:
      return "LlamaForCausalLM";
    case HfArch::Qwen3:
      return "Qwen3ForCausalLM";
    case HfArch::Mixtral:
      return "MixtralForCausalLM";
    case HfArch::Qwen3Moe:
      return "Qwen3MoeForCausalLM";
  }
  return "LlamaForCausalLM";
}

HfArch hf_arch_for(const ModelConfig& cfg) {
  if (cfg.moe.enabled) return cfg.qk_norm ? HfArch::Qwen3Moe : HfArch::Mixtral;
  return cfg.qk_norm ? HfArch::Qwen3 : HfArch::Llama;
}

std::vector<std::string> hf_export_blockers(const ModelConfig& cfg) {
  std::vector<std::string> out;
  if (cfg.branch_out_norm)
    out.push_back(
        "model.branch_out_norm = true: norms on the branch outputs (x + Norm(f(x))) "
        "have no counterpart in Llama/Qwen3/Mixtral decoder layers");
  if (cfg.moe.enabled && cfg.moe.shared_expert)
    out.push_back(
        "model.moe.shared_expert = true: an always-on expert added without a gate has "
        "no counterpart in Mixtral/Qwen3-MoE (Qwen2-MoE gates its shared expert)");
  if (cfg.moe.enabled && cfg.moe.capacity_factor > 0)
    out.push_back("model.moe.capacity_factor = " + json_number(cfg.moe.capacity_factor) +
                  ": the HF models route every token (no capacity), so their logits would differ "
                  "where training dropped tokens; export with --set model.moe.capacity_factor=0 "
                  "to accept the drop-free model");
  const auto positions = used_positions(cfg);
  for (NormPosition p : positions) {
    const NormOptions& o = cfg.norm.at(p);
    const bool relocated = o.variant == NormVariant::Relocated || o.variant == NormVariant::Unified;
    const bool dnp = o.placement_form == PlacementForm::Dnp ||
                     (o.placement_form == PlacementForm::Auto &&
                      o.variant == NormVariant::Unified && p == NormPosition::PreFfn);
    if (relocated && dnp && role_of(p) == NormRole::Input && p != NormPosition::Final)
      out.push_back(norm_key(p, "placement_form") +
                    " is dnp (unified's default at pre_ffn): u * Norm(W (v * x)) normalizes "
                    "after the linear map and does not fold; train with placement_form: dp");
  }
  for (NormPosition p : positions)
    if (cfg.norm.at(p).eps != cfg.norm.pre_attn.eps)
      out.push_back(norm_key(p, "eps") + " = " + json_number(cfg.norm.at(p).eps) +
                    " differs from " + norm_key(NormPosition::PreAttn, "eps") + " = " +
                    json_number(cfg.norm.pre_attn.eps) + ": config.json has one rms_norm_eps");
  return out;
}

NamedTensors hf_tensors(TransformerImpl& standard, HfArch arch, at::ScalarType dtype) {
  NamedTensors out;
  for (const Slot& s : slots(standard, arch))
    out.emplace_back(
        s.name, to_hf_order(s.param.detach(), s.perm, s.heads).to(at::kCPU).to(dtype).contiguous());
  return out;
}

void load_hf_tensors(TransformerImpl& standard, HfArch arch, const NamedTensors& tensors,
                     const std::string& origin) {
  std::map<std::string, const at::Tensor*> given;
  for (const auto& nt : tensors) given[nt.first] = &nt.second;
  std::vector<std::string> problems;
  const auto expected = slots(standard, arch);
  for (const Slot& s : expected) {
    auto it = given.find(s.name);
    if (it == given.end()) {
      problems.push_back("missing " + s.name);
      continue;
    }
    if (it->second->sizes() != s.param.sizes())
      problems.push_back(s.name + " has shape " + shape_str(it->second->sizes()) +
                         ", the model needs " + shape_str(s.param.sizes()));
    if (!at::isFloatingType(it->second->scalar_type()))
      problems.push_back(s.name + " is not a floating-point tensor");
  }
  std::set<std::string> names;
  for (const Slot& s : expected) names.insert(s.name);
  for (const auto& nt : tensors)
    if (!names.count(nt.first)) problems.push_back("unexpected tensor " + nt.first);
  if (!problems.empty()) {
    std::string msg =
        origin + " does not fit the model (" + std::to_string(problems.size()) + " problems):";
    for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
    throw ExportError(msg);
  }
  at::NoGradGuard no_grad;
  for (const Slot& s : expected) {
    const at::Tensor src = from_hf_order(*given[s.name], s.perm, s.heads);
    at::Tensor dst = s.param;  // a view into the parameter for stacked experts
    dst.copy_(src);
  }
}

std::string hf_config_json(const ModelConfig& c, HfArch arch, at::ScalarType dtype) {
  std::vector<std::pair<std::string, std::string>> kv;  // key order as transformers writes it
  auto add = [&](const std::string& k, const std::string& v) { kv.emplace_back(k, v); };
  auto num = [&](const std::string& k, double v) { add(k, json_number(v)); };
  auto flag = [&](const std::string& k, bool v) { add(k, v ? "true" : "false"); };
  add("architectures", std::string("[") + json_quote(hf_architecture(arch)) + "]");
  add("model_type", json_quote(hf_model_type(arch)));
  num("vocab_size", c.vocab_size);
  num("hidden_size", c.d_model);
  num("intermediate_size", arch == HfArch::Mixtral ? c.expert_dim() : c.ffn_dim());
  num("num_hidden_layers", c.n_layers);
  num("num_attention_heads", c.n_heads);
  num("num_key_value_heads", c.kv_heads());
  num("head_dim", c.head_dim());
  add("hidden_act", "\"silu\"");
  num("max_position_embeddings", c.max_seq_len);
  num("initializer_range", c.init_std);
  num("rms_norm_eps", c.norm.pre_attn.eps);
  num("rope_theta", c.rope_theta);
  add("rope_scaling", "null");
  flag("attention_bias", false);
  num("attention_dropout", 0.0);
  flag("tie_word_embeddings", c.tie_embeddings);
  flag("use_cache", true);
  num("bos_token_id", 1);  // scalevec's tokenizer: unk 0, bos 1, eos 2 (docs/data.md)
  num("eos_token_id", 2);
  if (arch == HfArch::Llama) {
    flag("mlp_bias", false);
    num("pretraining_tp", 1);
  }
  if (has_qk_norm(arch)) {
    flag("use_sliding_window", false);
    add("sliding_window", "null");
    num("max_window_layers", c.n_layers);
  }
  if (arch == HfArch::Mixtral) {
    num("num_local_experts", c.moe.num_experts);
    num("num_experts_per_tok", c.moe.top_k);
    num("router_jitter_noise", 0.0);
    add("sliding_window", "null");
  }
  if (arch == HfArch::Qwen3Moe) {
    num("num_experts", c.moe.num_experts);
    num("num_experts_per_tok", c.moe.top_k);
    num("moe_intermediate_size", c.expert_dim());
    flag("norm_topk_prob", true);  // scalevec renormalizes the top-k router probabilities
    num("decoder_sparse_step", 1);
    add("mlp_only_layers", "[]");
  }
  if (is_moe(arch)) {
    flag("output_router_logits", false);
    num("router_aux_loss_coef", c.moe.aux_loss_coef);
  }
  add("torch_dtype", json_quote(dtype == at::kBFloat16 ? "bfloat16"
                                : dtype == at::kDouble ? "float64"
                                                       : "float32"));
  std::string out = "{";
  for (size_t i = 0; i < kv.size(); ++i)
    out += std::string(i ? "," : "") + "\n  " + json_quote(kv[i].first) + ": " + kv[i].second;
  return out + "\n}\n";
}

HfModelSpec model_config_from_hf(const std::string& text, const std::string& origin) {
  const YAML::Node j = parse_json_object(text, origin);
  HfModelSpec spec;
  const std::string type = json_string_at(j, "model_type", origin);
  const std::map<std::string, HfArch> kTypes = {{"llama", HfArch::Llama},
                                                {"qwen3", HfArch::Qwen3},
                                                {"mixtral", HfArch::Mixtral},
                                                {"qwen3_moe", HfArch::Qwen3Moe}};
  if (!kTypes.count(type))
    throw ExportError(origin + ": model_type \"" + type +
                      "\" is not one scalevec reads (llama, qwen3, mixtral, qwen3_moe)");
  spec.arch = kTypes.at(type);
  auto has = [&](const std::string& k) { return j[k] && !j[k].IsNull(); };
  auto uint_or = [&](const std::string& k, int64_t fallback) {
    return has(k) ? static_cast<int64_t>(json_uint_at(j, k, origin)) : fallback;
  };
  auto refuse = [&](const std::string& k, const std::string& why) {
    throw ExportError(origin + ": " + k + " " + why + ", which scalevec's model does not have");
  };
  if (has("hidden_act") && json_string_at(j, "hidden_act", origin) != "silu")
    refuse("hidden_act", "is " + json_string_at(j, "hidden_act", origin) + " (SwiGLU needs silu)");
  for (const char* k : {"attention_bias", "mlp_bias", "use_sliding_window"})
    if (has(k) && json_bool_at(j, k, origin)) refuse(k, "is true");
  if (has("rope_scaling")) refuse("rope_scaling", "is set (a scaled RoPE)");
  ModelConfig& m = spec.model;
  m.vocab_size = static_cast<int64_t>(json_uint_at(j, "vocab_size", origin));
  m.d_model = static_cast<int64_t>(json_uint_at(j, "hidden_size", origin));
  m.n_layers = static_cast<int64_t>(json_uint_at(j, "num_hidden_layers", origin));
  m.n_heads = static_cast<int64_t>(json_uint_at(j, "num_attention_heads", origin));
  m.n_kv_heads = uint_or("num_key_value_heads", m.n_heads);
  if (m.n_heads <= 0 || m.d_model % m.n_heads != 0)
    throw ExportError(origin + ": hidden_size " + std::to_string(m.d_model) +
                      " is not a multiple of num_attention_heads " + std::to_string(m.n_heads));
  if (has("head_dim") && uint_or("head_dim", 0) != m.d_model / m.n_heads)
    refuse("head_dim", "is " + std::to_string(uint_or("head_dim", 0)) + ", not hidden_size / " +
                           "num_attention_heads = " + std::to_string(m.d_model / m.n_heads));
  m.ffn_hidden = static_cast<int64_t>(json_uint_at(j, "intermediate_size", origin));
  m.max_seq_len = static_cast<int64_t>(json_uint_at(j, "max_position_embeddings", origin));
  m.rope_theta = has("rope_theta") ? json_double_at(j, "rope_theta", origin) : 10000.0;
  m.tie_embeddings = has("tie_word_embeddings") && json_bool_at(j, "tie_word_embeddings", origin);
  if (has("initializer_range")) m.init_std = json_double_at(j, "initializer_range", origin);
  m.qk_norm = has_qk_norm(spec.arch);
  const double eps = json_double_at(j, "rms_norm_eps", origin);
  for (NormPosition p : kNormPositions) {
    m.norm.at(p) = NormOptions{};
    m.norm.at(p).variant = NormVariant::Standard;
    m.norm.at(p).eps = eps;
  }
  if (is_moe(spec.arch)) {
    m.moe.enabled = true;
    const bool mixtral = spec.arch == HfArch::Mixtral;
    m.moe.num_experts = static_cast<int64_t>(
        json_uint_at(j, mixtral ? "num_local_experts" : "num_experts", origin));
    m.moe.top_k = static_cast<int64_t>(json_uint_at(j, "num_experts_per_tok", origin));
    m.moe.expert_hidden =
        mixtral ? m.ffn_hidden
                : static_cast<int64_t>(json_uint_at(j, "moe_intermediate_size", origin));
    m.moe.capacity_factor = 0;
    if (has("router_aux_loss_coef"))
      m.moe.aux_loss_coef = json_double_at(j, "router_aux_loss_coef", origin);
    if (!mixtral) {
      if (!has("norm_topk_prob") || !json_bool_at(j, "norm_topk_prob", origin))
        refuse("norm_topk_prob", "is false or absent (top-k weights not renormalized)");
      if (uint_or("decoder_sparse_step", 1) != 1)
        refuse("decoder_sparse_step", "is not 1 (dense layers between sparse ones)");
      if (has("mlp_only_layers") && j["mlp_only_layers"].size() > 0)
        refuse("mlp_only_layers", "lists dense layers");
    }
  }
  return spec;
}

std::vector<std::string> hf_load_mismatches(const ModelConfig& w, const HfModelSpec& spec,
                                            const std::string& dir) {
  const ModelConfig& h = spec.model;
  std::vector<std::string> out;
  auto cmp = [&](const std::string& key, auto mine, auto theirs, const std::string& hf_key) {
    if (mine != theirs) {
      std::ostringstream os;
      os << std::boolalpha << key << " = " << mine << " but " << dir << "/config.json has "
         << hf_key << " " << theirs;
      out.push_back(os.str());
    }
  };
  cmp("model.vocab_size", w.vocab_size, h.vocab_size, "vocab_size");
  cmp("model.d_model", w.d_model, h.d_model, "hidden_size");
  cmp("model.n_layers", w.n_layers, h.n_layers, "num_hidden_layers");
  cmp("model.n_heads", w.n_heads, h.n_heads, "num_attention_heads");
  cmp("model.n_kv_heads (resolved)", w.kv_heads(), h.kv_heads(), "num_key_value_heads");
  cmp("model.rope_theta", w.rope_theta, h.rope_theta, "rope_theta");
  cmp("model.tie_embeddings", w.tie_embeddings, h.tie_embeddings, "tie_word_embeddings");
  cmp("model.qk_norm", w.qk_norm, h.qk_norm,
      std::string("model_type (") + hf_model_type(spec.arch) + ") with QK-norm:");
  cmp("model.branch_out_norm", w.branch_out_norm, false, "no such norm:");
  cmp("model.moe.enabled", w.moe.enabled, h.moe.enabled,
      std::string("model_type (") + hf_model_type(spec.arch) + ") with MoE:");
  if (w.moe.enabled && h.moe.enabled) {
    cmp("model.moe.num_experts", w.moe.num_experts, h.moe.num_experts, "num_experts");
    cmp("model.moe.top_k", w.moe.top_k, h.moe.top_k, "num_experts_per_tok");
    cmp("model.moe.expert_hidden (resolved)", w.expert_dim(), h.expert_dim(),
        "the expert intermediate size");
    cmp("model.moe.shared_expert", w.moe.shared_expert, false, "no such expert:");
  } else if (!w.moe.enabled) {
    cmp("model.ffn_hidden (resolved)", w.ffn_dim(), h.ffn_dim(), "intermediate_size");
  }
  for (NormPosition p : used_positions(w)) {
    const NormOptions& o = w.norm.at(p);
    if (o.variant != NormVariant::Standard)
      out.push_back(norm_key(p, "variant") + " = " + to_string(o.variant) +
                    ": an HF folder loads into a standard model (set model.norm.variant=standard)");
    cmp(norm_key(p, "eps"), o.eps, h.norm.pre_attn.eps, "rms_norm_eps");
  }
  return out;
}

}  // namespace scalevec

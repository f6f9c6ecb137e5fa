// Folding every scale vector of a trained model into a `standard` model (docs/export.md).
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <map>

#include "scalevec/hf_format.h"

namespace scalevec {

namespace {

at::Tensor f64(const at::Tensor& t) {
  return t.detach().to(at::kDouble);
}

// Writes the folded form of src's norm into dst's norm and reader weights; returns a note.
std::string fold_norm(const NormReaders& src, const NormReaders& dst) {
  const ScaleNormImpl& n = *src.norm;
  at::Tensor gamma = standard_norm_weight(*dst.norm, dst.name);
  if (src.weights.empty()) {  // Output-Norm: its vector is the exported weight
    const at::Tensor g = n.input_scale(0);
    gamma.copy_(g.defined() ? f64(g) : at::ones_like(gamma));
    return dst.name + ": weight = " + (g.defined() ? "g" : "1 (no scale vector)");
  }
  for (size_t b = 0; b < n.branches().size(); ++b)
    if (n.is_dnp(b))
      throw ExportError("norm " + src.name + ", branch " + n.branches()[b].name +
                        ": the DNP form u * Norm(W (v * x)) normalizes after the linear map, "
                        "which no Llama/Qwen3 layer does, so it does not fold (set model.norm." +
                        to_string(n.position()) +
                        ".placement_form=dp to train an exportable form)");
  // One plain vector read by every branch stays the norm's weight: W is then exported as is.
  bool shared = true;
  at::Tensor g0;
  for (size_t b = 0; b < n.branches().size() && shared; ++b) {
    const at::Tensor gi = n.input_scale(b);
    shared = gi.defined() && gi.dim() == 1 && (b == 0 || at::equal(gi, g0));
    if (b == 0) g0 = gi;
  }
  gamma.copy_(shared ? f64(g0) : at::ones_like(gamma));
  std::string into_columns, into_rows;
  for (size_t b = 0; b < n.branches().size(); ++b) {
    at::Tensor w = f64(src.weights[b]);
    const at::Tensor gi = n.input_scale(b), go = n.output_scale(b);
    const std::string& name = n.branches()[b].name;
    if (!shared && gi.defined()) {
      w = w * (gi.dim() == 2 ? f64(gi).unsqueeze(-2) : f64(gi));  // W diag(g_in): columns
      into_columns += (into_columns.empty() ? "" : ",") + name;
    }
    if (go.defined()) {
      w = w * f64(go).unsqueeze(-1);  // diag(g_out) W: rows
      into_rows += (into_rows.empty() ? "" : ",") + name;
    }
    TORCH_CHECK(dst.weights[b].sizes() == w.sizes(), "folded weight of ", src.name, "/", name,
                " has shape ", w.sizes(), ", the standard model's ", dst.weights[b].sizes());
    dst.weights[b].copy_(w);
  }
  std::string note = dst.name + ": weight = " + (shared ? "g_in (shared by every branch)" : "1");
  if (!into_columns.empty()) note += "; g_in folded into the columns of " + into_columns;
  if (!into_rows.empty()) note += "; g_out folded into the rows of " + into_rows;
  return note;
}

}  // namespace

at::Tensor standard_norm_weight(const ScaleNormImpl& norm, const std::string& name) {
  const auto params = norm.parameters();
  if (params.size() != 1 || params[0].dim() != 1)
    throw ExportError("norm " + name + " holds " + std::to_string(params.size()) +
                      " tensors, not the one gamma vector of a standard norm (fold_to_standard "
                      "makes a standard model)");
  return params[0];
}

ModelConfig standard_config_for(const TransformerImpl& model) {
  ModelConfig c = model.config();
  for (NormPosition p : kNormPositions) {
    NormOptions plain;
    plain.eps = c.norm.at(p).eps;
    plain.variant = NormVariant::Standard;
    c.norm.at(p) = plain;
  }
  // An output-side vector on a tied LM head would change the input embedding too: untie.
  if (c.tie_embeddings && model.final_norm->output_scale(0).defined()) c.tie_embeddings = false;
  return c;
}

Transformer fold_to_standard(TransformerImpl& model, std::vector<std::string>* notes,
                             std::optional<at::ScalarType> dtype) {
  const at::Tensor ref = model.tok_emb;
  Transformer out(standard_config_for(model), 0);
  out->to(ref.device(), dtype.value_or(ref.scalar_type()));
  at::NoGradGuard no_grad;
  // Tensors no norm reads (embeddings, W_o, W_down, ...) keep their names and values.
  std::map<std::string, at::Tensor> src;
  for (const auto& p : model.named_parameters()) src[p.key()] = p.value();
  for (auto& p : out->named_parameters()) {
    auto it = src.find(p.key());
    if (it != src.end() && it->second.sizes() == p.value().sizes()) p.value().copy_(it->second);
  }
  const auto src_readers = model.norm_readers();
  const auto dst_readers = out->norm_readers();
  TORCH_CHECK(src_readers.size() == dst_readers.size(), "the standard model has ",
              dst_readers.size(), " norms, the source ", src_readers.size());
  for (size_t i = 0; i < src_readers.size(); ++i) {
    const std::string note = fold_norm(src_readers[i], dst_readers[i]);
    if (notes) notes->push_back(note);
  }
  if (notes && out->config().tie_embeddings != model.config().tie_embeddings)
    notes->push_back(
        "final_norm has g_out on the tied LM head: exported untied (lm_head = "
        "diag(g_out) tok_emb)");
  return out;
}

}  // namespace scalevec

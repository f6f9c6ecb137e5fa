// The pieces of a training step that tests call directly.
#include <cmath>

#include "scalevec/compat.h"
#include "scalevec/trainer.h"

namespace scalevec {

at::Tensor accumulate_gradients(TransformerImpl& model, const std::vector<Batch>& micro_batches,
                                GradSynchronizer* sync, bool bf16_autocast) {
  TORCH_CHECK(!micro_batches.empty(), "accumulate_gradients needs at least one micro-batch");
  const double scale = 1.0 / static_cast<double>(micro_batches.size());
  at::Tensor ce_sum;
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    if (sync) sync->set_sync_enabled(i + 1 == micro_batches.size());
    LossOutput out;
    {
      compat::CudaAutocastGuard autocast(bf16_autocast);
      out = model.loss(micro_batches[i].inputs, micro_batches[i].targets);
    }
    (out.loss * scale).backward();
    const at::Tensor ce = out.ce.detach();
    ce_sum = ce_sum.defined() ? ce_sum + ce : ce;
  }
  return ce_sum * scale;
}

std::vector<std::string> scale_statistic_columns(TransformerImpl& model) {
  std::vector<std::string> cols;
  std::vector<std::string> seen;
  for (const auto& [name, norm] : model.norms()) {
    if (norm->scale_numel() == 0) continue;
    const std::string pos = to_string(norm->position());
    if (std::find(seen.begin(), seen.end(), pos) != seen.end()) continue;
    seen.push_back(pos);
    for (const char* stat : {"mean", "std", "min", "max"})
      cols.push_back("scale." + pos + "." + stat);
  }
  return cols;
}

std::map<std::string, double> scale_statistics(TransformerImpl& model) {
  std::map<std::string, std::vector<at::Tensor>> by_position;
  at::NoGradGuard no_grad;
  for (const auto& [name, norm] : model.norms()) {
    const at::Tensor v = norm->scale_values();
    if (v.defined()) by_position[to_string(norm->position())].push_back(v.to(at::kDouble));
  }
  std::map<std::string, double> out;
  for (const auto& [pos, list] : by_position) {
    const at::Tensor all = at::cat(list).cpu();
    const std::string p = "scale." + pos + ".";
    out[p + "mean"] = all.mean().item<double>();
    out[p + "std"] = all.numel() > 1 ? all.std().item<double>() : 0.0;
    out[p + "min"] = all.min().item<double>();
    out[p + "max"] = all.max().item<double>();
  }
  return out;
}

}  // namespace scalevec

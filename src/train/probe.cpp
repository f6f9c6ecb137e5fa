#include "scalevec/probe.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "scalevec/compat.h"
#include "scalevec/hessian.h"

namespace scalevec {

namespace {

// Sums of squares and extremes of the vectors (and readers) at one position and side.
struct BalanceAccumulator {
  int64_t vectors = 0, pairs = 0;
  double gamma_norm_sum = 0, w_norm_sum = 0;
  double gamma2_min = INFINITY, gamma2_max = -INFINITY;
  double paired_gamma2 = 0, paired_w2 = 0;

  void add_gamma(const at::Tensor& g) {
    const at::Tensor g2 = g.detach().to(at::kDouble).pow(2);
    gamma_norm_sum += std::sqrt(g2.sum().item<double>());
    gamma2_min = std::min(gamma2_min, g2.min().item<double>());
    gamma2_max = std::max(gamma2_max, g2.max().item<double>());
    ++vectors;
  }
  // gamma and the maps that absorb its rescaling (gamma*c, W/c leave the function unchanged).
  void add_pair(const at::Tensor& g, const std::vector<at::Tensor>& readers) {
    double w2 = 0;
    for (const auto& w : readers) w2 += w.detach().to(at::kDouble).pow(2).sum().item<double>();
    paired_gamma2 += g.detach().to(at::kDouble).pow(2).sum().item<double>();
    paired_w2 += w2;
    w_norm_sum += std::sqrt(w2);
    ++pairs;
  }
  void write(const std::string& prefix, std::map<std::string, double>& out) const {
    if (vectors > 0) {
      out[prefix + "gamma_norm"] = gamma_norm_sum / vectors;
      out[prefix + "gamma2_min"] = gamma2_min;
      out[prefix + "gamma2_max"] = gamma2_max;
    }
    if (pairs > 0) {
      out[prefix + "w_norm"] = w_norm_sum / pairs;
      out[prefix + "balance"] = paired_gamma2 / std::max(paired_w2, 1e-300);
    }
  }
};

}  // namespace

std::map<std::string, double> balance_statistics(TransformerImpl& model) {
  at::NoGradGuard no_grad;
  std::map<std::string, BalanceAccumulator> acc;  // key: "probe.<pos>." or "probe.<pos>.out."
  for (const auto& r : model.norm_readers()) {
    const ScaleNormImpl& norm = *r.norm;
    const std::string pos = std::string("probe.") + to_string(norm.position()) + ".";
    if (norm.branches().empty()) {  // Output-Norm: nothing reads it linearly
      const at::Tensor g = norm.input_scale(0);
      if (g.defined()) acc[pos].add_gamma(g);
      continue;
    }
    // Input side: one pair per distinct vector, with every branch that reads it.
    std::map<int64_t, std::vector<at::Tensor>> by_vector;
    std::map<int64_t, size_t> first_branch;
    for (size_t b = 0; b < norm.branches().size(); ++b) {
      const int64_t id = norm.input_scale_id(b);
      if (id < 0) continue;
      by_vector[id].push_back(r.weights[b]);
      first_branch.emplace(id, b);
    }
    for (const auto& [id, readers] : by_vector) {
      const at::Tensor g = norm.input_scale(first_branch[id]);
      acc[pos].add_gamma(g);
      acc[pos].add_pair(g, readers);
    }
    if (by_vector.empty()) {  // `none`: no gamma, but the readers' growth is still of interest
      double w2 = 0;
      for (const auto& w : r.weights) w2 += w.detach().to(at::kDouble).pow(2).sum().item<double>();
      acc[pos].w_norm_sum += std::sqrt(w2);
      ++acc[pos].pairs;
    }
    // Output side: DP's u pairs with its branch's rows; DNP's u sits after a normalization.
    for (size_t b = 0; b < norm.branches().size(); ++b) {
      const at::Tensor u = norm.output_scale(b);
      if (!u.defined()) continue;
      auto& out = acc[pos + "out."];
      out.add_gamma(u);
      if (!norm.is_dnp(b)) out.add_pair(u, {r.weights[b]});
    }
  }
  std::map<std::string, double> out;
  for (const auto& [prefix, a] : acc) {
    if (a.vectors == 0 && a.pairs > 0) {  // readers only (variant none)
      out[prefix + "w_norm"] = a.w_norm_sum / a.pairs;
      continue;
    }
    a.write(prefix, out);
  }
  return out;
}

std::vector<Batch> probe_batches(const TokenWindowLoader& val, const TrainConfig& cfg) {
  std::vector<Batch> out;
  const int64_t rows = cfg.probe_batch_size > 0 ? std::min(cfg.probe_batch_size, val.batch_size())
                                                : val.batch_size();
  for (int64_t i = 0; i < cfg.probe_batches; ++i) {
    const Batch b = val.eval_batch(i);
    out.push_back({b.inputs.slice(0, 0, rows), b.targets.slice(0, 0, rows)});
  }
  return out;
}

Probe::Probe(const TrainConfig& cfg, const OptimConfig& optim, std::vector<Batch> batches,
             Communicator* comm, int world_size)
    : cfg_(cfg), optim_(optim), batches_(std::move(batches)), comm_(comm), world_size_(world_size) {
  TORCH_CHECK(!batches_.empty(), "probes need at least one probe batch (train.probe_batches)");
}

std::vector<std::string> Probe::columns(TransformerImpl& model) const {
  std::vector<std::string> cols = {"probe.loss",
                                   "probe.sharpness",
                                   "probe.sharpness_iters",
                                   "probe.sharpness_residual",
                                   "probe.hessian_min",
                                   "probe.adam_sharpness",
                                   "probe.adam_sharpness_iters",
                                   "probe.adam_sharpness_residual",
                                   "probe.adam_min",
                                   "probe.adam_threshold"};
  if (cfg_.probe_trace_samples > 0) {
    cols.push_back("probe.trace");
    cols.push_back("probe.trace_std_error");
  }
  cols.push_back("probe.ms");
  for (const auto& [key, value] : balance_statistics(model)) cols.push_back(key);
  return cols;
}

std::map<std::string, double> Probe::run(TransformerImpl& model,
                                         const std::vector<NamedParam>& params,
                                         const Optimizer& optimizer, double lr_scale,
                                         int64_t step) {
  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, double> out = balance_statistics(model);

  TensorList tensors;
  for (const auto& p : params) tensors.push_back(p.tensor);
  // float32, unfused kernels: the probe graph must be differentiable twice (no autocast).
  model.set_reference_kernels(true);
  at::Tensor loss;
  try {
    for (const auto& b : batches_) {
      const at::Tensor l = model.loss(b.inputs, b.targets).loss;
      loss = loss.defined() ? loss + l : l;
    }
    loss = loss / static_cast<double>(batches_.size());
  } catch (...) {
    model.set_reference_kernels(false);
    throw;
  }
  model.set_reference_kernels(false);
  const HessianVectorProduct hvp(loss, tensors);
  double probe_loss = loss.item<double>();
  if (comm_ && world_size_ > 1) probe_loss = comm_->allreduce_mean(probe_loss);
  out["probe.loss"] = probe_loss;

  // H v, averaged over ranks: the Hessian of the mean probe loss, identical on every rank.
  const LinearOperator hessian = [&](const TensorList& v) {
    TensorList hv = hvp.apply(v);
    if (comm_ && world_size_ > 1) {
      std::vector<at::Tensor> flat;
      for (const auto& t : hv) flat.push_back(t.reshape({-1}));
      at::Tensor all = at::cat(flat);
      comm_->allreduce_mean_(all);
      std::vector<int64_t> sizes;
      for (const auto& t : hv) sizes.push_back(t.numel());
      const auto parts = all.split_with_sizes(sizes);
      for (size_t i = 0; i < hv.size(); ++i) hv[i] = parts[i].view(hv[i].sizes());
    }
    return hv;
  };
  // Start vectors from the run's seed and the step alone: no global RNG, same on every rank.
  at::Generator gen = compat::make_generator(
      cfg_.seed * 1000003ULL + static_cast<uint64_t>(step) + 0x5eed, at::Device(at::kCPU));
  const SpectrumEdge top =
      lanczos_extremes(hessian, random_like(tensors, gen), cfg_.probe_iters, cfg_.probe_tol);
  out["probe.sharpness"] = top.top;
  out["probe.sharpness_iters"] = static_cast<double>(top.iterations);
  out["probe.sharpness_residual"] = top.rel_residual;
  out["probe.hessian_min"] = top.bottom;

  // Adam: eigenvalues of D H (D = step sizes) are those of the symmetric D^1/2 H D^1/2.
  TensorList sqrt_d(tensors.size());
  bool any = false;
  for (const auto& s : optimizer.adam_step_sizes(lr_scale)) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i].is_same(s.param)) continue;
      sqrt_d[i] = s.step_size.sqrt();
      any = true;
    }
  }
  out["probe.adam_threshold"] = (2.0 + 2.0 * optim_.beta1) / (1.0 - optim_.beta1);
  if (any) {
    const LinearOperator preconditioned = [&](const TensorList& u) {
      return multiplied(hessian(multiplied(u, sqrt_d)), sqrt_d);
    };
    const SpectrumEdge adam =
        lanczos_extremes(preconditioned, multiplied(random_like(tensors, gen), sqrt_d),
                         cfg_.probe_iters, cfg_.probe_tol);
    out["probe.adam_sharpness"] = adam.top;
    out["probe.adam_min"] = adam.bottom;
    out["probe.adam_sharpness_iters"] = static_cast<double>(adam.iterations);
    out["probe.adam_sharpness_residual"] = adam.rel_residual;
  }
  if (cfg_.probe_trace_samples > 0) {
    const TraceEstimate tr = hutchinson_trace(hessian, tensors, cfg_.probe_trace_samples, gen);
    out["probe.trace"] = tr.mean;
    out["probe.trace_std_error"] = tr.std_error;
  }
  if (loss.device().is_cuda()) compat::cuda_synchronize();
  out["probe.ms"] =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::string Probe::summary(const std::map<std::string, double>& v) {
  auto get = [&](const char* key) {
    auto it = v.find(key);
    return it == v.end() ? NAN : it->second;
  };
  std::ostringstream line;
  line << std::setprecision(4) << "probe | loss " << get("probe.loss") << " | sharpness "
       << get("probe.sharpness") << " (" << get("probe.sharpness_iters") << " it, residual "
       << std::scientific << std::setprecision(1) << get("probe.sharpness_residual") << ")"
       << std::defaultfloat << std::setprecision(4) << " | min " << get("probe.hessian_min");
  line << " | adam " << get("probe.adam_sharpness") << " / " << get("probe.adam_threshold");
  if (v.count("probe.trace")) line << " | trace " << get("probe.trace");
  line << " | " << std::fixed << std::setprecision(0) << get("probe.ms") << " ms";
  return line.str();
}

}  // namespace scalevec

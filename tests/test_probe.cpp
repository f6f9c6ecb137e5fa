// Mechanism probes: Hessian-vector products against finite differences, power iteration and
// Hutchinson against known spectra and an explicit Hessian, Adam's step sizes against the update
// they predict, the gamma-W balance against a hand computation, and probes leaving training
// bit-for-bit unchanged.
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "scalevec/compat.h"
#include "scalevec/hessian.h"
#include "scalevec/probe.h"
#include "scalevec/trainer.h"
#include "test_util.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

// A double-precision model small enough for its explicit Hessian (a few hundred parameters).
ModelConfig small_model(NormVariant variant) {
  ModelConfig m;
  m.vocab_size = 11;
  m.d_model = 4;
  m.n_heads = 2;
  m.n_layers = 1;
  m.ffn_hidden = 6;
  m.max_seq_len = 8;
  m.qk_norm = true;
  for (auto* o : {&m.norm.pre_attn, &m.norm.pre_ffn, &m.norm.final, &m.norm.qk})
    o->variant = variant;
  return m;
}

struct SmallProblem {
  Transformer model{nullptr};
  TensorList params;
  at::Tensor tokens, targets;
  explicit SmallProblem(NormVariant variant, uint64_t seed = 3) {
    model = Transformer(small_model(variant), seed);
    model->to(at::kDouble);
    model->set_reference_kernels(true);  // LibTorch 2.x's fused SDPA has no double backward
    // Scale vectors away from 1, so that their curvature is not the special init point's.
    {
      at::NoGradGuard ng;
      auto gen = compat::make_generator(seed + 1, at::Device(at::kCPU));
      for (auto& p : model->named_params())
        if (p.group == ParamGroup::InputNorm || p.group == ParamGroup::OutputNorm)
          p.tensor.add_(at::randn(p.tensor.sizes(), gen, at::kDouble) * 0.3);
    }
    for (const auto& p : model->named_params()) params.push_back(p.tensor);
    auto gen = compat::make_generator(seed + 2, at::Device(at::kCPU));
    const at::Tensor t = at::randint(11, {3, 7}, gen, at::kLong);
    tokens = t.slice(1, 0, -1);
    targets = t.slice(1, 1);
  }
  at::Tensor loss() { return model->loss(tokens, targets).loss; }
  TensorList gradient() { return torch::autograd::grad({loss()}, params, {}, false, false, true); }
  int64_t numel() const {
    int64_t n = 0;
    for (const auto& p : params) n += p.numel();
    return n;
  }
};

at::Tensor flat(const TensorList& v) {
  std::vector<at::Tensor> parts;
  for (const auto& t : v) parts.push_back(t.reshape({-1}));
  return at::cat(parts);
}

TensorList unflat(const at::Tensor& f, const TensorList& like) {
  TensorList out;
  int64_t at_ = 0;
  for (const auto& t : like) {
    out.push_back(f.slice(0, at_, at_ + t.numel()).view(t.sizes()));
    at_ += t.numel();
  }
  return out;
}

// Eigenvalue of largest magnitude (what power iteration converges to).
double largest_magnitude(const at::Tensor& eigenvalues) {
  const int64_t i = eigenvalues.abs().argmax().item<int64_t>();
  return eigenvalues[i].item<double>();
}

}  // namespace

TEST(Hessian, VectorProductMatchesFiniteDifferencesOfGradients) {
  for (NormVariant v : {NormVariant::Standard, NormVariant::Unified}) {
    SmallProblem p(v);
    auto gen = compat::make_generator(9, at::Device(at::kCPU));
    // A unit direction: the finite difference's error grows with the step length h |v|.
    const TensorList raw = random_like(p.params, gen);
    const TensorList dir = scaled(raw, 1.0 / norm(raw));
    const HessianVectorProduct hvp(p.loss(), p.params);
    const at::Tensor hv = flat(hvp.apply(dir));
    // Central difference of gradients: (g(x + h v) - g(x - h v)) / 2h, O(h^2) accurate.
    const double h = 1e-6;
    auto shifted_grad = [&](double s) {
      {
        at::NoGradGuard ng;
        for (size_t i = 0; i < p.params.size(); ++i) p.params[i].add_(dir[i] * s);
      }
      const at::Tensor g = flat(p.gradient());
      {
        at::NoGradGuard ng;
        for (size_t i = 0; i < p.params.size(); ++i) p.params[i].sub_(dir[i] * s);
      }
      return g;
    };
    const at::Tensor fd = (shifted_grad(h) - shifted_grad(-h)) / (2 * h);
    const double rel = ((hv - fd).norm() / fd.norm()).item<double>();
    EXPECT_LT(rel, 1e-6) << to_string(v);
    EXPECT_GT(fd.norm().item<double>(), 1e-3) << "a vanishing Hessian would prove nothing";
  }
}

TEST(Hessian, PowerIterationAndTraceOnAKnownQuadratic) {
  // loss = 1/2 x^T A x + b^T x with A = Q diag(lambda) Q^T: the Hessian is A.
  const int64_t n = 12;
  auto gen = compat::make_generator(4, at::Device(at::kCPU));
  const at::Tensor q = std::get<0>(at::linalg_qr(at::randn({n, n}, gen, at::kDouble)));
  const at::Tensor lambda =
      at::tensor(std::vector<double>{9.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.2, 0.1, -2.0},
                 at::kDouble);
  const at::Tensor a = at::matmul(q * lambda, q.t());
  at::Tensor x = at::randn({n}, gen, at::kDouble).requires_grad_(true);
  const at::Tensor b = at::randn({n}, gen, at::kDouble);
  const at::Tensor loss = 0.5 * at::dot(x, at::mv(a, x)) + at::dot(b, x);
  const HessianVectorProduct hvp(loss, {x});
  const LinearOperator op = [&](const TensorList& v) { return hvp.apply(v); };

  const EigenEstimate top = power_iteration(op, random_like({x}, gen), 500, 1e-12);
  EXPECT_TRUE(top.converged);
  EXPECT_NEAR(top.value, 9.0, 1e-9);
  EXPECT_LT(top.iterations, 500);
  // Lanczos: both ends; exact once the Krylov space is the whole space (12 iterations).
  const SpectrumEdge edge = lanczos_extremes(op, random_like({x}, gen), 30, 1e-10);
  EXPECT_NEAR(edge.top, 9.0, 1e-9);
  EXPECT_NEAR(edge.bottom, -2.0, 1e-9);
  EXPECT_TRUE(edge.converged);
  EXPECT_LE(edge.iterations, n);

  // Strong negative curvature: power iteration finds -12, Lanczos the top 9 as well.
  at::Tensor lambda_neg = lambda.clone();
  lambda_neg[n - 1] = -12.0;
  const at::Tensor neg = at::matmul(q * lambda_neg, q.t());
  at::Tensor xn = at::randn({n}, gen, at::kDouble).requires_grad_(true);
  const HessianVectorProduct hvp_neg(0.5 * at::dot(xn, at::mv(neg, xn)), {xn});
  const LinearOperator op_neg = [&](const TensorList& v) { return hvp_neg.apply(v); };
  EXPECT_NEAR(power_iteration(op_neg, random_like({xn}, gen), 2000, 1e-13).value, -12.0, 1e-8);
  const SpectrumEdge both = lanczos_extremes(op_neg, random_like({xn}, gen), 30, 1e-10);
  EXPECT_NEAR(both.bottom, -12.0, 1e-8);
  EXPECT_NEAR(both.top, 9.0, 1e-8);
  EXPECT_TRUE(both.converged);

  // Hutchinson: unbiased; within 4 standard errors of tr(A) = 30.8 over 400 samples.
  const TraceEstimate tr = hutchinson_trace(op, {x}, 400, gen);
  const double exact = lambda.sum().item<double>();
  EXPECT_LT(std::abs(tr.mean - exact), 4 * tr.std_error) << tr.mean << " vs " << exact;
  EXPECT_GT(tr.std_error, 0);
  // For a diagonal Hessian, z^T A z = sum a_ii z_i^2 = tr(A) exactly for Rademacher z.
  at::Tensor y = at::randn({n}, gen, at::kDouble).requires_grad_(true);
  const HessianVectorProduct diag(0.5 * (lambda * y * y).sum(), {y});
  const TraceEstimate one =
      hutchinson_trace([&](const TensorList& v) { return diag.apply(v); }, {y}, 1, gen);
  EXPECT_NEAR(one.mean, exact, 1e-12);
}

TEST(Hessian, PowerIterationMatchesTheExplicitHessianOfASmallModel) {
  SmallProblem p(NormVariant::Unified);
  const int64_t n = p.numel();
  ASSERT_LT(n, 1000) << "keep the explicit Hessian small";
  const HessianVectorProduct hvp(p.loss(), p.params);
  // Column by column: H e_i.
  std::vector<at::Tensor> cols;
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor e = at::zeros({n}, at::kDouble);
    e[i] = 1.0;
    cols.push_back(flat(hvp.apply(unflat(e, p.params))));
  }
  const at::Tensor h = at::stack(cols, 1);
  EXPECT_LT((h - h.t()).abs().max().item<double>(), 1e-9) << "the Hessian must be symmetric";
  const LinearOperator op = [&](const TensorList& v) { return hvp.apply(v); };
  auto gen = compat::make_generator(11, at::Device(at::kCPU));
  const at::Tensor eig = at::linalg_eigvalsh(h);
  const double expected = largest_magnitude(eig);
  const EigenEstimate top = power_iteration(op, random_like(p.params, gen), 3000, 1e-12);
  EXPECT_NEAR(top.value, expected, 1e-6 * std::abs(expected));
  const double largest = eig.max().item<double>();
  const SpectrumEdge edge = lanczos_extremes(op, random_like(p.params, gen), n, 1e-9);
  EXPECT_TRUE(edge.converged);
  EXPECT_NEAR(edge.top, largest, 1e-7 * std::abs(largest));
  EXPECT_NEAR(edge.bottom, eig.min().item<double>(), 1e-3 * std::abs(largest));

  // Preconditioned: the eigenvalues of D H are those of D^1/2 H D^1/2.
  const at::Tensor d = at::rand({n}, gen, at::kDouble) + 0.1;
  const at::Tensor sd = at::diag(d.sqrt());
  const at::Tensor eig_pre = at::linalg_eigvalsh(sd.mm(h).mm(sd));
  const double expected_pre = largest_magnitude(eig_pre);
  const TensorList sqrt_d = unflat(d.sqrt(), p.params);
  const LinearOperator pre = [&](const TensorList& u) {
    return multiplied(op(multiplied(u, sqrt_d)), sqrt_d);
  };
  const EigenEstimate top_pre = power_iteration(pre, random_like(p.params, gen), 3000, 1e-12);
  EXPECT_NEAR(top_pre.value, expected_pre, 1e-6 * std::abs(expected_pre));
  const double largest_pre = eig_pre.max().item<double>();
  const SpectrumEdge edge_pre = lanczos_extremes(pre, random_like(p.params, gen), n, 1e-9);
  EXPECT_NEAR(edge_pre.top, largest_pre, 1e-7 * std::abs(largest_pre));
}

TEST(Probe, AdamStepSizesMatchTheHandFormula) {
  for (OptimizerKind kind : {OptimizerKind::AdamW, OptimizerKind::Muon}) {
    OptimConfig cfg;
    cfg.name = kind;
    cfg.weight_decay = {0, 0, 0, 0};
    cfg.fused = false;
    at::Tensor w = at::randn({3, 4}).requires_grad_(true);
    at::Tensor g = at::randn({4}).add_(1.0).requires_grad_(true);
    std::vector<NamedParam> params{{"w", w, ParamGroup::Matrix, true},
                                   {"g", g, ParamGroup::InputNorm, true}};
    auto opt = make_optimizer(cfg, params);
    auto grads = [&](double s) {
      w.mutable_grad() = at::full_like(w, 0.3 * s);
      g.mutable_grad() = at::linspace(-1, 1, 4) * s;
    };
    grads(1.0);
    opt->step(1.0);
    const auto sizes = opt->adam_step_sizes(0.5);
    ASSERT_EQ(sizes.size(), kind == OptimizerKind::AdamW ? 2u : 1u) << "Muon's matrix is absent";
    // Hand formula for g after one step: v = (1-b2) grad^2, m = (1-b1) grad.
    const at::Tensor grad = at::linspace(-1, 1, 4);
    const at::Tensor expected = cfg.lr * 0.5 / ((1 - cfg.beta1) * (grad.abs() + cfg.eps));
    for (const auto& s : sizes) {
      if (!s.param.is_same(g)) continue;
      EXPECT_TRUE(at::allclose(s.step_size, expected, 1e-5, 0));
      // The next update with zero gradient: m <- b1 m, v <- b2 v; step = lr' m_hat / denom.
      const at::Tensor before = g.detach().clone();
      grads(0.0);
      opt->step(0.5);
      const double t = 2, b1 = cfg.beta1, b2 = cfg.beta2;
      const at::Tensor m = b1 * (1 - b1) * grad;
      const at::Tensor denom =
          (b2 * (1 - b2) * grad * grad / (1 - std::pow(b2, t))).sqrt() + cfg.eps;
      const at::Tensor update = cfg.lr * 0.5 * m / ((1 - std::pow(b1, t)) * denom);
      EXPECT_TRUE(at::allclose(before - g.detach(), update, 1e-4, 1e-9));
    }
  }
}

TEST(Probe, BalanceStatisticsMatchAHandComputation) {
  // standard: one gamma per norm read by q, k, v (pre-attn) / gate, up (pre-FFN) / the head.
  SmallProblem p(NormVariant::Standard);
  auto& m = *p.model;
  const auto stats = balance_statistics(m);
  auto sq = [](const at::Tensor& t) { return t.detach().pow(2).sum().item<double>(); };
  auto* block = m.blocks[0]->as<BlockImpl>();
  const at::Tensor g_attn = block->attn->norm->input_scale(0);
  const double w2_attn = sq(block->attn->wq) + sq(block->attn->wk) + sq(block->attn->wv);
  EXPECT_NEAR(stats.at("probe.pre_attn.balance"), sq(g_attn) / w2_attn, 1e-12);
  EXPECT_NEAR(stats.at("probe.pre_attn.gamma_norm"), std::sqrt(sq(g_attn)), 1e-12);
  EXPECT_NEAR(stats.at("probe.pre_attn.w_norm"), std::sqrt(w2_attn), 1e-12);
  EXPECT_NEAR(stats.at("probe.pre_attn.gamma2_min"), g_attn.pow(2).min().item<double>(), 1e-12);
  EXPECT_NEAR(stats.at("probe.pre_attn.gamma2_max"), g_attn.pow(2).max().item<double>(), 1e-12);
  const at::Tensor g_final = m.final_norm->input_scale(0);
  EXPECT_NEAR(stats.at("probe.final.balance"), sq(g_final) / sq(m.tok_emb), 1e-12);
  // QK: two Output-Norms, no map to balance against.
  const double qk_mean = 0.5 * (std::sqrt(sq(block->attn->q_norm->input_scale(0))) +
                                std::sqrt(sq(block->attn->k_norm->input_scale(0))));
  EXPECT_NEAR(stats.at("probe.qk.gamma_norm"), qk_mean, 1e-12);
  EXPECT_EQ(stats.count("probe.qk.balance"), 0u);

  // branch (HG): each branch's gamma pairs with its own map only.
  SmallProblem hg(NormVariant::Branch);
  auto* hb = hg.model->blocks[0]->as<BlockImpl>();
  const auto hs = balance_statistics(*hg.model);
  const auto& n = hb->attn->norm;
  const double g2 = sq(n->input_scale(0)) + sq(n->input_scale(1)) + sq(n->input_scale(2));
  const double w2 = sq(hb->attn->wq) + sq(hb->attn->wk) + sq(hb->attn->wv);
  EXPECT_NEAR(hs.at("probe.pre_attn.balance"), g2 / w2, 1e-12);
  const double w_mean =
      (std::sqrt(sq(hb->attn->wq)) + std::sqrt(sq(hb->attn->wk)) + std::sqrt(sq(hb->attn->wv))) / 3;
  EXPECT_NEAR(hs.at("probe.pre_attn.w_norm"), w_mean, 1e-12);

  // unified: DP output sides pair with their rows (attention); DNP's (FFN) with nothing.
  SmallProblem u(NormVariant::Unified);
  auto* ub = u.model->blocks[0]->as<BlockImpl>();
  const auto us = balance_statistics(*u.model);
  const auto& un = ub->attn->norm;
  const double out_g2 = sq(un->output_scale(0)) + sq(un->output_scale(1)) + sq(un->output_scale(2));
  EXPECT_NEAR(us.at("probe.pre_attn.out.balance"),
              out_g2 / (sq(ub->attn->wq) + sq(ub->attn->wk) + sq(ub->attn->wv)), 1e-12);
  EXPECT_EQ(us.count("probe.pre_ffn.out.balance"), 0u) << "DNP's output side has no symmetry";
  EXPECT_EQ(us.count("probe.pre_ffn.out.gamma_norm"), 1u);

  // none: no gamma anywhere; the readers' norms are still reported.
  SmallProblem none(NormVariant::None);
  const auto ns = balance_statistics(*none.model);
  EXPECT_EQ(ns.count("probe.pre_attn.balance"), 0u);
  EXPECT_EQ(ns.count("probe.pre_attn.w_norm"), 1u);
}

namespace {

// metrics.csv as header -> column of cells.
std::map<std::string, std::vector<std::string>> read_csv(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> names;
  std::stringstream hs(line);
  for (std::string cell; std::getline(hs, cell, ',');) names.push_back(cell);
  std::map<std::string, std::vector<std::string>> out;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    for (size_t i = 0; i < names.size(); ++i) {
      if (!std::getline(ss, cell, ',')) cell.clear();
      out[names[i]].push_back(cell);
    }
  }
  return out;
}

}  // namespace

TEST(Probe, ARunWithProbesTrainsBitForBitLikeOneWithout) {
  const fs::path dir = fs::temp_directory_path() / ("scalevec_probe_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  scalevec::testing::write_random_shards(dir, 61, 7);
  Config cfg = scalevec::testing::tiny_cpu_config(dir, 61);
  cfg.model.n_layers = 2;
  cfg.model.qk_norm = true;
  cfg.model.norm.pre_attn.variant = NormVariant::Unified;
  cfg.model.norm.pre_ffn.variant = NormVariant::Unified;
  cfg.train.batch_size = 4;
  cfg.train.steps = 6;
  cfg.train.eval_every = 3;
  cfg.train.eval_batches = 2;
  cfg.train.log_every = 1;
  cfg.schedule.warmup_steps = 2;
  Config probed = cfg;
  cfg.train.out_dir = (dir / "plain").string();
  probed.train.out_dir = (dir / "probed").string();
  probed.train.probe_every = 4;  // steps 4 and 6 (the last)
  probed.train.probe_iters = 8;
  probed.train.probe_trace_samples = 2;
  Trainer a(cfg, {});
  a.run();
  Trainer b(probed, {});
  b.run();
  auto pa = a.model().parameters(), pb = b.model().parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pb[i])) << i;
  const auto ca = read_csv(dir / "plain" / "metrics.csv");
  const auto cb = read_csv(dir / "probed" / "metrics.csv");
  EXPECT_EQ(ca.at("train_loss"), cb.at("train_loss"));
  EXPECT_EQ(ca.at("val_loss"), cb.at("val_loss"));
  EXPECT_EQ(ca.count("probe.sharpness"), 0u);
  const auto& sharp = cb.at("probe.sharpness");
  ASSERT_EQ(sharp.size(), 6u);
  for (size_t row = 0; row < 6; ++row) {
    const bool probed_row = row == 3 || row == 5;
    EXPECT_EQ(sharp[row].empty(), !probed_row) << "row " << row;
    if (!probed_row) continue;
    EXPECT_GT(std::stod(sharp[row]), 0) << "row " << row;
    EXPECT_LE(std::stod(cb.at("probe.hessian_min")[row]), std::stod(sharp[row]));
    EXPECT_GT(std::stod(cb.at("probe.adam_sharpness")[row]), 0);
    EXPECT_TRUE(std::isfinite(std::stod(cb.at("probe.trace")[row])));
    EXPECT_GT(std::stod(cb.at("probe.pre_attn.balance")[row]), 0);
    EXPECT_GT(std::stod(cb.at("probe.pre_attn.out.balance")[row]), 0);
    EXPECT_GT(std::stod(cb.at("probe.qk.gamma_norm")[row]), 0);
  }
  fs::remove_all(dir);
}

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "scalevec/compat.h"
#include "scalevec/optim.h"

namespace sv = scalevec;
using sv::NamedParam;
using sv::ParamGroup;

namespace {

NamedParam make_param(const std::string& name, at::IntArrayRef shape, ParamGroup group,
                      bool decay = true, at::ScalarType dtype = at::kDouble) {
  return {name, at::randn(shape, at::TensorOptions().dtype(dtype)).requires_grad_(true), group,
          decay};
}

// Deep copies sharing names and tags (a fresh model restored from a checkpoint).
std::vector<NamedParam> clone_params(const std::vector<NamedParam>& ps) {
  std::vector<NamedParam> out;
  for (const auto& p : ps)
    out.push_back({p.name, p.tensor.detach().clone().requires_grad_(true), p.group, p.decay});
  return out;
}

// Deterministic gradient for (step, parameter index).
at::Tensor grad_for(const NamedParam& p, int64_t step, size_t index) {
  auto gen = sv::compat::make_generator(1000 * static_cast<uint64_t>(step) + index, at::kCPU);
  return at::randn(p.tensor.sizes(), gen, p.tensor.options().requires_grad(false));
}

void set_grads(std::vector<NamedParam>& ps, int64_t step) {
  for (size_t i = 0; i < ps.size(); ++i) ps[i].tensor.mutable_grad() = grad_for(ps[i], step, i);
}

sv::OptimConfig base_config() {
  sv::OptimConfig c;
  c.lr = 1e-2;
  c.beta1 = 0.9;
  c.beta2 = 0.99;
  c.eps = 1e-8;
  c.weight_decay = {0.1, 0.05, 0.2, 0.0};
  c.lr_mult = {1.0, 2.0, 0.5, 3.0};
  return c;
}

std::vector<double> to_vec(const at::Tensor& t) {
  auto c = t.detach().to(at::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

double hand_norm(const std::vector<NamedParam>& ps) {
  double sum = 0.0;
  for (const auto& p : ps)
    if (p.tensor.grad().defined())
      for (double x : to_vec(p.tensor.grad())) sum += x * x;
  return std::sqrt(sum);
}

}  // namespace

// ---- AdamW ----

TEST(OptimAdamW, MatchesScalarReference) {
  at::manual_seed(0);
  for (bool fused : {false, true}) {  // fused on CPU must fall back to the same foreach math
    auto cfg = base_config();
    cfg.fused = fused;
    std::vector<NamedParam> ps = {make_param("w", {3, 4}, ParamGroup::Matrix),
                                  make_param("experts", {2, 3, 2}, ParamGroup::Matrix),
                                  make_param("emb", {5, 3}, ParamGroup::Embedding),
                                  make_param("ln.in", {4}, ParamGroup::InputNorm),
                                  make_param("ln.in.nd", {4}, ParamGroup::InputNorm, false),
                                  make_param("qk", {6}, ParamGroup::OutputNorm)};
    // Scalar reference state, one vector per parameter.
    std::vector<std::vector<double>> p_ref, m(ps.size()), v(ps.size());
    std::vector<int64_t> t(ps.size(), 0);
    for (auto& p : ps) p_ref.push_back(to_vec(p.tensor));
    auto opt = sv::make_optimizer(cfg, ps);
    const double scales[] = {1.0, 0.5, 0.25, 1.0, 0.75};
    for (int64_t step = 0; step < 5; ++step) {
      set_grads(ps, step);
      if (step == 2) ps[3].tensor.mutable_grad().reset();  // skipped: its step count lags
      for (size_t i = 0; i < ps.size(); ++i) {
        if (!ps[i].tensor.grad().defined()) continue;
        const auto g = to_vec(ps[i].tensor.grad());
        const double lr = cfg.lr * sv::group_lr_mult(cfg, ps[i].group) * scales[step];
        const double wd = sv::group_weight_decay(cfg, ps[i].group, ps[i].decay);
        t[i] += 1;
        m[i].resize(g.size(), 0.0);
        v[i].resize(g.size(), 0.0);
        for (size_t k = 0; k < g.size(); ++k) {
          auto& x = p_ref[i][k];
          x *= 1.0 - lr * wd;
          m[i][k] = cfg.beta1 * m[i][k] + (1.0 - cfg.beta1) * g[k];
          v[i][k] = cfg.beta2 * v[i][k] + (1.0 - cfg.beta2) * g[k] * g[k];
          const double mhat = m[i][k] / (1.0 - std::pow(cfg.beta1, t[i]));
          const double vhat = v[i][k] / (1.0 - std::pow(cfg.beta2, t[i]));
          x -= lr * mhat / (std::sqrt(vhat) + cfg.eps);
        }
      }
      opt->step(scales[step]);
    }
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto got = to_vec(ps[i].tensor);
      for (size_t k = 0; k < got.size(); ++k)
        ASSERT_NEAR(got[k], p_ref[i][k], 1e-12) << ps[i].name << "[" << k << "] fused=" << fused;
    }
  }
}

TEST(OptimWeightDecay, OnlyTheConfiguredRoleDecays) {
  at::manual_seed(1);
  for (auto kind : {sv::OptimizerKind::AdamW, sv::OptimizerKind::Muon}) {
    sv::OptimConfig cfg;
    cfg.name = kind;
    cfg.lr = 1e-2;
    cfg.weight_decay = {0.0, 0.0, 0.3, 0.0};
    std::vector<NamedParam> ps = {make_param("w", {4, 6}, ParamGroup::Matrix),
                                  make_param("e", {4, 4, 6}, ParamGroup::Matrix),
                                  make_param("emb", {7, 4}, ParamGroup::Embedding),
                                  make_param("in", {6}, ParamGroup::InputNorm),
                                  make_param("in.nd", {6}, ParamGroup::InputNorm, false),
                                  make_param("out", {6}, ParamGroup::OutputNorm)};
    auto opt = sv::make_optimizer(cfg, ps);
    for (int step = 0; step < 3; ++step) {
      auto before = clone_params(ps);
      for (auto& p : ps) p.tensor.mutable_grad() = at::zeros_like(p.tensor);
      opt->step(1.0);
      for (size_t i = 0; i < ps.size(); ++i) {
        const bool decays = ps[i].group == ParamGroup::InputNorm && ps[i].decay;
        const auto expect =
            decays ? before[i].tensor.detach() * (1.0 - cfg.lr * 0.3) : before[i].tensor.detach();
        EXPECT_TRUE(at::equal(ps[i].tensor, expect)) << ps[i].name << " step " << step;
      }
    }
  }
}

TEST(OptimWeightDecay, DecayFlagOverridesGroup) {
  sv::OptimConfig cfg;
  cfg.weight_decay = {0.5, 0.5, 0.5, 0.5};
  for (auto g :
       {ParamGroup::Matrix, ParamGroup::Embedding, ParamGroup::InputNorm, ParamGroup::OutputNorm}) {
    EXPECT_DOUBLE_EQ(sv::group_weight_decay(cfg, g, true), 0.5);
    EXPECT_DOUBLE_EQ(sv::group_weight_decay(cfg, g, false), 0.0);
  }
}

TEST(OptimAdamW, LrMultScalesTheStep) {
  sv::OptimConfig cfg;
  cfg.lr = 1e-3;
  cfg.weight_decay = {0.0, 0.0, 0.0, 0.0};
  cfg.lr_mult = {1.0, 3.0, 0.5, 1.0};
  const auto init = at::randn({8}, at::kDouble);
  const auto grad = at::randn({8}, at::kDouble);
  std::vector<NamedParam> ps;
  for (auto g : {ParamGroup::Matrix, ParamGroup::Embedding, ParamGroup::InputNorm})
    ps.push_back({to_string(g), init.clone().requires_grad_(true), g, true});
  for (auto& p : ps) p.tensor.mutable_grad() = grad.clone();
  auto opt = sv::make_optimizer(cfg, ps);
  opt->step(0.5);
  const auto d_matrix = ps[0].tensor.detach() - init;
  EXPECT_GT(d_matrix.abs().min().item<double>(), 0.4e-3);  // first Adam step ~ lr * scale
  EXPECT_TRUE(at::allclose(ps[1].tensor.detach() - init, d_matrix * 3.0, 0.0, 1e-14));
  EXPECT_TRUE(at::allclose(ps[2].tensor.detach() - init, d_matrix * 0.5, 0.0, 1e-14));
}

TEST(OptimAdamW, SummaryListsGroups) {
  auto cfg = base_config();
  std::vector<NamedParam> ps = {make_param("w", {3, 4}, ParamGroup::Matrix),
                                make_param("b", {4}, ParamGroup::Matrix, false),
                                make_param("ln", {4}, ParamGroup::InputNorm)};
  const auto rows = sv::make_optimizer(cfg, ps)->summary();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].name, "matrix");
  EXPECT_EQ(rows[0].numel, 12);
  EXPECT_EQ(rows[1].name, "matrix/no_decay");
  EXPECT_DOUBLE_EQ(rows[1].weight_decay, 0.0);
  EXPECT_EQ(rows[2].name, "input_norm");
  EXPECT_DOUBLE_EQ(rows[2].lr, cfg.lr * cfg.lr_mult.input_norm);
  EXPECT_NE(sv::format_summary(rows).find("input_norm"), std::string::npos);
}

// ---- Muon ----

TEST(MuonNewtonSchulz, SingularValuesNearOne) {
  at::manual_seed(2);
  for (auto shape : {std::vector<int64_t>{32, 64}, std::vector<int64_t>{64, 32}}) {
    const auto g = at::randn(shape, at::kFloat);
    const auto o = sv::newton_schulz(g, 5);
    ASSERT_EQ(o.sizes(), g.sizes());
    const auto s = at::linalg_svdvals(o);
    EXPECT_GT(s.min().item<double>(), 0.6);
    EXPECT_LT(s.max().item<double>(), 1.2);
    // Same singular vectors as g: close to U V^T from an SVD in float64.
    auto svd = at::linalg_svd(g.to(at::kDouble), /*full_matrices=*/false);
    const auto uvt = at::matmul(std::get<0>(svd), std::get<2>(svd));
    EXPECT_LT((o.to(at::kDouble) - uvt).norm().item<double>() / uvt.norm().item<double>(), 0.3);
  }
}

// Muon update written out with plain ops: Nesterov momentum, textbook quintic iteration.
TEST(Muon, MatchesHandWrittenStep) {
  at::manual_seed(3);
  sv::OptimConfig cfg;
  cfg.name = sv::OptimizerKind::Muon;
  cfg.muon_lr = 0.02;
  cfg.lr_mult.matrix = 1.5;
  cfg.weight_decay.matrix = 0.1;
  std::vector<NamedParam> ps = {make_param("tall", {16, 8}, ParamGroup::Matrix, true, at::kFloat),
                                make_param("wide", {8, 12}, ParamGroup::Matrix, true, at::kFloat)};
  auto ref = clone_params(ps);
  std::vector<at::Tensor> buf = {at::zeros({16, 8}), at::zeros({8, 12})};
  auto opt = sv::make_optimizer(cfg, ps);
  for (int64_t step = 0; step < 3; ++step) {
    set_grads(ps, step);
    opt->step(0.5);
    const double lr = cfg.muon_lr * cfg.lr_mult.matrix * 0.5, mu = cfg.muon_momentum;
    for (size_t i = 0; i < ref.size(); ++i) {
      const auto g = grad_for(ref[i], step, i);
      buf[i] = mu * buf[i] + (1 - mu) * g;
      auto x = (1 - mu) * g + mu * buf[i];
      const bool tall = x.size(0) > x.size(1);
      if (tall) x = x.t();
      x = x / (x.norm() + 1e-7);
      for (int k = 0; k < 5; ++k) {
        const auto a = x.mm(x.t());
        x = 3.4445 * x + (-4.7750) * a.mm(x) + 2.0315 * a.mm(a).mm(x);
      }
      if (tall) x = x.t();
      const double scale =
          std::sqrt(std::max(1.0, double(ref[i].tensor.size(0)) / double(ref[i].tensor.size(1))));
      auto p = ref[i].tensor.detach();
      p.mul_(1 - lr * 0.1).sub_(lr * scale * x);
    }
  }
  for (size_t i = 0; i < ps.size(); ++i)
    EXPECT_TRUE(at::allclose(ps[i].tensor, ref[i].tensor, 0.0, 2e-6)) << ps[i].name;
}

TEST(Muon, ExpertTensorEqualsPerSliceSteps) {
  at::manual_seed(4);
  sv::OptimConfig cfg;
  cfg.name = sv::OptimizerKind::Muon;
  for (auto shape : {std::vector<int64_t>{4, 8, 16}, std::vector<int64_t>{3, 16, 8}}) {
    std::vector<NamedParam> experts = {
        make_param("experts", shape, ParamGroup::Matrix, true, at::kFloat)};
    std::vector<NamedParam> slices;
    for (int64_t e = 0; e < shape[0]; ++e)
      slices.push_back({"slice" + std::to_string(e),
                        experts[0].tensor.detach()[e].clone().requires_grad_(true),
                        ParamGroup::Matrix, true});
    auto opt3 = sv::make_optimizer(cfg, experts);
    auto opt2 = sv::make_optimizer(cfg, slices);
    for (int64_t step = 0; step < 3; ++step) {
      const auto g = grad_for(experts[0], step, 0);
      experts[0].tensor.mutable_grad() = g;
      for (int64_t e = 0; e < shape[0]; ++e) slices[e].tensor.mutable_grad() = g[e].clone();
      opt3->step(1.0);
      opt2->step(1.0);
    }
    for (int64_t e = 0; e < shape[0]; ++e)
      EXPECT_TRUE(at::allclose(experts[0].tensor.detach()[e], slices[e].tensor, 0.0, 1e-6))
          << "slice " << e;
  }
}

TEST(Muon, NonMatrixParamsFollowAdamWExactly) {
  at::manual_seed(5);
  auto cfg = base_config();
  cfg.name = sv::OptimizerKind::Muon;
  std::vector<NamedParam> ps = {make_param("w", {8, 8}, ParamGroup::Matrix),
                                make_param("emb", {10, 8}, ParamGroup::Embedding),
                                make_param("ln", {8}, ParamGroup::InputNorm),
                                make_param("qk", {8}, ParamGroup::OutputNorm, false)};
  std::vector<NamedParam> rest(ps.begin() + 1, ps.end());
  rest = clone_params(rest);
  auto adam_cfg = cfg;
  adam_cfg.name = sv::OptimizerKind::AdamW;
  auto muon = sv::make_optimizer(cfg, ps);
  auto adam = sv::make_optimizer(adam_cfg, rest);
  for (int64_t step = 0; step < 4; ++step) {
    set_grads(ps, step);
    for (size_t i = 0; i < rest.size(); ++i)
      rest[i].tensor.mutable_grad() = ps[i + 1].tensor.grad();
    muon->step(0.7);
    adam->step(0.7);
  }
  for (size_t i = 0; i < rest.size(); ++i)
    EXPECT_TRUE(at::equal(ps[i + 1].tensor, rest[i].tensor)) << rest[i].name;
  const auto rows = muon->summary();
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0].algorithm, "muon");
  EXPECT_EQ(rows.back().algorithm, "adamw");
}

TEST(Muon, RejectsVectorMatrices) {
  sv::OptimConfig cfg;
  cfg.name = sv::OptimizerKind::Muon;
  std::vector<NamedParam> ps = {make_param("bias", {8}, ParamGroup::Matrix)};
  EXPECT_THROW(sv::make_optimizer(cfg, ps), std::runtime_error);
}

// ---- Save / load ----

TEST(OptimSaveLoad, ResumeIsBitIdentical) {
  for (auto kind : {sv::OptimizerKind::AdamW, sv::OptimizerKind::Muon}) {
    at::manual_seed(6);
    auto cfg = base_config();
    cfg.name = kind;
    std::vector<NamedParam> ps = {
        make_param("blocks.0.w", {6, 4}, ParamGroup::Matrix, true, at::kFloat),
        make_param("blocks.0.experts", {2, 4, 6}, ParamGroup::Matrix, true, at::kFloat),
        make_param("emb", {9, 4}, ParamGroup::Embedding, true, at::kFloat),
        make_param("ln", {4}, ParamGroup::InputNorm, true, at::kFloat),
        make_param("qk", {4}, ParamGroup::OutputNorm, false, at::kFloat)};
    auto opt = sv::make_optimizer(cfg, ps);
    auto step = [](sv::Optimizer& o, std::vector<NamedParam>& p, int64_t s) {
      set_grads(p, s);
      if (s == 1) p[3].tensor.mutable_grad().reset();  // step counts differ per parameter
      o.step(1.0 - 0.1 * static_cast<double>(s));
      o.zero_grad();
    };
    for (int64_t s = 0; s < 3; ++s) step(*opt, ps, s);
    auto snapshot = clone_params(ps);
    std::stringstream blob;
    {
      torch::serialize::OutputArchive ar;
      opt->save(ar);
      ar.save_to(blob);
    }
    for (int64_t s = 3; s < 5; ++s) step(*opt, ps, s);

    auto resumed = sv::make_optimizer(cfg, snapshot);
    torch::serialize::InputArchive in;
    in.load_from(blob);
    resumed->load(in);
    for (int64_t s = 3; s < 5; ++s) step(*resumed, snapshot, s);
    for (size_t i = 0; i < ps.size(); ++i)
      EXPECT_TRUE(at::equal(ps[i].tensor, snapshot[i].tensor))
          << sv::to_string(kind) << " " << ps[i].name;

    // Without the state the same two steps give different parameters (the test can fail).
    auto fresh_params = clone_params(snapshot);
    auto fresh = sv::make_optimizer(cfg, fresh_params);
    for (int64_t s = 3; s < 5; ++s) step(*fresh, fresh_params, s);
    EXPECT_FALSE(at::equal(fresh_params[0].tensor, snapshot[0].tensor));
  }
}

TEST(OptimSaveLoad, ShapeMismatchNamesTheParameter) {
  for (auto kind : {sv::OptimizerKind::AdamW, sv::OptimizerKind::Muon}) {
    sv::OptimConfig cfg;
    cfg.name = kind;
    std::vector<NamedParam> a = {make_param("emb", {5, 4}, ParamGroup::Embedding),
                                 make_param("blocks.0.attn.wq", {4, 4}, ParamGroup::Matrix)};
    std::vector<NamedParam> b = {make_param("emb", {5, 4}, ParamGroup::Embedding),
                                 make_param("blocks.0.attn.wq", {4, 5}, ParamGroup::Matrix)};
    std::stringstream blob;
    {
      torch::serialize::OutputArchive ar;
      sv::make_optimizer(cfg, a)->save(ar);
      ar.save_to(blob);
    }
    torch::serialize::InputArchive in;
    in.load_from(blob);
    auto opt = sv::make_optimizer(cfg, b);
    try {
      opt->load(in);
      ADD_FAILURE() << "load accepted a mismatched shape";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("blocks.0.attn.wq"), std::string::npos) << msg;
      EXPECT_NE(msg.find("[4, 4]"), std::string::npos) << msg;
      EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
    }
  }
}

TEST(OptimSaveLoad, KindMismatchThrows) {
  sv::OptimConfig adam;
  auto muon = adam;
  muon.name = sv::OptimizerKind::Muon;
  std::vector<NamedParam> ps = {make_param("w", {4, 4}, ParamGroup::Matrix)};
  std::stringstream blob;
  {
    torch::serialize::OutputArchive ar;
    sv::make_optimizer(adam, ps)->save(ar);
    ar.save_to(blob);
  }
  torch::serialize::InputArchive in;
  in.load_from(blob);
  EXPECT_THROW(sv::make_optimizer(muon, ps)->load(in), std::runtime_error);
}

// ---- Gradient clipping ----

TEST(Clip, NormMatchesHandComputedAndClipsToMax) {
  at::manual_seed(7);
  std::vector<NamedParam> ps = {make_param("a", {5, 7}, ParamGroup::Matrix),
                                make_param("b", {3, 2, 4}, ParamGroup::Matrix),
                                make_param("c", {11}, ParamGroup::InputNorm),
                                make_param("no_grad", {3}, ParamGroup::OutputNorm)};
  for (size_t i = 0; i + 1 < ps.size(); ++i)
    ps[i].tensor.mutable_grad() = at::randn(ps[i].tensor.sizes(), at::kDouble) * 3.0;
  const double ref = hand_norm(ps);

  const auto untouched = clone_params(ps);
  for (size_t i = 0; i + 1 < ps.size(); ++i)
    untouched[i].tensor.mutable_grad() = ps[i].tensor.grad().clone();
  auto norm = sv::clip_grad_norm(ps, 0.0);  // norm only
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_NEAR(norm.item<double>(), ref, 1e-12 * ref);
  for (size_t i = 0; i + 1 < ps.size(); ++i)
    EXPECT_TRUE(at::equal(ps[i].tensor.grad(), untouched[i].tensor.grad()));

  norm = sv::clip_grad_norm(ps, 2.0 * ref);  // under the limit: unchanged
  EXPECT_NEAR(norm.item<double>(), ref, 1e-12 * ref);
  for (size_t i = 0; i + 1 < ps.size(); ++i)
    EXPECT_TRUE(at::equal(ps[i].tensor.grad(), untouched[i].tensor.grad()));

  const double max_norm = 0.25 * ref;
  norm = sv::clip_grad_norm(ps, max_norm);
  EXPECT_NEAR(norm.item<double>(), ref, 1e-12 * ref);  // returns the pre-clip norm
  EXPECT_NEAR(hand_norm(ps), max_norm, 1e-6);
  // Direction is kept: every grad scaled by max_norm / (norm + 1e-6).
  const double coef = max_norm / (ref + 1e-6);
  for (size_t i = 0; i + 1 < ps.size(); ++i)
    EXPECT_TRUE(at::allclose(ps[i].tensor.grad(), untouched[i].tensor.grad() * coef, 1e-12, 0.0));
}

TEST(Clip, Float32GradsAndNoGrads) {
  at::manual_seed(8);
  std::vector<NamedParam> ps = {make_param("a", {64, 32}, ParamGroup::Matrix, true, at::kFloat),
                                make_param("b", {32}, ParamGroup::InputNorm, true, at::kFloat)};
  EXPECT_EQ(sv::clip_grad_norm(ps, 1.0).item<double>(), 0.0);  // no grads at all
  for (auto& p : ps) p.tensor.mutable_grad() = at::randn(p.tensor.sizes());
  const double ref = hand_norm(ps);
  const auto norm = sv::clip_grad_norm(ps, 1.0);
  EXPECT_EQ(norm.scalar_type(), at::kFloat);
  EXPECT_NEAR(norm.item<double>(), ref, 1e-5 * ref);
  EXPECT_NEAR(hand_norm(ps), 1.0, 1e-5);
}

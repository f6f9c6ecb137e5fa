// Norm zoo: exact math in float64, init equivalences, folding, finite-difference gradients,
// parameter counts, role tagging, eps/zero input, dtype handling.
#include <gtest/gtest.h>

#include <torch/csrc/autograd/autograd.h>

#include <functional>
#include <map>

#include "scalevec/norm.h"

using namespace scalevec;

namespace {

constexpr NormVariant kAll[] = {NormVariant::None,   NormVariant::Standard,
                                NormVariant::Branch, NormVariant::Relocated,
                                NormVariant::MagDir, NormVariant::Unified};
const at::TensorOptions f64 = at::TensorOptions().dtype(at::kDouble);

NormOptions opts_for(NormVariant v, ScaleApply apply = ScaleApply::Weight) {
  NormOptions o;
  o.variant = v;
  o.apply = apply;
  return o;
}

std::vector<NormBranch> qkv_branches() {
  return {{"q", 8}, {"k", 4}, {"v", 4}};
}

ScaleNorm make_norm(NormVariant v, ScaleApply apply = ScaleApply::Weight,
                    NormPosition pos = NormPosition::PreAttn) {
  auto branches = role_of(pos) == NormRole::Input ? qkv_branches() : std::vector<NormBranch>{};
  ScaleNorm n(pos, opts_for(v, apply), 8, branches, 2);
  n->to(at::kDouble);
  return n;
}

// Randomize every scale tensor so that the checks below see non-trivial gammas.
void randomize(ScaleNorm& n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  at::NoGradGuard g;
  for (auto& p : n->parameters()) p.copy_(at::rand(p.sizes(), gen, f64) + 0.5);
}

std::vector<at::Tensor> weights(uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return {at::randn({8, 8}, gen, f64), at::randn({4, 8}, gen, f64), at::randn({4, 8}, gen, f64)};
}

at::Tensor manual_rms(const at::Tensor& x, double eps) {
  // Reference computed element by element in double.
  auto out = at::empty_like(x);
  const int64_t rows = x.numel() / x.size(-1), d = x.size(-1);
  auto xf = x.reshape({rows, d});
  auto of = out.view({rows, d});
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += xf[r][j].item<double>() * xf[r][j].item<double>();
    const double inv = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) of[r][j] = xf[r][j].item<double>() * inv;
  }
  return out;
}

}  // namespace

TEST(Norm, RmsNormalizeMatchesManualFormula) {
  auto x = at::randn({3, 5, 8}, f64);
  EXPECT_TRUE(at::allclose(rms_normalize(x, 1e-6), manual_rms(x, 1e-6), 1e-12, 1e-14));
}

TEST(Norm, ZeroInputGivesZeroNotNaN) {
  for (NormVariant v : kAll) {
    auto n = make_norm(v);
    auto x = at::zeros({2, 8}, f64);
    auto y = n->project_all(n->normalize(x), weights(1));
    for (auto& t : y) {
      EXPECT_FALSE(t.isnan().any().item<bool>()) << to_string(v);
      EXPECT_EQ(t.abs().max().item<double>(), 0.0) << to_string(v);
    }
  }
}

TEST(Norm, EpsEntersTheDenominator) {
  auto x = at::full({1, 8}, 1e-3, f64);
  // mean(x^2) = 1e-6; with eps = 1e-6 the result is x / sqrt(2e-6).
  auto y = rms_normalize(x, 1e-6);
  EXPECT_NEAR(y[0][0].item<double>(), 1e-3 / std::sqrt(2e-6), 1e-12);
}

TEST(Norm, EveryVariantAtInitEqualsStandard) {
  auto x = at::randn({4, 8}, f64);
  auto w = weights(2);
  auto ref = make_norm(NormVariant::Standard);
  auto expect = ref->project_all(ref->normalize(x), w);
  for (NormVariant v : kAll) {
    auto n = make_norm(v);
    auto got = n->project_all(n->normalize(x), w);
    for (size_t b = 0; b < w.size(); ++b)
      EXPECT_LT((got[b] - expect[b]).abs().max().item<double>(), 1e-12) << to_string(v);
  }
}

TEST(Norm, NoneEqualsStandardWithUnitGamma) {
  auto x = at::randn({4, 8}, f64);
  auto w = weights(3);
  auto none = make_norm(NormVariant::None);
  auto std_n = make_norm(NormVariant::Standard);
  for (size_t b = 0; b < w.size(); ++b)
    EXPECT_TRUE(at::allclose(none->project(none->normalize(x), b, w[b]),
                             std_n->project(std_n->normalize(x), b, w[b]), 0, 1e-14));
  EXPECT_EQ(none->parameters().size(), 0u);
}

TEST(Norm, WeightAndActivationSidesComputeTheSameFunction) {
  auto x = at::randn({4, 8}, f64);
  auto w = weights(4);
  for (NormVariant v : kAll) {
    auto a = make_norm(v, ScaleApply::Weight);
    auto b = make_norm(v, ScaleApply::Activation);
    randomize(a, 7);
    randomize(b, 7);
    auto ya = a->project_all(a->normalize(x), w);
    auto yb = b->project_all(b->normalize(x), w);
    for (size_t i = 0; i < w.size(); ++i)
      EXPECT_LT((ya[i] - yb[i]).abs().max().item<double>(), 1e-12) << to_string(v);
  }
}

TEST(Norm, BranchScalesAreIndependentPerBranch) {
  auto x = at::randn({4, 8}, f64);
  auto w = weights(5);
  auto n = make_norm(NormVariant::Branch, ScaleApply::Activation);
  randomize(n, 9);
  // Reference: q = W_q (gamma_q * n(x)) with gamma_q read from the module's own parameter.
  auto nx = manual_rms(x, 1e-6);
  for (size_t b = 0; b < w.size(); ++b) {
    auto ref = at::matmul(nx * n->input_scale(b), w[b].t());
    EXPECT_LT((n->project(n->normalize(x), b, w[b]) - ref).abs().max().item<double>(), 1e-12);
  }
  EXPECT_FALSE(at::equal(n->input_scale(0), n->input_scale(1)));
}

TEST(Norm, RelocatedScalesBothSidesOfW) {
  auto x = at::randn({4, 8}, f64);
  auto w = weights(6);
  auto n = make_norm(NormVariant::Relocated);
  randomize(n, 11);
  auto nx = manual_rms(x, 1e-6);
  for (size_t b = 0; b < w.size(); ++b) {
    auto ref = n->output_scale(b) * at::matmul(n->input_scale(b) * nx, w[b].t());
    EXPECT_LT((n->project(n->normalize(x), b, w[b]) - ref).abs().max().item<double>(), 1e-12);
  }
  // gamma_in is shared across branches in `relocated`; gamma_out has each branch's out dim.
  EXPECT_TRUE(at::equal(n->input_scale(0), n->input_scale(2)));
  EXPECT_EQ(n->output_scale(1).size(0), 4);
}

TEST(Norm, PlacementOptionSelectsTheSides) {
  for (auto [placement, in, out] :
       {std::tuple{Placement::Input, true, false}, std::tuple{Placement::Output, false, true},
        std::tuple{Placement::Both, true, true}}) {
    NormOptions o = opts_for(NormVariant::Relocated);
    o.placement = placement;
    ScaleNorm n(NormPosition::PreAttn, o, 8, qkv_branches(), 2);
    EXPECT_EQ(n->input_scale(0).defined(), in);
    EXPECT_EQ(n->output_scale(0).defined(), out);
  }
}

TEST(Norm, MagDirGammaFollowsTheFormula) {
  for (auto shape : {MagnitudeShape::Scalar, MagnitudeShape::PerHead}) {
    NormOptions o = opts_for(NormVariant::MagDir);
    o.magnitude = shape;
    ScaleNorm n(NormPosition::PreAttn, o, 8, qkv_branches(), 2);
    n->to(at::kDouble);
    randomize(n, 13);
    auto params = n->named_parameters();
    auto m = params["scale_in.magnitude"], v = params["scale_in.direction"];
    const int64_t groups = shape == MagnitudeShape::Scalar ? 1 : 2, gd = 8 / groups;
    EXPECT_EQ(m.numel(), groups);
    for (int64_t j = 0; j < 8; ++j) {
      const int64_t g = j / gd;
      double norm = 0;
      for (int64_t i = g * gd; i < (g + 1) * gd; ++i)
        norm += v[i].item<double>() * v[i].item<double>();
      const double expect =
          m[g].item<double>() * std::sqrt(double(gd)) * v[j].item<double>() / std::sqrt(norm);
      EXPECT_NEAR(n->input_scale(0)[j].item<double>(), expect, 1e-12);
    }
  }
}

TEST(Norm, FoldingGammaIntoWeightRemovesIt) {
  // Input-Norm: standard with gamma == none with W' = W diag(gamma).
  auto x = at::randn({4, 8}, f64);
  auto w = weights(8);
  auto s = make_norm(NormVariant::Standard, ScaleApply::Activation);
  randomize(s, 15);
  auto none = make_norm(NormVariant::None);
  const at::Tensor gamma = s->input_scale(0).detach();
  for (size_t b = 0; b < w.size(); ++b) {
    auto folded = w[b] * gamma.unsqueeze(0);
    EXPECT_LT((s->project(s->normalize(x), b, w[b]) - none->project(none->normalize(x), b, folded))
                  .abs()
                  .max()
                  .item<double>(),
              1e-12);
  }
}

TEST(Norm, GradientsMatchFiniteDifferences) {
  for (NormVariant v : kAll) {
    for (NormPosition pos : {NormPosition::PreAttn, NormPosition::Qk}) {
      auto n = make_norm(v, ScaleApply::Weight, pos);
      randomize(n, 17);
      auto x = at::randn({3, 8}, f64).requires_grad_(true);
      auto w = weights(9);
      auto probe = at::randn({3, 16}, f64);
      auto f = [&]() {
        if (role_of(pos) == NormRole::Output) return (n->forward(x) * probe.slice(1, 0, 8)).sum();
        return (at::cat(n->project_all(n->normalize(x), w), -1) * probe).sum();
      };
      std::vector<at::Tensor> inputs = n->parameters();
      inputs.push_back(x);
      auto grads = torch::autograd::grad({f()}, inputs);
      const double h = 1e-6;
      at::NoGradGuard ng;
      for (size_t i = 0; i < inputs.size(); ++i) {
        auto flat = inputs[i].view({-1});
        for (int64_t j = 0; j < flat.numel(); ++j) {
          const double orig = flat[j].item<double>();
          flat[j] = orig + h;
          const double up = f().item<double>();
          flat[j] = orig - h;
          const double down = f().item<double>();
          flat[j] = orig;
          EXPECT_NEAR(grads[i].view({-1})[j].item<double>(), (up - down) / (2 * h), 1e-6)
              << to_string(v) << " at " << to_string(pos) << " input " << i << " elem " << j;
        }
      }
    }
  }
}

TEST(Norm, ParameterCountsPerVariant) {
  // dim 8, branches q(8) k(4) v(4), 2 heads.
  const std::map<NormVariant, int64_t> expect = {
      {NormVariant::None, 0},       {NormVariant::Standard, 8},
      {NormVariant::Branch, 24},    {NormVariant::Relocated, 8 + 16},
      {NormVariant::MagDir, 8 + 1}, {NormVariant::Unified, 3 * (8 + 1) + (8 + 1) + 2 * (4 + 1)}};
  for (auto [v, count] : expect) {
    auto n = make_norm(v);
    int64_t total = 0;
    for (auto& p : n->parameters()) total += p.numel();
    EXPECT_EQ(total, count) << to_string(v);
    EXPECT_EQ(n->scale_numel(), count) << to_string(v);
  }
}

TEST(Norm, RoleTaggingAndMagDirDecayOption) {
  for (NormPosition pos : {NormPosition::PreAttn, NormPosition::PreFfn, NormPosition::Final,
                           NormPosition::Qk, NormPosition::BranchOut}) {
    NormOptions o = opts_for(NormVariant::MagDir);
    o.magdir_decay = MagDirDecay::Direction;
    ScaleNorm n(pos, o, 8,
                role_of(pos) == NormRole::Input ? qkv_branches() : std::vector<NormBranch>{}, 2);
    std::vector<NamedParam> params;
    n->collect("norm", params);
    ASSERT_EQ(params.size(), 2u);
    const ParamGroup want =
        role_of(pos) == NormRole::Input ? ParamGroup::InputNorm : ParamGroup::OutputNorm;
    for (auto& p : params) {
      EXPECT_EQ(p.group, want);
      const bool is_direction = p.name.find("direction") != std::string::npos;
      EXPECT_EQ(p.decay, is_direction) << p.name;
    }
  }
  EXPECT_EQ(role_of(NormPosition::Qk), NormRole::Output);
  EXPECT_EQ(role_of(NormPosition::Final), NormRole::Input);
}

TEST(Norm, Float32AndBfloat16ForwardWithinTolerance) {
  auto x = at::randn({16, 8}, f64);
  auto w = weights(10);
  auto ref_n = make_norm(NormVariant::Unified);
  randomize(ref_n, 19);
  auto ref = at::cat(ref_n->project_all(ref_n->normalize(x), w), -1);
  for (auto [dtype, tol] : {std::pair{at::kFloat, 1e-5}, std::pair{at::kBFloat16, 3e-2}}) {
    auto n = make_norm(NormVariant::Unified);
    randomize(n, 19);
    n->to(dtype);
    std::vector<at::Tensor> wd;
    for (auto& t : w) wd.push_back(t.to(dtype));
    auto y = at::cat(n->project_all(n->normalize(x.to(dtype)), wd), -1);
    EXPECT_EQ(y.scalar_type(), dtype);
    const double rel = ((y.to(at::kDouble) - ref).norm() / ref.norm()).item<double>();
    EXPECT_LT(rel, tol) << dtype;
  }
}

TEST(Norm, ExpertStacksGetPerExpertScalesUnderBranch) {
  NormOptions o = opts_for(NormVariant::Unified);
  ScaleNorm n(NormPosition::PreFfn, o, 8,
              std::vector<NormBranch>{{"router", 3}, {"gate", 5, 3}, {"up", 5, 3}}, 2);
  n->to(at::kDouble);
  randomize(n, 21);
  auto w = at::randn({3, 5, 8}, f64);
  auto sw = n->scaled_weight(1, w);
  for (int64_t e = 0; e < 3; ++e) {
    auto ref = n->output_scale(1)[e].unsqueeze(-1) * w[e] * n->input_scale(1)[e].unsqueeze(0);
    EXPECT_LT((sw[e] - ref).abs().max().item<double>(), 1e-12);
  }
}

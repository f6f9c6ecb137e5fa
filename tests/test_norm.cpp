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
  // gamma = beta * sqrt(d_g) * v / ||v||_g with beta = m (OR) or beta = exp(s) (ER).
  for (auto space : {MagnitudeSpace::Original, MagnitudeSpace::Exp}) {
    for (auto shape : {MagnitudeShape::Scalar, MagnitudeShape::PerHead}) {
      NormOptions o = opts_for(NormVariant::MagDir);
      o.magnitude = shape;
      o.magnitude_space = space;
      ScaleNorm n(NormPosition::PreAttn, o, 8, qkv_branches(), 2);
      n->to(at::kDouble);
      randomize(n, 13);
      auto params = n->named_parameters();
      const bool er = space == MagnitudeSpace::Exp;
      auto m = params[er ? "scale_in.log_magnitude" : "scale_in.magnitude"];
      auto v = params["scale_in.direction"];
      const int64_t groups = shape == MagnitudeShape::Scalar ? 1 : 2, gd = 8 / groups;
      EXPECT_EQ(m.numel(), groups);
      for (int64_t j = 0; j < 8; ++j) {
        const int64_t g = j / gd;
        double norm = 0;
        for (int64_t i = g * gd; i < (g + 1) * gd; ++i)
          norm += v[i].item<double>() * v[i].item<double>();
        const double beta = er ? std::exp(m[g].item<double>()) : m[g].item<double>();
        const double expect = beta * std::sqrt(double(gd)) * v[j].item<double>() / std::sqrt(norm);
        EXPECT_NEAR(n->input_scale(0)[j].item<double>(), expect, 1e-12) << to_string(space);
      }
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

// Autograd gradients of the scalar f() w.r.t. each of `inputs` against central differences.
void expect_gradients_match_fd(const std::function<at::Tensor()>& f,
                               const std::vector<at::Tensor>& inputs, const std::string& label) {
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
          << label << " input " << i << " elem " << j;
    }
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
      expect_gradients_match_fd(f, inputs, std::string(to_string(v)) + " at " + to_string(pos));
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
  o.placement_form = PlacementForm::Dp;  // DP: both sides fold into each expert's weight
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

// ---------------------------------------------------------------- DNP and ER (the paper's forms)

namespace {

NormOptions dnp_opts(NormVariant v = NormVariant::Relocated,
                     ScaleApply apply = ScaleApply::Weight) {
  NormOptions o = opts_for(v, apply);
  o.placement_form = PlacementForm::Dnp;
  return o;
}

// A dense pre-FFN norm: dim 8, gate and up of width 6.
ScaleNorm make_ffn_norm(const NormOptions& o) {
  ScaleNorm n(NormPosition::PreFfn, o, 8, std::vector<NormBranch>{{"gate", 6}, {"up", 6}}, 2);
  n->to(at::kDouble);
  return n;
}

std::vector<at::Tensor> ffn_weights(uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return {at::randn({6, 8}, gen, f64), at::randn({6, 8}, gen, f64)};
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST(Norm, DnpFollowsItsFormula) {
  // y_b = g_out_b * Norm(W_b (g_in_b * n(x))), every piece computed by hand in float64.
  auto x = at::randn({5, 8}, f64);
  auto w = ffn_weights(31);
  for (ScaleApply apply : {ScaleApply::Weight, ScaleApply::Activation}) {
    auto n = make_ffn_norm(dnp_opts(NormVariant::Relocated, apply));
    randomize(n, 33);
    const auto all = n->project_all(n->normalize(x), w);
    for (size_t b = 0; b < w.size(); ++b) {
      ASSERT_TRUE(n->is_dnp(b));
      const auto inner = at::matmul(manual_rms(x, 1e-6) * n->input_scale(b), w[b].t());
      const auto ref = n->output_scale(b) * manual_rms(inner, 1e-6);
      EXPECT_LT(max_abs_diff(n->project(n->normalize(x), b, w[b]), ref), 1e-12) << to_string(apply);
      EXPECT_LT(max_abs_diff(all[b], ref), 1e-12) << to_string(apply);
    }
  }
}

TEST(Norm, DnpAtInitIsTheNormalizedStandardOutputNotStandard) {
  // DNP adds a normalization: at init (all vectors 1) it is Norm(standard's output), which is
  // not standard's output.
  auto x = at::randn({5, 8}, f64);
  auto w = ffn_weights(35);
  auto dnp = make_ffn_norm(dnp_opts());
  auto standard = make_ffn_norm(opts_for(NormVariant::Standard));
  for (size_t b = 0; b < w.size(); ++b) {
    const auto s = standard->project(standard->normalize(x), b, w[b]);
    const auto d = dnp->project(dnp->normalize(x), b, w[b]);
    EXPECT_LT(max_abs_diff(d, manual_rms(s, 1e-6)), 1e-12);
    EXPECT_GT(max_abs_diff(d, s), 1e-3);
  }
}

TEST(Norm, DnpInputSideFoldsIntoW) {
  // The input-side vector of a DNP branch still folds: Norm(W (g_in * n)) = Norm((W diag g_in) n).
  auto x = at::randn({5, 8}, f64);
  auto w = ffn_weights(37);
  NormOptions o = dnp_opts();
  o.placement = Placement::Input;
  auto scaled = make_ffn_norm(o);
  randomize(scaled, 39);
  NormOptions plain = dnp_opts();
  plain.placement = Placement::Input;
  plain.gamma_init = 1.0;
  auto unit = make_ffn_norm(plain);
  for (size_t b = 0; b < w.size(); ++b) {
    const auto folded = w[b] * scaled->input_scale(b).detach().unsqueeze(0);
    EXPECT_LT(max_abs_diff(scaled->project(scaled->normalize(x), b, w[b]),
                           unit->project(unit->normalize(x), b, folded)),
              1e-12);
    EXPECT_FALSE(scaled->output_scale(b).defined());
  }
}

TEST(Norm, DnpOnExpertStacksNormalizesEachExpert) {
  NormOptions o = dnp_opts(NormVariant::Unified);
  ScaleNorm n(NormPosition::PreFfn, o, 8,
              std::vector<NormBranch>{{"router", 3, 1, false}, {"gate", 5, 3}, {"up", 5, 3}}, 2);
  n->to(at::kDouble);
  randomize(n, 41);
  EXPECT_FALSE(n->is_dnp(0));  // router logits keep DP
  EXPECT_TRUE(n->is_dnp(1));
  auto x = at::randn({4, 8}, f64);
  auto w = at::randn({3, 5, 8}, f64);
  const auto nx = n->normalize(x);
  const auto stacked = n->project(nx, 1, w);  // [3, 4, 5]
  const auto sw = n->scaled_weight(1, w);
  for (int64_t e = 0; e < 3; ++e) {
    const auto inner = at::matmul(manual_rms(x, 1e-6) * n->input_scale(1)[e], w[e].t());
    const auto ref = n->output_scale(1)[e] * manual_rms(inner, 1e-6);
    EXPECT_LT(max_abs_diff(stacked[e], ref), 1e-12) << e;
    // The per-expert path the MoE layer takes: matmul with the folded weight, then after_matmul.
    EXPECT_LT(max_abs_diff(n->after_matmul(1, at::matmul(nx, sw[e].t()), e), ref), 1e-12) << e;
  }
}

TEST(Norm, UnifiedPlacementDefaultsToDnpOnTheFfnAndDpElsewhere) {
  auto ffn_branches = std::vector<NormBranch>{{"gate", 6}, {"up", 6}};
  ScaleNorm unified_ffn(NormPosition::PreFfn, opts_for(NormVariant::Unified), 8, ffn_branches, 2);
  EXPECT_TRUE(unified_ffn->is_dnp(0) && unified_ffn->is_dnp(1));
  EXPECT_EQ(unified_ffn->parts(), "HG DNP[gate,up] OR");
  ScaleNorm unified_attn(NormPosition::PreAttn, opts_for(NormVariant::Unified), 8, qkv_branches(),
                         2);
  EXPECT_EQ(unified_attn->parts(), "HG DP[q,k,v] OR");
  ScaleNorm relocated_ffn(NormPosition::PreFfn, opts_for(NormVariant::Relocated), 8, ffn_branches,
                          2);
  EXPECT_EQ(relocated_ffn->parts(), "DP[gate,up]");
  NormOptions dp_only = opts_for(NormVariant::Unified);
  dp_only.placement_form = PlacementForm::Dp;  // the earlier DP-only unified
  ScaleNorm unified_dp(NormPosition::PreFfn, dp_only, 8, ffn_branches, 2);
  EXPECT_EQ(unified_dp->parts(), "HG DP[gate,up] OR");
  NormOptions er = opts_for(NormVariant::MagDir);
  er.magnitude_space = MagnitudeSpace::Exp;
  ScaleNorm magdir_er(NormPosition::PreAttn, er, 8, qkv_branches(), 2);
  EXPECT_EQ(magdir_er->parts(), "ER");
  EXPECT_EQ(make_norm(NormVariant::None)->parts(), "-");
  EXPECT_EQ(make_norm(NormVariant::Standard)->parts(), "plain");
}

TEST(Norm, ExpSpaceMagnitudeStartsAtGammaInitAndDecaysLikeOr) {
  // ER learns s = log(beta) (the formula itself: MagDirGammaFollowsTheFormula).
  NormOptions o = opts_for(NormVariant::MagDir);
  o.magnitude_space = MagnitudeSpace::Exp;
  o.gamma_init = 0.7;
  ScaleNorm n(NormPosition::PreAttn, o, 8, qkv_branches(), 2);
  EXPECT_LT((n->input_scale(0) - 0.7).abs().max().item<double>(), 1e-7);
  auto params = n->named_parameters();
  EXPECT_TRUE(params.contains("scale_in.log_magnitude"));
  EXPECT_FALSE(params.contains("scale_in.magnitude"));
  // Its decay follows magdir_decay like OR's magnitude (here: the magnitude part).
  std::vector<NamedParam> tagged;
  n->collect("norm", tagged);
  ASSERT_EQ(tagged.size(), 2u);
  for (const auto& p : tagged)
    EXPECT_EQ(p.decay, p.name.find("log_magnitude") != std::string::npos) << p.name;
}

TEST(Norm, DnpAndErGradientsMatchFiniteDifferences) {
  auto x = at::randn({3, 8}, f64).requires_grad_(true);
  auto probe = at::randn({3, 12}, f64);
  auto w = ffn_weights(45);
  NormOptions unified_er = opts_for(NormVariant::Unified);
  unified_er.magnitude_space = MagnitudeSpace::Exp;
  for (const auto& [label, o] :
       {std::pair{"relocated dnp", dnp_opts()},
        std::pair{"relocated dnp activation",
                  dnp_opts(NormVariant::Relocated, ScaleApply::Activation)},
        std::pair{"unified (dnp) er", unified_er}}) {
    auto n = make_ffn_norm(o);
    randomize(n, 47);
    auto f = [&]() { return (at::cat(n->project_all(n->normalize(x), w), -1) * probe).sum(); };
    std::vector<at::Tensor> inputs = n->parameters();
    inputs.push_back(x);
    expect_gradients_match_fd(f, inputs, label);
  }
  // Expert stacks: per-expert vectors on both sides of the inner normalization.
  ScaleNorm moe(NormPosition::PreFfn, dnp_opts(NormVariant::Unified), 8,
                std::vector<NormBranch>{{"gate", 3, 2}}, 2);
  moe->to(at::kDouble);
  randomize(moe, 49);
  auto we = at::randn({2, 3, 8}, f64);
  auto probe_e = at::randn({2, 3, 3}, f64);
  std::vector<at::Tensor> inputs = moe->parameters();
  inputs.push_back(x);
  expect_gradients_match_fd(
      [&]() { return (moe->project(moe->normalize(x), 0, we) * probe_e).sum(); }, inputs,
      "unified dnp expert stack");
}

TEST(Norm, DnpAndErKeepTheParameterCounts) {
  // DNP adds a normalization, not parameters; ER swaps m for s one for one.
  const auto ffn_branches = std::vector<NormBranch>{{"gate", 6}, {"up", 6}};
  for (NormVariant v : {NormVariant::Relocated, NormVariant::Unified}) {
    for (MagnitudeSpace space : {MagnitudeSpace::Original, MagnitudeSpace::Exp}) {
      NormOptions dp = opts_for(v), dnp = opts_for(v);
      dp.placement_form = PlacementForm::Dp;
      dnp.placement_form = PlacementForm::Dnp;
      dp.magnitude_space = dnp.magnitude_space = space;
      ScaleNorm a(NormPosition::PreFfn, dp, 8, ffn_branches, 2);
      ScaleNorm b(NormPosition::PreFfn, dnp, 8, ffn_branches, 2);
      // Hand count: relocated = shared in (8) + out per branch (6 + 6); unified = per-branch
      // in (8 + 1 each) + out (6 + 1 each), magnitudes scalar.
      const int64_t expect = v == NormVariant::Relocated ? 8 + 12 : 2 * (8 + 1) + 2 * (6 + 1);
      EXPECT_EQ(a->scale_numel(), expect) << to_string(v);
      EXPECT_EQ(b->scale_numel(), expect) << to_string(v);
      EXPECT_EQ(scale_numel_of(NormPosition::PreFfn, dnp, 8, ffn_branches, 2), expect);
    }
  }
}

// Models: causal masking, attention kernels, MoE routing invariants, dense == 1-expert MoE,
// seed determinism, parameter tagging per role.
#include <gtest/gtest.h>

#include "scalevec/compat.h"
#include "scalevec/config_io.h"
#include "scalevec/model.h"

using namespace scalevec;

namespace {

ModelConfig tiny(bool moe = false) {
  ModelConfig c;
  c.vocab_size = 64;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.max_seq_len = 16;
  c.qk_norm = true;
  c.branch_out_norm = true;
  c.moe.enabled = moe;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  return c;
}

at::Tensor tokens(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randint(V, {B, T}, gen, at::kLong);
}

}  // namespace

TEST(Model, FutureTokensDoNotChangePastLogits) {
  for (bool moe : {false, true}) {
    auto cfg = tiny(moe);
    cfg.moe.capacity_factor = 0;  // capacity drops would couple tokens across positions
    Transformer m(cfg, 1);
    m->to(at::kDouble);
    auto a = tokens(2, 12, 64, 3);
    auto b = a.clone();
    b.slice(1, 8, 12).fill_(5);
    auto la = m->forward(a), lb = m->forward(b);
    EXPECT_LT((la.slice(1, 0, 8) - lb.slice(1, 0, 8)).abs().max().item<double>(), 1e-12) << moe;
    EXPECT_GT((la.slice(1, 8, 12) - lb.slice(1, 8, 12)).abs().max().item<double>(), 1e-6) << moe;
  }
}

TEST(Model, MathAttentionMatchesManualSoftmax) {
  auto q = at::randn({1, 2, 5, 4}, at::kDouble), k = at::randn({1, 2, 5, 4}, at::kDouble),
       v = at::randn({1, 2, 5, 4}, at::kDouble);
  auto out = causal_attention_math(q, k, v);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t t = 0; t < 5; ++t) {
      auto s = at::matmul(k[0][h].slice(0, 0, t + 1), q[0][h][t]) / 2.0;  // sqrt(4) = 2
      auto p = at::softmax(s, 0);
      auto ref = at::matmul(p, v[0][h].slice(0, 0, t + 1));
      EXPECT_LT((out[0][h][t] - ref).abs().max().item<double>(), 1e-12);
    }
}

TEST(Model, FusedAttentionMatchesMathWhereAvailable) {
  if (!compat::kHasFusedSdpa) GTEST_SKIP() << "this LibTorch has no fused SDPA";
  auto q = at::randn({2, 4, 16, 8}), k = at::randn({2, 4, 16, 8}), v = at::randn({2, 4, 16, 8});
  EXPECT_TRUE(at::allclose(causal_attention(q, k, v, AttentionKernel::Fused),
                           causal_attention_math(q, k, v), 1e-4, 1e-5));
}

TEST(Model, GroupedQueryAttentionRuns) {
  auto cfg = tiny();
  cfg.n_kv_heads = 2;
  Transformer m(cfg, 1);
  EXPECT_EQ(m->blocks[0]->as<BlockImpl>()->attn->wk.size(0), 2 * cfg.head_dim());
  auto logits = m->forward(tokens(2, 8, 64, 1));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 8, 64}));
}

TEST(Model, SameSeedSameModelDifferentSeedDifferent) {
  Transformer a(tiny(true), 7), b(tiny(true), 7), c(tiny(true), 8);
  auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  bool any_diff = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(at::equal(pa[i], pb[i]));
    any_diff = any_diff || !at::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(any_diff);
}

TEST(Model, MoeEachTokenGetsExactlyKDistinctExperts) {
  auto cfg = tiny(true);
  Transformer m(cfg, 2);
  m->forward(tokens(3, 10, 64, 4));
  const auto& st = m->blocks[0]->as<BlockImpl>()->moe->last_stats();
  ASSERT_EQ(st.expert_index.sizes(), (std::vector<int64_t>{30, 2}));
  EXPECT_TRUE((st.expert_index.select(1, 0) != st.expert_index.select(1, 1)).all().item<bool>());
  EXPECT_TRUE(at::allclose(st.expert_weight.sum(-1), at::ones({30})));
  EXPECT_EQ(st.dropped.item<int64_t>(), 0);
}

TEST(Model, MoeLoadBalanceLossOnAHandComputedCase) {
  // 2 experts, top-1, router weights chosen so token 0 -> expert 0 (p = [a, 1-a]) etc.
  ModelConfig cfg = tiny(true);
  cfg.d_model = 4;
  cfg.n_heads = 2;
  cfg.moe.num_experts = 2;
  cfg.moe.top_k = 1;
  cfg.norm.pre_ffn.variant = NormVariant::None;
  cfg.norm.pre_ffn.eps = 1e-14;  // keeps n(x) exactly the hand-picked rows below
  Moe moe(cfg);
  moe->to(at::kDouble);
  {
    at::NoGradGuard g;
    moe->w_router.copy_(
        at::tensor(std::vector<double>{1, 0, 0, 0, 0, 1, 0, 0}, at::kDouble).view({2, 4}));
    for (auto* w : {&moe->w_gate, &moe->w_up, &moe->w_down}) w->normal_();
  }
  // n(x) of [2, 0, 0, 0] is [2, 0, 0, 0]; of [0, 2, 0, 0] is [0, 2, 0, 0]; of [1,1,1,1] is itself.
  auto x = at::tensor(std::vector<double>{2, 0, 0, 0, 0, 2, 0, 0, 1, 1, 1, 1}, at::kDouble)
               .view({1, 3, 4});
  moe->forward(x);
  const auto& st = moe->last_stats();
  auto p0 = at::softmax(at::tensor(std::vector<double>{2, 0}, at::kDouble), 0);
  auto p1 = at::softmax(at::tensor(std::vector<double>{0, 2}, at::kDouble), 0);
  auto p2 = at::softmax(at::tensor(std::vector<double>{1, 1}, at::kDouble), 0);
  const double P0 = (p0[0] + p1[0] + p2[0]).item<double>() / 3;
  const double P1 = (p0[1] + p1[1] + p2[1]).item<double>() / 3;
  // Assignments: t0 -> 0, t1 -> 1, t2 -> tie (topk picks index 0): f = [2/3, 1/3].
  const double expect = 2 * (2.0 / 3 * P0 + 1.0 / 3 * P1);
  EXPECT_NEAR(st.load_balance.item<double>(), expect, 1e-6);
  const double z =
      (std::pow(std::log(std::exp(2.0) + 1), 2) * 2 + std::pow(std::log(2 * std::exp(1.0)), 2)) / 3;
  EXPECT_NEAR(st.z_loss.item<double>(), z, 1e-6);
}

TEST(Model, MoeCapacityDropsOverflowingAssignments) {
  auto cfg = tiny(true);
  cfg.moe.capacity_factor = 0.5;
  Transformer m(cfg, 2);
  m->forward(tokens(2, 16, 64, 4));
  const auto& st = m->blocks[0]->as<BlockImpl>()->moe->last_stats();
  // capacity = ceil(0.5 * 32 * 2 / 4) = 8 per expert, 64 assignments: at least 32 dropped.
  EXPECT_GE(st.dropped.item<int64_t>(), 32);
}

TEST(Model, DenseEqualsMoeWithOneExpertTopOne) {
  for (NormVariant v : {NormVariant::Standard, NormVariant::Unified}) {
    auto dcfg = tiny(false);
    dcfg.norm.pre_ffn.variant = v;
    auto mcfg = dcfg;
    mcfg.moe.enabled = true;
    mcfg.moe.num_experts = 1;
    mcfg.moe.top_k = 1;
    Transformer dense(dcfg, 3), moe(mcfg, 3);
    dense->to(at::kDouble);
    moe->to(at::kDouble);
    {
      at::NoGradGuard g;
      auto dp = dense->named_parameters(), mp = moe->named_parameters();
      for (auto& item : dp) {
        if (mp.contains(item.key())) mp[item.key()].copy_(item.value());
      }
      for (size_t i = 0; i < dense->blocks->size(); ++i) {
        auto* db = dense->blocks[i]->as<BlockImpl>();
        auto* mb = moe->blocks[i]->as<BlockImpl>();
        mb->moe->w_gate.copy_(db->mlp->w_gate.unsqueeze(0));
        mb->moe->w_up.copy_(db->mlp->w_up.unsqueeze(0));
        mb->moe->w_down.copy_(db->mlp->w_down.unsqueeze(0));
        // Non-trivial pre-FFN scale vectors, the same in both (unified: DNP on gate and up, so
        // this checks the MoE's per-expert normalization and output vectors too).
        auto dn = db->mlp->norm->named_parameters();
        auto mn = mb->moe->norm->named_parameters();
        for (auto& item : dn) {
          item.value().uniform_(0.5, 1.5);
          ASSERT_TRUE(mn.contains(item.key())) << item.key();
          mn[item.key()].copy_(item.value().reshape(mn[item.key()].sizes()));
        }
      }
    }
    auto t = tokens(2, 8, 64, 5);
    EXPECT_LT((dense->forward(t) - moe->forward(t)).abs().max().item<double>(), 1e-10)
        << to_string(v);
  }
}

TEST(Model, RouterReceivesGradient) {
  Transformer m(tiny(true), 4);
  auto t = tokens(2, 8, 64, 6);
  m->loss(t, t).loss.backward();
  auto g = m->blocks[0]->as<BlockImpl>()->moe->w_router.grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().sum().item<double>(), 0);
}

TEST(Model, ParamsAreTaggedByRoleNotByName) {
  for (bool moe : {false, true}) {
    auto cfg = tiny(moe);
    cfg.norm = NormConfig{};
    for (NormPosition p : {NormPosition::PreAttn, NormPosition::PreFfn, NormPosition::Qk,
                           NormPosition::Final, NormPosition::BranchOut})
      cfg.norm.at(p).variant = NormVariant::Unified;
    Transformer m(cfg, 1);
    std::map<ParamGroup, int64_t> numel;
    int64_t total = 0;
    for (const auto& p : m->named_params()) {
      numel[p.group] += p.tensor.numel();
      total += p.tensor.numel();
    }
    EXPECT_EQ(total, m->num_params());
    EXPECT_EQ(numel[ParamGroup::Embedding], 64 * 32);
    // Output-Norms: q_norm, k_norm (head dim 8, magdir: 8 + 1 each) and two branch-out norms
    // (32 + 1 each) per layer.
    EXPECT_EQ(numel[ParamGroup::OutputNorm], 2 * (2 * 9 + 2 * 33));
    int64_t input_norm = 0;
    for (const auto& [name, n] : m->norms())
      if (n->role() == NormRole::Input) input_norm += n->scale_numel();
    EXPECT_EQ(numel[ParamGroup::InputNorm], input_norm);
    EXPECT_GT(input_norm, 0);
  }
}

TEST(Model, ShapeAndConfigErrorsAreClear) {
  Transformer m(tiny(), 1);
  EXPECT_THROW(m->forward(at::zeros({2, 17}, at::kLong)), c10::Error);
  EXPECT_THROW(m->forward(at::zeros({17}, at::kLong)), c10::Error);
  try {
    load_config_string("model: {d_model: 30, n_heads: 4}");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by model.n_heads"), std::string::npos)
        << e.what();
  }
}

TEST(Model, FlopsCounterUsesActiveParams) {
  auto dcfg = tiny(false);
  Transformer dense(dcfg, 1);
  EXPECT_DOUBLE_EQ(dense->flops_per_token(16),
                   6.0 * dense->active_matmul_params() + 12.0 * 2 * 32 * 16);
  EXPECT_EQ(dense->active_matmul_params(), dense->num_params());  // tied: embedding counted once
  auto mcfg = tiny(true);
  Transformer moe(mcfg, 1);
  const int64_t expert_params = 2 * 3 * 4 * 32 * mcfg.ffn_dim();  // layers * mats * E * C * F
  EXPECT_EQ(moe->num_params() - moe->active_matmul_params(), expert_params / 2);  // top-2 of 4
}

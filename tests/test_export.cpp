// Hugging Face export and import: every variant, dense and MoE, folds into a standard model with
// the same logits (float64, 1e-10 relative), survives export -> import, and what does not fold
// is refused naming its key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "scalevec/checkpoint.h"
#include "scalevec/config_io.h"
#include "scalevec/hf_format.h"
#include "scalevec/json.h"
#include "scalevec/manifest.h"
#include "scalevec/trainer.h"
#include "test_util.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

struct Case {
  std::string name;
  NormVariant variant;
  bool moe = false;
  bool qk_norm = false;
  bool tied = true;
  Placement placement = Placement::Both;
  MagnitudeSpace space = MagnitudeSpace::Original;
  MagnitudeShape magnitude = MagnitudeShape::Scalar;
  ScaleApply apply = ScaleApply::Weight;
};

// ctest lists the parameter by name, not as bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

ModelConfig model_config(const Case& c) {
  ModelConfig m;
  m.vocab_size = 61;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;  // grouped-query attention: k_proj has its own head count
  m.max_seq_len = 16;
  m.qk_norm = c.qk_norm;
  m.tie_embeddings = c.tied;
  m.moe.enabled = c.moe;
  m.moe.num_experts = 4;
  m.moe.top_k = 2;
  for (NormPosition p : kNormPositions) {
    NormOptions& o = m.norm.at(p);
    o.variant = c.variant;
    o.placement = c.placement;
    o.placement_form = PlacementForm::Dp;  // DNP does not fold (tested below)
    o.magnitude_space = c.space;
    o.magnitude = c.magnitude;
    o.apply = c.apply;
  }
  return m;
}

// A float64 model whose scale vectors are far from their init, as after training.
Transformer trained_like(const ModelConfig& cfg, uint64_t seed) {
  Transformer m(cfg, seed);
  m->to(at::kDouble);
  auto gen = at::detail::createCPUGenerator(seed + 1);
  at::NoGradGuard no_grad;
  for (const auto& p : m->named_params())
    if (p.group == ParamGroup::InputNorm || p.group == ParamGroup::OutputNorm)
      p.tensor.copy_(1.0 + 0.4 * at::randn(p.tensor.sizes(), gen, at::kDouble));
  return m;
}

at::Tensor tokens_for(const ModelConfig& cfg) {
  auto gen = at::detail::createCPUGenerator(99);
  return at::randint(cfg.vocab_size, {3, cfg.max_seq_len}, gen, at::kLong);
}

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (bool moe : {false, true})
    for (bool qk : {false, true}) {
      const std::string arch = std::string(moe ? "moe" : "dense") + (qk ? "_qk" : "");
      out.push_back({arch + "_none", NormVariant::None, moe, qk});
      out.push_back({arch + "_standard", NormVariant::Standard, moe, qk});
      out.push_back({arch + "_branch", NormVariant::Branch, moe, qk});
      out.push_back({arch + "_relocated", NormVariant::Relocated, moe, qk});
      out.push_back({arch + "_magdir", NormVariant::MagDir, moe, qk});
      out.push_back({arch + "_unified_dp", NormVariant::Unified, moe, qk});
    }
  out.push_back({"dense_relocated_input_untied", NormVariant::Relocated, false, true, false,
                 Placement::Input});
  out.push_back(
      {"dense_relocated_output", NormVariant::Relocated, false, false, true, Placement::Output});
  out.push_back({"moe_unified_er_per_head", NormVariant::Unified, true, true, true, Placement::Both,
                 MagnitudeSpace::Exp, MagnitudeShape::PerHead});
  out.push_back({"dense_branch_activation_side", NormVariant::Branch, false, true, true,
                 Placement::Both, MagnitudeSpace::Original, MagnitudeShape::Scalar,
                 ScaleApply::Activation});
  return out;
}

class HfExport : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("scalevec_hf_" + std::to_string(::getpid()) + "_" +
                                       std::to_string(reinterpret_cast<uintptr_t>(this) % 100000));
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

}  // namespace

TEST_P(HfExport, FoldedExportedAndImportedModelsGiveTheTrainedLogits) {
  const Case c = GetParam();
  const ModelConfig cfg = model_config(c);
  Transformer trained = trained_like(cfg, 5);
  trained->set_reference_kernels(true);
  const at::Tensor tokens = tokens_for(cfg);
  at::NoGradGuard no_grad;
  const at::Tensor expect = trained->forward(tokens);

  std::vector<std::string> notes;
  Transformer folded = fold_to_standard(*trained, &notes);
  EXPECT_LT(rel_diff(folded->forward(tokens), expect), 1e-10) << "fold_to_standard";
  const bool untied = cfg.tie_embeddings && !folded->config().tie_embeddings;
  EXPECT_EQ(notes.size(), trained->norms().size() + (untied ? 1 : 0));

  HfExportOptions opts;
  opts.out_dir = (dir / "hf").string();
  opts.dtype = at::kDouble;
  opts.max_shard_bytes = 40'000;  // several shards and the index
  const HfExportReport report = export_hf(*trained, opts);
  EXPECT_EQ(report.arch, hf_arch_for(cfg));
  EXPECT_TRUE(fs::exists(dir / "hf" / "model.safetensors.index.json"));

  const HfModelSpec spec = read_hf_spec(opts.out_dir);
  EXPECT_EQ(spec.arch, report.arch);
  EXPECT_TRUE(hf_load_mismatches(standard_config_for(*trained), spec, opts.out_dir).empty());
  Transformer imported(spec.model, 77);  // other random weights: all must be overwritten
  imported->to(at::kDouble);
  load_hf_weights(opts.out_dir, *imported);
  EXPECT_LT(rel_diff(imported->forward(tokens), expect), 1e-10) << "export + import";
}

INSTANTIATE_TEST_SUITE_P(Variants, HfExport, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

TEST(HfExportNames, TensorsCarryTransformersNamesAndAStandardModelExportsBitExactly) {
  Case c{"qwen3moe", NormVariant::Standard, true, true, false};
  const ModelConfig cfg = model_config(c);
  Transformer m(cfg, 3);
  const NamedTensors t = hf_tensors(*m, HfArch::Qwen3Moe, at::kFloat);
  std::map<std::string, at::Tensor> by_name(t.begin(), t.end());
  for (const char* n :
       {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
        "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
        "model.layers.0.self_attn.q_norm.weight", "model.layers.0.mlp.gate.weight",
        "model.layers.0.mlp.experts.3.down_proj.weight"})
    EXPECT_TRUE(by_name.count(n)) << n;
  // embeddings, final norm, LM head + 2 layers x (2 norms, 4 projections, 2 QK-norms, router,
  // 4 experts x 3)
  EXPECT_EQ(t.size(), 3u + 2u * (2 + 4 + 2 + 1 + 12));
  // Unpermuted tensors are the parameters, bit for bit; q_proj rows are a permutation per head.
  EXPECT_TRUE(at::equal(by_name["model.layers.0.mlp.experts.2.up_proj.weight"],
                        m->blocks[0]->as<BlockImpl>()->moe->w_up[2]));
  const at::Tensor wq = m->blocks[0]->as<BlockImpl>()->attn->wq;
  const at::Tensor q = by_name["model.layers.0.self_attn.q_proj.weight"];
  const int64_t d = cfg.head_dim();
  for (int64_t h = 0; h < cfg.n_heads; ++h)
    for (int64_t i = 0; i < d / 2; ++i) {
      EXPECT_TRUE(at::equal(q[h * d + i], wq[h * d + 2 * i]));
      EXPECT_TRUE(at::equal(q[h * d + d / 2 + i], wq[h * d + 2 * i + 1]));
    }
  // Mixtral names for the same experts.
  const NamedTensors mx = hf_tensors(*m, HfArch::Mixtral, at::kBFloat16);
  std::map<std::string, at::Tensor> mx_names(mx.begin(), mx.end());
  EXPECT_TRUE(mx_names.count("model.layers.1.block_sparse_moe.experts.0.w2.weight"));
  EXPECT_EQ(mx_names["model.layers.1.block_sparse_moe.gate.weight"].scalar_type(), at::kBFloat16);
}

TEST(HfExportConfig, ConfigJsonReadsBackAsTheSameModel) {
  for (bool moe : {false, true})
    for (bool qk : {false, true}) {
      ModelConfig cfg = model_config({"x", NormVariant::Standard, moe, qk, !moe});
      cfg.rope_theta = 500000;
      cfg.norm = NormConfig{};
      for (NormPosition p : kNormPositions) cfg.norm.at(p).eps = 1e-5;
      const HfArch arch = hf_arch_for(cfg);
      const std::string json = hf_config_json(cfg, arch, at::kBFloat16);
      const HfModelSpec spec = model_config_from_hf(json, "config.json");
      EXPECT_EQ(spec.arch, arch);
      EXPECT_TRUE(hf_load_mismatches(cfg, spec, "d").empty()) << json;
      EXPECT_NE(json.find("\"rms_norm_eps\": 1e-05"), std::string::npos) << json;
      EXPECT_NE(json.find("\"torch_dtype\": \"bfloat16\""), std::string::npos);
    }
}

TEST(HfExportConfig, ForeignConfigsAreRefusedNamingTheKey) {
  ModelConfig cfg = model_config({"x", NormVariant::Standard});
  const std::string good = hf_config_json(cfg, HfArch::Llama, at::kFloat);
  auto refused = [&](const std::string& from, const std::string& to, const std::string& needle) {
    std::string json = good;
    const auto at = json.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    json.replace(at, from.size(), to);
    try {
      model_config_from_hf(json, "config.json");
      FAIL() << "accepted " << to;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused("\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}",
          "rope_scaling");
  refused("\"attention_bias\": false", "\"attention_bias\": true", "attention_bias");
  refused("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act");
  refused("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"", "model_type \"gpt2\"");
  refused("\"head_dim\": 8", "\"head_dim\": 16", "head_dim");
  refused("\"vocab_size\": 61,", "", "missing key \"vocab_size\"");
}

TEST(HfExportRefusals, WhatDoesNotFoldIsRefusedNamingItsKey) {
  auto blockers_of = [](const ModelConfig& m) {
    std::string all;
    for (const auto& b : hf_export_blockers(m)) all += b + "\n";
    return all;
  };
  ModelConfig unified = model_config({"u", NormVariant::Unified, false, true});
  for (NormPosition p : kNormPositions)
    unified.norm.at(p).placement_form = PlacementForm::Auto;  // the paper's: DNP at pre_ffn
  EXPECT_NE(blockers_of(unified).find("model.norm.pre_ffn.placement_form is dnp"),
            std::string::npos);
  EXPECT_EQ(blockers_of(unified).find("pre_attn.placement_form"), std::string::npos);
  Transformer m(unified, 1);
  try {
    fold_to_standard(*m);
    FAIL() << "folded a DNP branch";
  } catch (const ExportError& e) {
    EXPECT_NE(std::string(e.what()).find("placement_form=dp"), std::string::npos) << e.what();
  }
  ModelConfig c = model_config({"s", NormVariant::Standard, true});
  c.branch_out_norm = true;
  c.moe.shared_expert = true;
  c.moe.capacity_factor = 1.25;
  c.norm.final.eps = 1e-5;
  const std::string b = blockers_of(c);
  for (const char* key : {"model.branch_out_norm", "model.moe.shared_expert",
                          "model.moe.capacity_factor = 1.25", "model.norm.final.eps = 1e-05"})
    EXPECT_NE(b.find(key), std::string::npos) << key << " in:\n" << b;
  Transformer blocked(c, 1);
  HfExportOptions opts;
  opts.out_dir =
      (fs::temp_directory_path() / ("scalevec_hf_blocked_" + std::to_string(::getpid()))).string();
  EXPECT_THROW(export_hf(*blocked, opts), ExportError);
  EXPECT_FALSE(fs::exists(opts.out_dir)) << "a refused export writes nothing";
}

TEST(HfExportFolder, OutputScalesOnATiedHeadUntieItAndAnEarlierExportIsKept) {
  const fs::path dir =
      fs::temp_directory_path() / ("scalevec_hf_tie_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const ModelConfig cfg = model_config({"r", NormVariant::Relocated, false, false, true});
  Transformer trained = trained_like(cfg, 11);
  EXPECT_FALSE(standard_config_for(*trained).tie_embeddings);
  HfExportOptions opts;
  opts.out_dir = dir.string();
  opts.dtype = at::kFloat;
  const auto report = export_hf(*trained, opts);
  EXPECT_EQ(report.files.front(), "model.safetensors");
  const std::string json = read_text_file((dir / "config.json").string());
  EXPECT_NE(json.find("\"tie_word_embeddings\": false"), std::string::npos);
  const SafetensorsFile f = read_safetensors((dir / "model.safetensors").string());
  EXPECT_EQ(f.metadata.at("format"), "pt");
  bool has_head = false;
  for (const auto& nt : f.tensors) {
    has_head = has_head || nt.first == "lm_head.weight";
    EXPECT_EQ(nt.second.scalar_type(), at::kFloat);
  }
  EXPECT_TRUE(has_head);
  // A second export into the same folder is refused unless --overwrite; the first stays whole.
  const auto before = fs::file_size(dir / "model.safetensors");
  try {
    export_hf(*trained, opts);
    FAIL() << "overwrote an export";
  } catch (const ExportError& e) {
    EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos);
  }
  EXPECT_EQ(fs::file_size(dir / "model.safetensors"), before);
  opts.overwrite = true;
  opts.dtype = at::kBFloat16;
  opts.tokenizer = (dir / "missing.model").string();
  EXPECT_THROW(export_hf(*trained, opts), ExportError);  // refused before anything is written
  EXPECT_EQ(fs::file_size(dir / "model.safetensors"), before);
  opts.tokenizer = "";
  export_hf(*trained, opts);
  EXPECT_LT(fs::file_size(dir / "model.safetensors"), before) << "bf16 replaced fp32";
  EXPECT_FALSE(fs::exists(dir.string() + ".partial"));
  EXPECT_FALSE(fs::exists(dir.string() + ".replaced"));
  fs::remove_all(dir);
}

TEST(HfImport, MismatchesAndDamagedFoldersAreNamed) {
  const fs::path dir =
      fs::temp_directory_path() / ("scalevec_hf_imp_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const ModelConfig cfg = model_config({"s", NormVariant::Standard, false, true});
  Transformer m(cfg, 2);
  HfExportOptions opts;
  opts.out_dir = dir.string();
  export_hf(*m, opts);
  auto error_of = [&](const ModelConfig& want) {
    Transformer target(want, 0);
    try {
      load_hf_weights(dir.string(), *target);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of(cfg), "");
  ModelConfig wide = cfg;
  wide.d_model = 64;
  EXPECT_NE(error_of(wide).find("model.d_model = 64 but"), std::string::npos) << error_of(wide);
  ModelConfig branch = cfg;
  branch.norm.pre_ffn.variant = NormVariant::Branch;
  EXPECT_NE(error_of(branch).find("model.norm.pre_ffn.variant = branch"), std::string::npos);
  ModelConfig no_qk = cfg;
  no_qk.qk_norm = false;
  EXPECT_NE(error_of(no_qk).find("model.qk_norm"), std::string::npos);

  // A tensor removed from the file: the load names it.
  SafetensorsFile f = read_safetensors((dir / "model.safetensors").string());
  NamedTensors fewer;
  for (auto& nt : f.tensors)
    if (nt.first != "model.layers.1.mlp.up_proj.weight") fewer.push_back(nt);
  fewer.emplace_back("model.layers.9.extra.weight", at::zeros({2}));
  write_safetensors((dir / "model.safetensors").string(), fewer, {{"format", "pt"}});
  const std::string e = error_of(cfg);
  EXPECT_NE(e.find("missing model.layers.1.mlp.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected tensor model.layers.9.extra.weight"), std::string::npos) << e;
  fs::remove_all(dir);
}

// train.init_from: a fresh run starts from the folder's weights (the exported fp32 tensors), and
// run_info.yaml records where they came from.
TEST(HfImport, TrainingStartsFromTheFolder) {
  const fs::path dir = fs::temp_directory_path() / ("scalevec_hf_ft_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  scalevec::testing::write_random_shards(dir, 61, 4);
  Config cfg = scalevec::testing::tiny_cpu_config(dir, 61);
  cfg.model = model_config({"b", NormVariant::Branch, false, true});
  Transformer trained(cfg.model, 8);
  {
    at::NoGradGuard no_grad;
    auto gen = at::detail::createCPUGenerator(9);
    for (const auto& p : trained->named_params())
      if (p.group == ParamGroup::InputNorm)
        p.tensor.copy_(1.0 + 0.4 * at::randn(p.tensor.sizes(), gen));
  }
  HfExportOptions opts;
  opts.out_dir = (dir / "hf").string();
  export_hf(*trained, opts);

  Config ft = cfg;
  ft.model = read_hf_spec(opts.out_dir).model;
  ft.train.init_from = opts.out_dir;
  ft.train.out_dir = (dir / "run").string();
  ft.train.steps = 2;
  TrainerOptions topts;
  Trainer trainer(ft, topts);
  {
    const at::Tensor tokens = tokens_for(cfg.model);
    at::NoGradGuard no_grad;
    trained->set_reference_kernels(true);
    trainer.model().set_reference_kernels(true);
    EXPECT_LT(rel_diff(trainer.model().forward(tokens), trained->forward(tokens)), 1e-5);
    trainer.model().set_reference_kernels(false);
  }
  trainer.run();
  EXPECT_NE(
      read_text_file((dir / "run" / "run_info.yaml").string()).find("init_from: " + opts.out_dir),
      std::string::npos);
  fs::remove_all(dir);
}

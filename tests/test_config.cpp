// Config loading: every error names the key path and file:line; includes, overrides, per-position
// norm options, semantic validation and the resolved-config round trip.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "scalevec/config_io.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

// Each test writes its YAML files into its own directory, removed afterwards.
class ConfigLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("scalevec_config_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

  // The ConfigError message of loading `path` with `overrides` (fails the test if none).
  static std::string error_of(const std::string& path,
                              const std::vector<std::string>& overrides = {}) {
    try {
      load_config(path, overrides);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError loading " << path;
    return "";
  }

  fs::path dir_;
};

#define EXPECT_HAS(haystack, needle)                                                            \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "missing '" << (needle) << "' in:\n" \
                                                        << (haystack)

TEST(Config, Defaults) {
  EXPECT_EQ(scalevec::Config{}.model.d_model, 256);
}

TEST_F(ConfigLoad, UnknownKeyNamesPathLocationAndSuggestion) {
  const auto path = write("c.yaml", "model:\n  d_model: 64\n  n_layres: 3\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "unknown key 'model.n_layres'");
  EXPECT_HAS(msg, path + ":3");
  EXPECT_HAS(msg, "did you mean 'model.n_layers'");
}

TEST_F(ConfigLoad, UnknownKeyFromOverrideSuggests) {
  const auto path = write("c.yaml", "train:\n  steps: 10\n");
  const std::string msg = error_of(path, {"model.nrom.variant=unified"});
  EXPECT_HAS(msg, "model.nrom.variant");
  EXPECT_HAS(msg, "--set model.nrom.variant=unified");
  EXPECT_HAS(msg, "did you mean 'model.norm.variant'");
}

TEST_F(ConfigLoad, WrongTypeIntNamesPathLocationAndValue) {
  const auto path = write("c.yaml", "model:\n  d_model: sixty\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "model.d_model");
  EXPECT_HAS(msg, "expected an integer");
  EXPECT_HAS(msg, "'sixty'");
  EXPECT_HAS(msg, path + ":2");
}

TEST_F(ConfigLoad, WrongTypeBoolNamesPathLocationAndValue) {
  const auto path = write("c.yaml", "model:\n  d_model: 64\n  qk_norm: maybe\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "model.qk_norm");
  EXPECT_HAS(msg, "'maybe'");
  EXPECT_HAS(msg, path + ":3");
}

TEST_F(ConfigLoad, WrongTypeEnumListsChoices) {
  const auto path = write("c.yaml", "model:\n  norm:\n    pre_ffn:\n      variant: fancy\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "model.norm.pre_ffn.variant");
  EXPECT_HAS(msg, "'fancy'");
  EXPECT_HAS(msg, "unified");
  EXPECT_HAS(msg, path + ":4");
}

TEST_F(ConfigLoad, WrongTypeFromOverrideNamesTheOverride) {
  const auto path = write("c.yaml", "train:\n  steps: 10\n");
  const std::string msg = error_of(path, {"train.steps=lots"});
  EXPECT_HAS(msg, "train.steps");
  EXPECT_HAS(msg, "'lots'");
  EXPECT_HAS(msg, "--set train.steps=lots");
}

TEST_F(ConfigLoad, EveryProblemIsReportedAtOnce) {
  const auto path = write("c.yaml", "model:\n  d_modle: 64\n  n_heads: x\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "model.d_modle");
  EXPECT_HAS(msg, "model.n_heads");
}

TEST_F(ConfigLoad, MissingFile) {
  const std::string path = (dir_ / "absent.yaml").string();
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "not found");
  EXPECT_HAS(msg, path);
}

TEST_F(ConfigLoad, MissingIncludeFile) {
  const auto path = write("c.yaml", "defaults: gone.yaml\nmodel:\n  d_model: 64\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "gone.yaml");
  EXPECT_HAS(msg, "not found");
  EXPECT_HAS(msg, path + ":1");
}

TEST_F(ConfigLoad, IncludeCycle) {
  write("a.yaml", "defaults: b.yaml\n");
  write("b.yaml", "defaults: c.yaml\n");
  const auto c = write("c.yaml", "defaults: a.yaml\n");
  EXPECT_HAS(error_of(c), "cycle");
  const auto self = write("self.yaml", "defaults: self.yaml\n");
  EXPECT_HAS(error_of(self), "cycle");
}

TEST_F(ConfigLoad, BadOverrideSyntax) {
  const auto path = write("c.yaml", "train:\n  steps: 10\n");
  EXPECT_HAS(error_of(path, {"foo"}), "expected key=value");
  EXPECT_HAS(error_of(path, {"=3"}), "expected key=value");
  EXPECT_HAS(error_of(path, {"model..d_model=64"}), "malformed key");
  EXPECT_HAS(error_of(path, {".model=64"}), "malformed key");
  EXPECT_HAS(error_of(path, {"model.d_model.=64"}), "malformed key");
  EXPECT_HAS(error_of(path, {"model.d model=64"}), "malformed key");
}

TEST_F(ConfigLoad, OverrideWinsOverFile) {
  const auto path = write("c.yaml", "optim:\n  lr: 0.001\nmodel:\n  qk_norm: false\n");
  const auto c = load_config(path, {"optim.lr=5e-4", "model.qk_norm=true", "optim.lr=2e-4"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 2e-4);  // later --set wins too
  EXPECT_TRUE(c.model.qk_norm);
}

TEST_F(ConfigLoad, IncludeChainBaseThenChildThenOverride) {
  write("base.yaml", "model:\n  d_model: 64\n  n_heads: 4\n  n_layers: 2\noptim:\n  lr: 0.001\n");
  fs::create_directories(dir_ / "sub");
  write("sub/mid.yaml", "defaults: ../base.yaml\nmodel:\n  d_model: 128\n  n_layers: 3\n");
  const auto child = write("sub/child.yaml", "defaults: mid.yaml\nmodel:\n  n_layers: 5\n");
  const auto c = load_config(child, {"model.n_heads=8"});
  EXPECT_EQ(c.model.d_model, 128);      // mid over base
  EXPECT_EQ(c.model.n_layers, 5);       // child over mid
  EXPECT_EQ(c.model.n_heads, 8);        // --set over all files
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.001);  // untouched base value survives
}

TEST_F(ConfigLoad, ListOfIncludesAppliesInOrder) {
  write("a.yaml", "optim:\n  lr: 0.1\n  beta1: 0.5\n");
  write("b.yaml", "optim:\n  lr: 0.2\n");
  const auto c = load_config(write("c.yaml", "defaults: [a.yaml, b.yaml]\n"));
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.2);
  EXPECT_DOUBLE_EQ(c.optim.beta1, 0.5);
}

TEST_F(ConfigLoad, PerPositionNormOverride) {
  const auto path = write("c.yaml",
                          "model:\n  norm:\n    variant: unified\n    eps: 1.0e-5\n"
                          "    qk:\n      variant: standard\n");
  const auto c = load_config(path);
  const auto& n = c.model.norm;
  EXPECT_EQ(n.qk.variant, NormVariant::Standard);
  for (NormPosition p :
       {NormPosition::PreAttn, NormPosition::PreFfn, NormPosition::Final, NormPosition::BranchOut})
    EXPECT_EQ(n.at(p).variant, NormVariant::Unified) << to_string(p);
  EXPECT_DOUBLE_EQ(n.qk.eps, 1e-5);  // the global key still reaches the overridden position
  // The same through --set, in either order of the two keys.
  const auto o = load_config(write("d.yaml", "train:\n  steps: 1\n"),
                             {"model.norm.final.variant=none", "model.norm.variant=magdir"});
  EXPECT_EQ(o.model.norm.final.variant, NormVariant::None);
  EXPECT_EQ(o.model.norm.pre_attn.variant, NormVariant::MagDir);
}

TEST_F(ConfigLoad, YamlSyntaxErrorHasLine) {
  const auto path =
      write("c.yaml", "model:\n  d_model: 64\n  n_heads: [4, 8\ntrain:\n  steps: 1\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "YAML syntax error");
  EXPECT_HAS(msg, path + ":");
  // An override that is not YAML reports the override.
  EXPECT_HAS(error_of(write("d.yaml", "train:\n  steps: 1\n"), {"data.corpus=[a, b"}),
             "--set data.corpus");
}

// Found by scripts/fuzz.sh (fuzz_config): YAML's complex keys (`? [a, b]`) ended the process
// with an uncaught yaml-cpp conversion error.
TEST_F(ConfigLoad, ANonScalarKeyIsAConfigErrorNotACrash) {
  EXPECT_HAS(error_of(write("k.yaml", "? [a, b]\n: 1\n")), "a key must be a plain name");
  EXPECT_HAS(error_of(write("k2.yaml", "model:\n  ? {x: 1}\n  : 2\n")), "model: a key must be");
  EXPECT_HAS(error_of(write("k3.yaml", "defaults: [[a.yaml]]\n")), "defaults: list items");
  EXPECT_THROW(load_config_string("? [a]\n: 1\n", {}, "s"), ConfigError);
}

TEST_F(ConfigLoad, SemanticValidation) {
  const auto path = write("c.yaml", "model:\n  max_seq_len: 64\ntrain:\n  seq_len: 128\n");
  const std::string msg = error_of(path);
  EXPECT_HAS(msg, "train.seq_len (128)");
  EXPECT_HAS(msg, "model.max_seq_len = 64");
  EXPECT_HAS(error_of(path, {"train.seq_len=64", "model.n_heads=3"}), "divisible by model.n_heads");
  EXPECT_NO_THROW(load_config(path, {"train.seq_len=64"}));
  EXPECT_HAS(error_of(path, {"train.seq_len=64", "train.probe_iters=1"}), "probe_iters >= 2");
  EXPECT_HAS(error_of(path, {"train.seq_len=64", "train.probe_every=-1"}), "train.probe_every");
  EXPECT_NO_THROW(load_config(path, {"train.seq_len=64", "train.probe_every=50"}));
}

TEST_F(ConfigLoad, ResolvedConfigRoundTrips) {
  const auto path = write("c.yaml",
                          "model:\n  d_model: 96\n  n_heads: 6\n  qk_norm: true\n"
                          "  moe: {enabled: true, num_experts: 4, top_k: 1}\n"
                          "  norm:\n    variant: unified\n    magnitude: per_head\n"
                          "    branch_out: {variant: magdir, magdir_decay: both}\n"
                          "optim:\n  name: muon\n  lr: 0.00123\n"
                          "  weight_decay: {input_norm: 0.05, output_norm: 0.0}\n"
                          "data:\n  corpus: [a.txt, b.txt.gz]\n"
                          "train:\n  seed: 77\n  precision: bf16\n  out_dir: runs/x y\n");
  const auto a = load_config(path);
  const auto b = load_config_string(config_to_yaml(a), {}, "resolved");
  EXPECT_EQ(config_to_yaml(a), config_to_yaml(b));
  EXPECT_EQ(b.model.d_model, 96);
  EXPECT_EQ(b.model.n_heads, 6);
  EXPECT_TRUE(b.model.qk_norm);
  EXPECT_TRUE(b.model.moe.enabled);
  EXPECT_EQ(b.model.moe.num_experts, 4);
  EXPECT_EQ(b.model.norm.pre_attn.variant, NormVariant::Unified);
  EXPECT_EQ(b.model.norm.pre_ffn.magnitude, MagnitudeShape::PerHead);
  EXPECT_EQ(b.model.norm.branch_out.variant, NormVariant::MagDir);
  EXPECT_EQ(b.model.norm.branch_out.magdir_decay, MagDirDecay::Both);
  EXPECT_EQ(b.optim.name, OptimizerKind::Muon);
  EXPECT_DOUBLE_EQ(b.optim.lr, 0.00123);
  EXPECT_DOUBLE_EQ(b.optim.weight_decay.input_norm, 0.05);
  EXPECT_EQ(b.data.corpus, (std::vector<std::string>{"a.txt", "b.txt.gz"}));
  EXPECT_EQ(b.train.seed, 77u);
  EXPECT_EQ(b.train.precision, Precision::Bf16);
  EXPECT_EQ(b.train.out_dir, "runs/x y");
  // save_config writes the same text, loadable as a file.
  const std::string saved = (dir_ / "resolved.yaml").string();
  save_config(a, saved);
  EXPECT_EQ(config_to_yaml(load_config(saved)), config_to_yaml(a));
}

TEST_F(ConfigLoad, EveryKeyIsListedOnce) {
  const auto keys = config_keys();
  std::set<std::string> unique(keys.begin(), keys.end());
  EXPECT_EQ(unique.size(), keys.size());
  EXPECT_TRUE(unique.count("model.norm.variant"));
  EXPECT_TRUE(unique.count("model.norm.branch_out.apply"));
}

}  // namespace

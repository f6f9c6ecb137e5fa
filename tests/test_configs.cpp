// The shipped configs: every file loads and validates, size configs hold the parameter count their
// name says, the analytic count equals the built module, and the inspect commands report norms.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "scalevec/config_io.h"
#include "scalevec/model.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

const fs::path kConfigs = fs::path(SCALEVEC_SOURCE_DIR) / "configs";

// Training configs: every YAML under configs/ except the sweep definitions in configs/sweeps/.
std::vector<fs::path> all_configs() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(kConfigs))
    if (e.is_regular_file() && e.path().extension() == ".yaml" &&
        e.path().parent_path().filename() != "sweeps")
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

int64_t built_scale_numel(const Transformer& m) {
  int64_t n = 0;
  for (const auto& [name, norm] : m->norms()) n += norm->scale_numel();
  return n;
}

// Runs a shell command from the source dir; returns its exit code and stdout+stderr.
std::pair<int, std::string> run(const std::string& args) {
  const std::string cmd = "cd '" SCALEVEC_SOURCE_DIR "' && '" SCALEVEC_BINARY "' " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return {-1, ""};
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The output line that mentions `name` as its first column.
std::string line_of(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("  " + name + " ", 0) == 0) return line;
  return "";
}

TEST(Configs, EveryConfigLoadsAndValidates) {
  const auto files = all_configs();
  ASSERT_GE(files.size(), 14u);  // 12 model configs + 2 GPU bench configs
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    Config c;
    ASSERT_NO_THROW(c = load_config(f.string()));
    EXPECT_NO_THROW(validate_config(c));
    EXPECT_FALSE(c.data.corpus.empty());
  }
}

// "key=value" overrides from a sweep's `set:` map.
std::vector<std::string> overrides_of(const YAML::Node& set) {
  std::vector<std::string> out;
  for (const auto& kv : set)
    out.push_back(kv.first.as<std::string>() + "=" + kv.second.as<std::string>());
  return out;
}

// A typo in a sweep's key would otherwise only surface when its runs start, hours into a grid.
TEST(Configs, EverySweepPointResolvesToAValidConfig) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(kConfigs / "sweeps")) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    const YAML::Node sweep = YAML::LoadFile(e.path().string());
    const std::string base =
        (fs::path(SCALEVEC_SOURCE_DIR) / sweep["base"].as<std::string>()).string();
    const auto common = overrides_of(sweep["set"]);
    std::vector<std::vector<std::string>> variants;
    for (const auto& point : sweep["points"]) variants.push_back(overrides_of(point["set"]));
    for (const auto& axis : sweep["grid"])  // each grid value on its own: axes are independent keys
      for (const auto& value : axis.second)
        variants.push_back({axis.first.as<std::string>() + "=" + value.as<std::string>()});
    ASSERT_FALSE(variants.empty());
    for (const auto& v : variants) {
      auto all = common;
      all.insert(all.end(), v.begin(), v.end());
      Config c;
      ASSERT_NO_THROW(c = load_config(base, all)) << ::testing::PrintToString(all);
      EXPECT_NO_THROW(validate_config(c)) << ::testing::PrintToString(all);
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
}

TEST(Configs, SizeConfigsMatchTheirNameWithin10Percent) {
  const std::regex sized(R"((dense|moe)-([0-9.]+)b\.yaml)");
  int checked = 0;
  for (const auto& f : all_configs()) {
    std::smatch m;
    const std::string name = f.filename().string();
    if (!std::regex_match(name, m, sized)) continue;
    const double want = std::stod(m[2].str()) * 1e9;
    const Config c = load_config(f.string());
    const double got = static_cast<double>(count_params(c.model));
    EXPECT_NEAR(got / want, 1.0, 0.10) << name << ": " << got << " parameters";
    EXPECT_EQ(c.model.moe.enabled, m[1].str() == "moe") << name;
    EXPECT_EQ(c.model.vocab_size, 32000) << name;
    EXPECT_EQ(c.train.seq_len, 2048) << name;
    EXPECT_EQ(c.train.precision, Precision::Bf16) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 8);
  // GPT-2 small: 124M with the GPT-2 MLP; SwiGLU at 8/3 width lands at the same size.
  const Config g = load_config((kConfigs / "bench/gpt2-small.yaml").string());
  EXPECT_NEAR(count_params(g.model) / 124e6, 1.0, 0.10);
  const Config u = load_config((kConfigs / "bench/gpt2-small-unified.yaml").string());
  EXPECT_EQ(u.model.norm.qk.variant, NormVariant::Unified);
  EXPECT_EQ(u.model.d_model, g.model.d_model);
}

TEST(Configs, AnalyticCountEqualsBuiltModelForShippedConfigs) {
  for (const char* name :
       {"tiny.yaml", "tiny-moe.yaml", "dense-0.12b.yaml", "bench/gpt2-small-unified.yaml"}) {
    SCOPED_TRACE(name);
    const Config c = load_config((kConfigs / name).string());
    const Transformer m(c.model, c.train.seed);
    EXPECT_EQ(count_params(c.model), m->num_params());
    EXPECT_EQ(count_scale_params(c.model), built_scale_numel(m));
  }
}

TEST(Configs, AnalyticCountEqualsBuiltModelForEveryNormOption) {
  for (bool moe : {false, true})
    for (NormVariant v : {NormVariant::None, NormVariant::Standard, NormVariant::Branch,
                          NormVariant::Relocated, NormVariant::MagDir, NormVariant::Unified})
      for (Placement pl : {Placement::Input, Placement::Output, Placement::Both})
        for (MagnitudeShape mag : {MagnitudeShape::Scalar, MagnitudeShape::PerHead}) {
          ModelConfig c;
          c.vocab_size = 50;
          c.d_model = 32;
          c.n_layers = 2;
          c.n_heads = 4;
          c.n_kv_heads = 2;
          c.max_seq_len = 8;
          c.tie_embeddings = !moe;
          c.qk_norm = true;
          c.branch_out_norm = true;
          c.moe.enabled = moe;
          c.moe.num_experts = 3;
          c.moe.shared_expert = moe;
          c.moe.expert_hidden = 24;
          for (NormPosition p : kNormPositions) {
            c.norm.at(p).variant = v;
            c.norm.at(p).placement = pl;
            c.norm.at(p).magnitude = mag;
          }
          SCOPED_TRACE(std::string(to_string(v)) + " " + to_string(pl) + " " + to_string(mag) +
                       (moe ? " moe" : " dense"));
          const Transformer m(c, 1);
          EXPECT_EQ(count_params(c), m->num_params());
          EXPECT_EQ(count_scale_params(c), built_scale_numel(m));
        }
}

TEST(Inspect, ModelListsEveryNormWithRoleAndGroup) {
  const auto [rc, out] =
      run("inspect-model --config configs/tiny.yaml --set model.branch_out_norm=true");
  ASSERT_EQ(rc, 0) << out;
  const Config c = load_config((kConfigs / "tiny.yaml").string(), {"model.branch_out_norm=true"});
  const Transformer m(c.model, c.train.seed);
  ASSERT_NE(out.find("total params:"), std::string::npos) << out;
  std::string digits;  // the printed total without its thousands separators
  const auto total_at = out.find("total params:");
  for (size_t i = total_at + 13; i < out.size() && out[i] != '('; ++i)
    if (std::isdigit(static_cast<unsigned char>(out[i]))) digits += out[i];
  EXPECT_EQ(digits, std::to_string(m->num_params())) << out;
  EXPECT_NE(out.find("FLOPs/token:"), std::string::npos) << out;
  EXPECT_NE(out.find("scale-vector params:"), std::string::npos) << out;
  std::set<std::string> positions;
  for (const auto& [name, norm] : m->norms()) {
    const std::string line = line_of(out, name);
    ASSERT_FALSE(line.empty()) << "no row for " << name << " in:\n" << out;
    const bool input = norm->role() == NormRole::Input;
    EXPECT_NE(line.find(to_string(norm->position())), std::string::npos) << line;
    EXPECT_NE(line.find(input ? " input " : " output "), std::string::npos) << line;
    EXPECT_NE(line.find(input ? "input_norm wd=0.1" : "output_norm wd=0"), std::string::npos)
        << line;
    positions.insert(to_string(norm->position()));
  }
  EXPECT_EQ(positions.size(), 5u);  // pre_attn, pre_ffn, qk, final, branch_out
  for (const char* group : {"matrix", "embedding", "input_norm", "output_norm"})
    EXPECT_FALSE(line_of(out, group).empty()) << group << " missing in:\n" << out;
}

TEST(Inspect, ModelShowsMagDirDecaySplit) {
  const auto [rc, out] =
      run("inspect-model --config configs/tiny.yaml --set model.norm.variant=magdir");
  ASSERT_EQ(rc, 0) << out;
  // Default magdir_decay=magnitude: the direction takes no decay.
  EXPECT_NE(line_of(out, "final_norm").find("input_norm wd=0 [direction]"), std::string::npos)
      << out;
  EXPECT_FALSE(line_of(out, "input_norm/no_decay").empty()) << out;
}

TEST(Inspect, ConfigPrintsResolvedYaml) {
  const auto [rc, out] = run("inspect-config --config configs/tiny-moe.yaml --set optim.lr=0.5");
  ASSERT_EQ(rc, 0) << out;
  const Config c = load_config_string(out, {}, "inspect-config output");
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.5);
  EXPECT_TRUE(c.model.moe.enabled);
  EXPECT_EQ(c.model.d_model, 128);
}

TEST(Inspect, ConfigTypoExitsWithSuggestion) {
  const auto [rc, out] =
      run("inspect-config --config configs/tiny.yaml --set model.nrom.variant=unified");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("did you mean 'model.norm.variant'"), std::string::npos) << out;
}

}  // namespace

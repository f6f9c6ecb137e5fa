// Golden loss curves: three fixed tiny configs (dense standard, dense unified, MoE) train 30 steps
// on the CPU with one thread. Their losses must equal this platform's file under tests/golden/
// bit for bit, and stay within kCrossPlatformTolerance of every other platform's file.
// An intended change regenerates the files (scripts/regenerate_golden.sh) in a reviewed commit;
// see docs/reproducibility.md.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "scalevec/build_info.h"
#include "scalevec/compat.h"
#include "scalevec/shard_format.h"
#include "scalevec/trainer.h"
#include "test_util.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSteps = 30;
constexpr uint32_t kVocab = 97;
// Largest |loss difference| allowed between two platforms' curves (another LibTorch, BLAS or ISA
// reorders float sums). Measured: Debian 12 (LibTorch 1.13, AVX2) and Debian 13 (2.6, AVX512)
// differ by at most 4.8e-7 (one float ulp at loss 4) over the 30 steps; docs/reproducibility.md.
constexpr double kCrossPlatformTolerance = 1e-4;

const fs::path kGoldenDir = fs::path(SCALEVEC_SOURCE_DIR) / "tests" / "golden";

std::string slug(std::string s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.')
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    else if (!out.empty() && out.back() != '-')
      out.push_back('-');
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string os_release_field(const std::string& field) {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + "=", 0) == 0) {
      std::string v = line.substr(field.size() + 1);
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  return "unknown";
}

// What decides the bits of a CPU run: OS release (its BLAS), LibTorch version and flavour, the
// vector ISA LibTorch dispatches to and OpenBLAS's kernel family.
std::string platform_key() {
  const BuildInfo b = build_info();
  return slug(os_release_field("ID") + os_release_field("VERSION_ID")) + "-libtorch" +
         slug(b.torch) + (b.cuda == "none" ? "-cpu" : "-cuda") + "-" +
         slug(compat::cpu_capability()) + "-" + slug(compat::blas_core());
}

// The learnable pattern of the trainer tests: each token mostly follows its predecessor + 1.
void write_pattern_shards(const fs::path& dir) {
  std::mt19937 rng(5);
  std::vector<uint32_t> train(20000), val(3000);
  uint32_t t = 0;
  for (auto& x : train) x = t = (rng() % 4 == 0) ? rng() % kVocab : (t + 1) % kVocab;
  for (auto& x : val) x = t = (rng() % 4 == 0) ? rng() % kVocab : (t + 1) % kVocab;
  write_shard((dir / "train.bin").string(), train, kVocab);
  write_shard((dir / "val.bin").string(), val, kVocab);
}

void set_all_norms(Config& cfg, NormVariant v) {
  for (auto p : {NormPosition::PreAttn, NormPosition::PreFfn, NormPosition::Qk, NormPosition::Final,
                 NormPosition::BranchOut})
    cfg.model.norm.at(p).variant = v;
}

// The fixed configs; changing one is a golden change (regenerate).
Config golden_config(const fs::path& dir, const std::string& kind) {
  Config cfg = scalevec::testing::tiny_cpu_config(dir, kVocab);
  cfg.model.n_layers = 2;
  cfg.train.batch_size = 4;
  cfg.train.steps = kSteps;
  cfg.schedule.warmup_steps = 5;
  cfg.optim.lr = 3e-3;
  if (kind == "dense-standard") {
    set_all_norms(cfg, NormVariant::Standard);
  } else if (kind == "dense-unified") {
    set_all_norms(cfg, NormVariant::Unified);
  } else if (kind == "moe") {
    set_all_norms(cfg, NormVariant::Standard);
    cfg.model.moe.enabled = true;
    cfg.model.moe.num_experts = 4;
    cfg.model.moe.top_k = 2;
    cfg.model.moe.expert_hidden = 32;
  } else {
    throw std::invalid_argument("unknown golden kind " + kind);
  }
  return cfg;
}

// A shard directory for one test, removed afterwards.
struct ShardDir {
  fs::path path;
  ShardDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           ("scalevec_golden_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
    write_pattern_shards(path);
  }
  ~ShardDir() { fs::remove_all(path); }
};

std::vector<double> train_losses(const Config& cfg) {
  TrainerOptions opts;
  opts.write_outputs = false;
  Trainer trainer(cfg, opts);
  std::vector<double> losses;
  for (int64_t step = 0; step < cfg.train.steps; ++step) losses.push_back(trainer.train_step(step));
  return losses;
}

std::vector<double> read_curve(const fs::path& path) {
  std::ifstream in(path);
  std::vector<double> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    int64_t step = 0;
    std::string loss;
    ss >> step >> loss;
    out.push_back(std::strtod(loss.c_str(), nullptr));
  }
  return out;
}

void write_curve(const fs::path& path, const std::string& kind, const std::vector<double>& losses) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path);
  out << "# scalevec golden loss curve: " << kind << " (tests/test_golden.cpp), platform "
      << path.parent_path().filename().string() << "\n"
      << "# written by scripts/regenerate_golden.sh; step, training loss (%.17g: exact)\n";
  char text[64];
  for (size_t i = 0; i < losses.size(); ++i) {
    std::snprintf(text, sizeof(text), "%zu %.17g\n", i + 1, losses[i]);
    out << text;
  }
}

// "" when `actual` matches `golden` within `tolerance` (0: bit for bit), else what differs first
// and the largest difference.
std::string curve_mismatch(const std::vector<double>& golden, const std::vector<double>& actual,
                           double tolerance) {
  if (golden.size() != actual.size())
    return "the golden file has " + std::to_string(golden.size()) + " steps, this run " +
           std::to_string(actual.size());
  std::ostringstream os;
  os.precision(17);
  double worst = 0;
  size_t first = golden.size();
  for (size_t i = 0; i < golden.size(); ++i) {
    const double d = std::abs(golden[i] - actual[i]);
    const bool bad = tolerance == 0 ? golden[i] != actual[i] : !(d <= tolerance);
    if (bad && first == golden.size()) first = i;
    worst = std::max(worst, d);
  }
  if (first == golden.size()) return "";
  os << "step " << first + 1 << ": golden " << golden[first] << ", this run " << actual[first]
     << "; largest difference " << worst << " (tolerance " << tolerance << ")";
  return os.str();
}

bool writing_golden() {
  const char* v = std::getenv("SCALEVEC_GOLDEN_WRITE");
  return v && std::string(v) == "1";
}

void check_golden(const std::string& kind) {
  ShardDir dir;
  const std::vector<double> losses = train_losses(golden_config(dir.path, kind));
  ASSERT_EQ(losses.size(), static_cast<size_t>(kSteps));
  // Sanity anchors: a near-uniform first guess, and a curve that actually learns.
  EXPECT_NEAR(losses.front(), std::log(static_cast<double>(kVocab)), 0.05) << kind;
  EXPECT_LT(losses.back(), losses.front() - 0.1) << kind;

  const std::string key = platform_key();
  const fs::path own = kGoldenDir / key / (kind + ".txt");
  if (writing_golden()) {
    const bool existed = fs::exists(own);
    const std::string change = existed ? curve_mismatch(read_curve(own), losses, 0) : "new file";
    write_curve(own, kind, losses);
    std::cout << "golden: wrote " << own.string()
              << (change.empty() ? " (unchanged)" : " (" + change + ")") << "\n";
    return;
  }
  if (fs::exists(own)) {
    const std::string diff = curve_mismatch(read_curve(own), losses, 0);
    EXPECT_EQ(diff, "") << kind << " on " << key << " no longer trains to its golden curve "
                        << own.string() << ": " << diff
                        << "\nIf the change is intended: bash scripts/regenerate_golden.sh, and "
                           "commit the new file with the reason.";
  } else {
    std::cout << "golden: no file for this platform (" << key
              << "); comparing with the other platforms' within " << kCrossPlatformTolerance
              << " (scripts/regenerate_golden.sh writes one)\n";
  }
  int others = 0;
  for (const auto& entry : fs::directory_iterator(kGoldenDir)) {
    const fs::path file = entry.path() / (kind + ".txt");
    if (entry.path().filename() == key || !fs::exists(file)) continue;
    ++others;
    const std::string diff = curve_mismatch(read_curve(file), losses, kCrossPlatformTolerance);
    EXPECT_EQ(diff, "") << kind << " on " << key << " departs from platform "
                        << entry.path().filename().string() << ": " << diff;
  }
  EXPECT_TRUE(fs::exists(own) || others > 0)
      << "no golden file for " << kind << " in " << kGoldenDir.string();
}

}  // namespace

TEST(GoldenCurves, DenseStandard) {
  check_golden("dense-standard");
}

TEST(GoldenCurves, DenseUnified) {
  check_golden("dense-unified");
}

TEST(GoldenCurves, Moe) {
  check_golden("moe");
}

// The comparison is sharp enough to catch a change in a variant's formula: unified's magnitude
// reparameterized from OR (beta = m) to ER (beta = exp(s)) computes the same function at init, so
// the first loss agrees, and the curve departs from the second step on.
TEST(GoldenCurves, APerturbedFormulaFailsTheComparison) {
  ShardDir dir;
  const Config cfg = golden_config(dir.path, "dense-unified");
  const std::vector<double> reference = train_losses(cfg);
  Config perturbed = cfg;
  for (auto p : {NormPosition::PreAttn, NormPosition::PreFfn, NormPosition::Final})
    perturbed.model.norm.at(p).magnitude_space = MagnitudeSpace::Exp;
  const std::vector<double> losses = train_losses(perturbed);
  EXPECT_EQ(losses.front(), reference.front());
  const std::string exact = curve_mismatch(reference, losses, 0);
  std::cout << "golden: OR -> ER: " << exact << "\n";
  EXPECT_NE(exact, "");
  EXPECT_EQ(exact.rfind("step 1:", 0), std::string::npos) << exact;
  EXPECT_NE(curve_mismatch(reference, losses, kCrossPlatformTolerance), "")
      << "ER vs OR stays within the cross-platform tolerance: the tolerance hides formula changes";
  // A smaller change, the norm's epsilon 1e-6 -> 2e-6, is caught by the exact comparison.
  Config eps = cfg;
  for (auto p : {NormPosition::PreAttn, NormPosition::PreFfn, NormPosition::Final})
    eps.model.norm.at(p).eps = 2e-6;
  const std::string eps_diff = curve_mismatch(reference, train_losses(eps), 0);
  std::cout << "golden: eps 1e-6 -> 2e-6: " << eps_diff << "\n";
  EXPECT_NE(eps_diff, "");
  // And the reference is what the golden file holds, where this platform has one.
  const fs::path own = kGoldenDir / platform_key() / "dense-unified.txt";
  if (fs::exists(own) && !writing_golden())
    EXPECT_EQ(curve_mismatch(read_curve(own), reference, 0), "");
}

// The real trainer under data parallelism: two Gloo ranks started by scripts/launch.sh against
// one process on the union of their batches, and resume under DDP.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "scalevec/compat.h"
#include "scalevec/config_io.h"
#include "scalevec/process.h"
#include "scalevec/schedule.h"
#include "scalevec/shard_format.h"
#include "scalevec/trainer.h"
#include "test_util.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

struct DdpFixture {
  fs::path dir;
  Config cfg;
  DdpFixture() {
    dir = fs::temp_directory_path() / ("scalevec_ddp_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    scalevec::testing::write_random_shards(dir, 61, 9);
    cfg = scalevec::testing::tiny_cpu_config(dir, 61);
    cfg.model.n_layers = 2;
    cfg.model.qk_norm = true;
    cfg.model.norm.pre_attn.variant = NormVariant::Unified;
    cfg.train.batch_size = 3;
    cfg.train.steps = 3;
    cfg.schedule.warmup_steps = 1;  // full lr on step 0, so one step visibly moves every weight
    cfg.train.log_every = 1;
    cfg.train.ckpt_every = 1;
    cfg.train.eval_every = 0;
    cfg.dist.bucket_mb = 0.01;  // several buckets
    cfg.dist.timeout_s = 60;
  }
  ~DdpFixture() { fs::remove_all(dir); }

  // Runs `scalevec train` on 2 ranks through the project's launcher.
  void launch(const std::string& out_dir, const std::vector<std::string>& extra) {
    Config c = cfg;
    c.train.out_dir = out_dir;
    const std::string path = (dir / (fs::path(out_dir).filename().string() + ".yaml")).string();
    save_config(c, path);
    std::vector<std::string> argv = {"bash",
                                     std::string(SCALEVEC_SOURCE_DIR) + "/scripts/launch.sh",
                                     "--nproc",
                                     "2",
                                     "--master-port",
                                     std::to_string(scalevec::testing::free_port()),
                                     "--",
                                     SCALEVEC_BINARY,
                                     "train",
                                     "--config",
                                     path};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_EQ(run_process(argv), 0) << format_command(argv);
  }

  std::vector<at::Tensor> checkpoint_params(const std::string& out_dir, int64_t step) {
    Transformer m(cfg.model, 0);  // seed irrelevant: every tensor is overwritten
    load_checkpoint(checkpoint_path(out_dir, step), *m, nullptr);
    return m->parameters();
  }
};

// A column of the first row of a run's metrics.csv (columns named in its header).
double first_logged(const std::string& csv_path, const std::string& column) {
  std::ifstream in(csv_path);
  std::string header, row;
  EXPECT_TRUE(std::getline(in, header) && std::getline(in, row)) << csv_path;
  auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    return cells;
  };
  const auto names = split(header), cells = split(row);
  for (size_t i = 0; i < names.size() && i < cells.size(); ++i)
    if (names[i] == column) return std::stod(cells[i]);
  ADD_FAILURE() << "no " << column << " column in " << csv_path;
  return 0;
}

}  // namespace

TEST(DdpTrainer, TwoRanksEqualOneProcessOnTheUnionBatch) {
  if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  DdpFixture f;
  const std::string out = (f.dir / "ddp").string();
  f.launch(out, {"--stop-after", "1"});

  // Reference: one process, one step on rank 0's batch followed by rank 1's (2B sequences).
  compat::set_cpu_threads(1);
  Transformer ref(f.cfg.model, f.cfg.train.seed);
  auto params = ref->named_params();
  auto opt = make_optimizer(f.cfg.optim, params);
  TokenWindowLoader r0(f.cfg.data.train_shard, 16, 3, f.cfg.train.seed, 0, 2);
  TokenWindowLoader r1(f.cfg.data.train_shard, 16, 3, f.cfg.train.seed, 1, 2);
  const Batch b0 = r0.batch_at(0), b1 = r1.batch_at(0);
  const Batch both{at::cat({b0.inputs, b1.inputs}), at::cat({b0.targets, b1.targets})};
  opt->zero_grad();
  accumulate_gradients(*ref, {both}, nullptr, false);
  const double ref_grad_norm = clip_grad_norm(params, f.cfg.optim.grad_clip).item<double>();
  opt->step(lr_scale(f.cfg.schedule, 0, f.cfg.train.steps));

  const auto ddp = f.checkpoint_params(out, 1);
  const auto single = ref->parameters();
  ASSERT_EQ(ddp.size(), single.size());
  double worst = 0;
  for (size_t i = 0; i < ddp.size(); ++i)
    worst = std::max(worst, (ddp[i] - single[i]).abs().max().item<double>());
  // AdamW's first step is lr * g/(|g|+eps): it amplifies float reduction-order noise in
  // near-zero gradients, so the bound is relative to lr rather than to float epsilon.
  EXPECT_LT(worst, 1e-2 * f.cfg.optim.lr);
  // Adam's step is blind to the gradient's scale, so also check the all-reduced gradient itself:
  // a sum instead of a mean over ranks would double this norm.
  const double ddp_grad_norm = first_logged(out + "/metrics.csv", "grad_norm");
  EXPECT_NEAR(ddp_grad_norm, ref_grad_norm, 1e-5 * ref_grad_norm);
  // And the step did move the weights (the comparison is not between two initial models).
  Transformer init(f.cfg.model, f.cfg.train.seed);
  const auto before = init->parameters();
  double moved = 0;
  for (size_t i = 0; i < before.size(); ++i)
    moved = std::max(moved, (before[i] - single[i]).abs().max().item<double>());
  EXPECT_GT(moved, 1e-3);  // AdamW's first step is ~lr = 3e-3 per weight
}

TEST(DdpTrainer, ResumeUnderDdpIsBitIdentical) {
  if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  DdpFixture f;
  const std::string full = (f.dir / "full").string(), split = (f.dir / "split").string();
  f.launch(full, {});
  f.launch(split, {"--stop-after", "1"});
  f.launch(split, {"--resume"});
  const auto a = f.checkpoint_params(full, 3), b = f.checkpoint_params(split, 3);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << i;
}

TEST(DdpTrainer, ProbesMeasureTheHessianOfTheMeanLossOverRanks) {
  if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  DdpFixture f;
  f.cfg.train.probe_every = 1;
  f.cfg.train.probe_iters = 6;
  f.cfg.train.probe_tol = 0;  // a fixed iteration count: both sides take the same path
  const std::string out = (f.dir / "probed").string();
  f.launch(out, {"--stop-after", "1"});

  // Reference: one process from the step-1 checkpoint, probing both ranks' probe batches.
  compat::set_cpu_threads(1);
  Transformer ref(f.cfg.model, 0);
  auto params = ref->named_params();
  auto opt = make_optimizer(f.cfg.optim, params);
  load_checkpoint(checkpoint_path(out, 1), *ref, opt.get());
  std::vector<Batch> batches;
  for (int rank = 0; rank < 2; ++rank) {
    TokenWindowLoader val(f.cfg.data.val_shard, 16, 3, f.cfg.train.seed, rank, 2);
    for (auto& b : probe_batches(val, f.cfg.train)) batches.push_back(b);
  }
  Probe probe(f.cfg.train, f.cfg.optim, batches, nullptr, 1);
  const auto v = probe.run(*ref, params, *opt, lr_scale(f.cfg.schedule, 1, f.cfg.train.steps), 1);
  const std::string csv = out + "/metrics.csv";
  for (const char* key : {"probe.loss", "probe.sharpness", "probe.adam_sharpness"})
    EXPECT_NEAR(first_logged(csv, key), v.at(key), 1e-4 * std::abs(v.at(key))) << key;
}

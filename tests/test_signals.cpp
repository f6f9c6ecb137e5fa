// SIGTERM/SIGINT: the trainer saves the step it finished and exits cleanly, resuming from that
// checkpoint matches an uninterrupted run, and under DDP a signal to one rank stops every rank
// after the same step (a lone rank leaving would leave the others hanging in an all-reduce).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "scalevec/checkpoint.h"
#include "scalevec/config_io.h"
#include "scalevec/dist.h"
#include "scalevec/process.h"
#include "scalevec/shard_format.h"
#include "scalevec/trainer.h"
#include "test_util.h"

using namespace scalevec;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct SignalFixture {
  fs::path dir;
  Config cfg;
  explicit SignalFixture(const std::string& name) {
    dir =
        fs::temp_directory_path() / ("scalevec_signal_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    scalevec::testing::write_random_shards(dir, 53, 3);
    cfg = scalevec::testing::tiny_cpu_config(dir, 53);
    cfg.model.n_layers = 1;
    cfg.train.batch_size = 2;
    cfg.train.steps = 100000;  // never reached: every run here ends by a signal or --stop-after
    cfg.train.ckpt_every = 0;  // the only checkpoints are the ones the stop writes
    cfg.train.eval_every = 0;
    cfg.train.log_every = 1;
    cfg.dist.timeout_s = 20;
  }
  ~SignalFixture() { fs::remove_all(dir); }

  std::string write_config(const std::string& out_dir) {
    Config c = cfg;
    c.train.out_dir = (dir / out_dir).string();
    const std::string path = (dir / (out_dir + ".yaml")).string();
    save_config(c, path);
    return path;
  }
};

pid_t spawn(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// Exit status of `pid`, or nullopt (after killing it) if it is still running at the deadline.
std::optional<int> wait_for_exit(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(50ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return std::nullopt;
}

int64_t metrics_rows(const fs::path& out_dir) {
  std::ifstream in(out_dir / "metrics.csv");
  int64_t rows = -1;  // header
  for (std::string line; std::getline(in, line);) ++rows;
  return std::max<int64_t>(rows, 0);
}

bool wait_for_rows(const fs::path& out_dir, int64_t rows) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (metrics_rows(out_dir) >= rows) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<int64_t> checkpoint_steps(const fs::path& out_dir) {
  std::vector<int64_t> steps;
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ckpt_", 0) == 0 && e.path().extension() == ".pt")
      steps.push_back(std::stoll(name.substr(5, name.size() - 8)));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// The step of the run's only checkpoint (the one the stop wrote), checked against the metrics
// log; -1 when there is not exactly one.
int64_t stop_checkpoint_step(const fs::path& out_dir) {
  const auto saved = checkpoint_steps(out_dir);
  EXPECT_EQ(saved.size(), 1u) << "expected exactly the checkpoint the stop writes";
  if (saved.size() != 1) return -1;
  EXPECT_EQ(metrics_rows(out_dir), saved[0]) << "the log and the checkpoint disagree on the step";
  return saved[0];
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The pid of the process whose environment has RANK=<rank> and whose command line mentions
// `marker` (the run's unique config path), or -1.
pid_t find_rank_pid(int rank, const std::string& marker) {
  const std::string want = "RANK=" + std::to_string(rank);
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = read_file(e.path() / "cmdline");
    if (cmdline.find(marker) == std::string::npos || cmdline.rfind("bash", 0) == 0) continue;
    std::stringstream env(read_file(e.path() / "environ"));
    for (std::string var; std::getline(env, var, '\0');)
      if (var == want) return std::stoi(name);
  }
  return -1;
}

std::vector<at::Tensor> params_at(const Config& cfg, const fs::path& out_dir, int64_t step) {
  Transformer m(cfg.model, 0);
  load_checkpoint(checkpoint_path(out_dir.string(), step), *m, nullptr);
  return m->parameters();
}

}  // namespace

TEST(Signals, SigtermSavesTheFinishedStepAndResumeMatchesAnUninterruptedRun) {
  SignalFixture f("single");
  const std::string cut = f.write_config("cut"), full = f.write_config("full");
  const pid_t pid = spawn({SCALEVEC_BINARY, "train", "--config", cut});
  ASSERT_TRUE(wait_for_rows(f.dir / "cut", 3));
  ::kill(pid, SIGTERM);
  const auto rc = wait_for_exit(pid, 60s);
  ASSERT_TRUE(rc.has_value()) << "trainer did not exit after SIGTERM";
  EXPECT_EQ(*rc, 0);
  const int64_t s = stop_checkpoint_step(f.dir / "cut");
  ASSERT_GE(s, 3);

  // Resume two steps past the signal; the uninterrupted run stops at the same step.
  ASSERT_EQ(
      run_process({SCALEVEC_BINARY, "train", "--config", cut, "--resume", "--stop-after", "2"}), 0);
  ASSERT_EQ(run_process({SCALEVEC_BINARY, "train", "--config", full, "--stop-after",
                         std::to_string(s + 2)}),
            0);
  const auto a = params_at(f.cfg, f.dir / "cut", s + 2),
             b = params_at(f.cfg, f.dir / "full", s + 2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "tensor " << i;
}

// kill -9 at random moments (mid-step, mid-checkpoint, mid-metrics row) across several runs, each
// restarted with --resume: the run always resumes, leaves no partial file behind, and ends with
// the same weights as an uninterrupted run.
TEST(Signals, KillNineAtRandomMomentsThenResumeEndsLikeAnUninterruptedRun) {
  SignalFixture f("kill9");
  f.cfg.train.steps = 300;
  f.cfg.train.ckpt_every = 7;
  f.cfg.train.keep_last = 2;
  const std::string cut = f.write_config("cut"), full = f.write_config("full");
  std::mt19937 rng(11);
  int kills = 0;
  for (int attempt = 0; attempt < 6; ++attempt) {
    // Kill a random 10-50 steps into this run (plus up to 20 ms: mid-step, mid-save, mid-row).
    const int64_t target = metrics_rows(f.dir / "cut") + 10 + static_cast<int64_t>(rng() % 40);
    if (target >= 300) break;
    const pid_t pid = spawn({SCALEVEC_BINARY, "train", "--config", cut, "--resume"});
    ASSERT_TRUE(wait_for_rows(f.dir / "cut", target));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ++kills;
  }
  EXPECT_GE(kills, 4);
  ASSERT_EQ(run_process({SCALEVEC_BINARY, "train", "--config", cut, "--resume"}), 0);
  ASSERT_EQ(run_process({SCALEVEC_BINARY, "train", "--config", full}), 0);
  for (const auto& e : fs::directory_iterator(f.dir / "cut"))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  EXPECT_EQ(metrics_rows(f.dir / "cut"), 300);
  const auto a = params_at(f.cfg, f.dir / "cut", 300), b = params_at(f.cfg, f.dir / "full", 300);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "tensor " << i;
}

class DdpSignals : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  }
  pid_t launch(const std::string& config) {
    return spawn({"bash", std::string(SCALEVEC_SOURCE_DIR) + "/scripts/launch.sh", "--nproc", "2",
                  "--master-port", std::to_string(scalevec::testing::free_port()), "--",
                  SCALEVEC_BINARY, "train", "--config", config});
  }
};

TEST_F(DdpSignals, SigtermToOneRankStopsEveryRankAfterTheSameStep) {
  SignalFixture f("ddp_one");
  const std::string config = f.write_config("run");
  const pid_t launcher = launch(config);
  ASSERT_TRUE(wait_for_rows(f.dir / "run", 3));
  const pid_t rank1 = find_rank_pid(1, config);
  ASSERT_GT(rank1, 0) << "rank 1's process not found";
  ::kill(rank1, SIGTERM);
  const auto rc = wait_for_exit(launcher, 60s);  // > dist.timeout_s: a hang would fail here
  ASSERT_TRUE(rc.has_value()) << "job did not end after SIGTERM to rank 1";
  EXPECT_EQ(*rc, 0) << "a rank failed (timeout in a collective?) instead of stopping cleanly";
  EXPECT_GE(stop_checkpoint_step(f.dir / "run"), 3);
}

TEST_F(DdpSignals, SigtermToTheLauncherSavesAndExitsWith130) {
  SignalFixture f("ddp_launcher");
  const std::string config = f.write_config("run");
  const pid_t launcher = launch(config);
  ASSERT_TRUE(wait_for_rows(f.dir / "run", 3));
  ::kill(launcher, SIGTERM);
  const auto rc = wait_for_exit(launcher, 60s);
  ASSERT_TRUE(rc.has_value()) << "launcher did not exit after SIGTERM";
  EXPECT_EQ(*rc, 130);
  EXPECT_GE(stop_checkpoint_step(f.dir / "run"), 3)
      << "the ranks must save before the launcher returns";
}

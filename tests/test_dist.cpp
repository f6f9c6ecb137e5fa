// Distributed tests: env parsing, and real 2-process Gloo runs of this test binary on loopback.
// The parent test spawns `/proc/self/exe --gtest_filter=DistWorker.Run` twice; the worker
// reads SCALEVEC_DIST_TEST_MODE/OUT and is skipped in ordinary runs.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <torch/torch.h>
#include "test_util.h"

#include "scalevec/compat.h"
#include "scalevec/dist.h"
#include "scalevec/dist_compat.h"

extern char** environ;

namespace scalevec {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kModeVar = "SCALEVEC_DIST_TEST_MODE";
constexpr const char* kOutVar = "SCALEVEC_DIST_TEST_OUT";

// ---------------------------------------------------------------- helpers (parent side)

using scalevec::testing::free_port;

std::map<std::string, std::string> read_result(const fs::path& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string key, value;
  while (in >> key && std::getline(in >> std::ws, value)) out[key] = value;
  return out;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct WorkerRun {
  std::vector<int> exit_codes;  // -1: killed at the deadline
  std::vector<std::map<std::string, std::string>> results;
  std::vector<std::string> logs;
  double seconds = 0;
};

// Runs `world` workers in `mode`; kills them all after `deadline`.
WorkerRun run_workers(const std::string& mode, int world, std::chrono::seconds deadline) {
  const fs::path dir =
      fs::temp_directory_path() / ("scalevec_dist_" + mode + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int port = free_port();
  std::vector<pid_t> pids;
  const auto start = Clock::now();
  for (int rank = 0; rank < world; ++rank) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv(*e);
      const std::string key = kv.substr(0, kv.find('='));
      if (key == "RANK" || key == "WORLD_SIZE" || key == "LOCAL_RANK" || key == "MASTER_ADDR" ||
          key == "MASTER_PORT" || key.rfind("SLURM_", 0) == 0 || key.rfind("GTEST_", 0) == 0) {
        continue;
      }
      env_strings.push_back(kv);
    }
    env_strings.push_back("RANK=" + std::to_string(rank));
    env_strings.push_back("WORLD_SIZE=" + std::to_string(world));
    env_strings.push_back("LOCAL_RANK=" + std::to_string(rank));
    env_strings.push_back("MASTER_ADDR=127.0.0.1");
    env_strings.push_back("MASTER_PORT=" + std::to_string(port));
    env_strings.push_back(std::string(kModeVar) + "=" + mode);
    env_strings.push_back(std::string(kOutVar) + "=" +
                          (dir / ("rank" + std::to_string(rank))).string());
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", filter = "--gtest_filter=DistWorker.Run";
    char* argv[] = {exe.data(), filter.data(), nullptr};
    const std::string log_path = (dir / ("rank" + std::to_string(rank) + ".log")).string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "posix_spawn failed";
    if (rc == 0) pids.push_back(pid);
  }
  WorkerRun run;
  run.exit_codes.assign(pids.size(), -1);
  size_t running = pids.size();
  while (running > 0 && Clock::now() - start < deadline) {
    for (size_t r = 0; r < pids.size(); ++r) {
      if (pids[r] <= 0) continue;
      int status = 0;
      if (::waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        run.exit_codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pids[r] = 0;
        --running;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (pid_t pid : pids) {
    if (pid <= 0) continue;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (int rank = 0; rank < world; ++rank) {
    run.results.push_back(read_result(dir / ("rank" + std::to_string(rank))));
    run.logs.push_back(slurp(dir / ("rank" + std::to_string(rank) + ".log")));
  }
  fs::remove_all(dir);
  return run;
}

std::string describe(const WorkerRun& run) {
  std::string s;
  for (size_t r = 0; r < run.logs.size(); ++r) {
    s += "--- rank " + std::to_string(r) + " exit " + std::to_string(run.exit_codes[r]) + "\n" +
         run.logs[r];
  }
  return s;
}

// ---------------------------------------------------------------- helpers (worker side)

struct Mlp {
  at::Tensor w1, b1, w2, b2, unused;  // `unused` never enters the graph
  std::vector<at::Tensor> params() const { return {w1, b1, w2, b2, unused}; }
};

constexpr int64_t kIn = 4, kHidden = 16, kOut = 3, kRowsPerRank = 4;

Mlp make_mlp(uint64_t seed) {
  auto gen = compat::make_generator(seed, at::kCPU);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  Mlp m;
  m.w1 = at::randn({kHidden, kIn}, gen, opts).requires_grad_();
  m.b1 = at::randn({kHidden}, gen, opts).requires_grad_();
  m.w2 = at::randn({kOut, kHidden}, gen, opts).requires_grad_();
  m.b2 = at::randn({kOut}, gen, opts).requires_grad_();
  m.unused = at::randn({3}, gen, opts).requires_grad_();
  return m;
}

at::Tensor mlp_loss(const Mlp& m, const at::Tensor& x, const at::Tensor& y) {
  const auto h = at::tanh(at::linear(x, m.w1, m.b1));
  return (at::linear(h, m.w2, m.b2) - y).pow(2).mean();
}

void sgd_step(const Mlp& m, double lr) {
  at::NoGradGuard no_grad;
  for (auto p : m.params()) {
    if (p.grad().defined()) p.sub_(p.grad() * lr);
  }
}

void clear_grads(const Mlp& m) {
  for (auto p : m.params()) p.mutable_grad() = at::Tensor();
}

double max_param_diff(const Mlp& a, const Mlp& b) {
  double worst = 0;
  const auto pa = a.params(), pb = b.params();
  for (size_t i = 0; i < pa.size(); ++i) {
    worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  }
  return worst;
}

using Result = std::map<std::string, std::string>;

void worker_collectives(Result& out) {
  const auto env = dist_env_from_environment();
  auto comm = Communicator::create(env, "gloo", at::kCPU, std::chrono::seconds(20));
  EXPECT_EQ(comm->world_size(), 2);
  EXPECT_EQ(comm->backend(), "gloo");
  const double r = comm->rank();
  auto sum = at::tensor({1.0, 2.0}, at::kDouble) * (r + 1);
  comm->allreduce_sum_(sum);
  EXPECT_TRUE(at::equal(sum, at::tensor({3.0, 6.0}, at::kDouble))) << sum;
  auto mean = at::tensor({1.0, 2.0}, at::kDouble) * (r + 1);
  comm->allreduce_mean_(mean);
  EXPECT_TRUE(at::allclose(mean, at::tensor({1.5, 3.0}, at::kDouble))) << mean;
  std::vector<at::Tensor> bcast{
      comm->rank() == 1 ? at::tensor({7.0, 8.0}) : at::zeros({2}, at::kDouble),
      comm->rank() == 1 ? at::tensor({9L}) : at::zeros({1}, at::kLong)};
  comm->broadcast_(bcast, /*root=*/1);
  EXPECT_TRUE(at::equal(bcast[0], at::tensor({7.0, 8.0})));
  EXPECT_EQ(bcast[1].item<int64_t>(), 9);
  const double loss = comm->allreduce_mean(r + 1.0);
  EXPECT_DOUBLE_EQ(loss, 1.5);
  comm->barrier();
  out["loss_mean"] = std::to_string(loss);
}

void worker_ddp(Result& out) {
  const auto env = dist_env_from_environment();
  auto comm = Communicator::create(env, "auto", at::kCPU, std::chrono::seconds(20));
  const int rank = comm->rank();
  const double lr = 0.1;
  auto gen = compat::make_generator(123, at::kCPU);
  const auto x = at::randn({2 * kRowsPerRank, kIn}, gen, at::kDouble);
  const auto y = at::randn({2 * kRowsPerRank, kOut}, gen, at::kDouble);
  const auto mine = [&](const at::Tensor& t, int64_t begin, int64_t len) {
    return t.narrow(0, rank * kRowsPerRank + begin, len);
  };

  Mlp ref = make_mlp(1);
  Mlp model = make_mlp(rank == 0 ? 1 : 99);  // rank 1 starts different: broadcast must fix it
  broadcast_parameters(*comm, model.params());
  out["init_diff"] = std::to_string(max_param_diff(ref, model));
  EXPECT_EQ(max_param_diff(ref, model), 0.0);

  // ~400-byte buckets: {unused, b2, w2}, {b1, w1} -> more than one bucket.
  GradSynchronizer sync(*comm, model.params(), 400.0 / (1024.0 * 1024.0));
  out["buckets"] = std::to_string(sync.num_buckets());
  EXPECT_GT(sync.num_buckets(), 1u);

  // Step 1: one micro-step per rank vs. one full-batch step.
  mlp_loss(ref, x, y).backward();
  sgd_step(ref, lr);
  sync.set_sync_enabled(true);
  mlp_loss(model, mine(x, 0, kRowsPerRank), mine(y, 0, kRowsPerRank)).backward();
  sync.finish();
  ASSERT_TRUE(model.unused.grad().defined()) << "param without grad must get a zero grad";
  EXPECT_EQ(model.unused.grad().abs().max().item<double>(), 0.0);
  sgd_step(model, lr);
  const double diff1 = max_param_diff(ref, model);
  out["step1_diff"] = std::to_string(diff1);
  EXPECT_LE(diff1, 1e-12);

  // Step 2: two accumulation micro-steps, communication only on the last one.
  clear_grads(ref);
  clear_grads(model);
  mlp_loss(ref, x, y).backward();
  sgd_step(ref, lr);
  const int64_t launched_before = sync.collectives_launched();
  const int64_t half = kRowsPerRank / 2;
  sync.set_sync_enabled(false);
  (mlp_loss(model, mine(x, 0, half), mine(y, 0, half)) / 2).backward();
  EXPECT_EQ(sync.collectives_launched(), launched_before) << "non-final micro-step communicated";
  sync.set_sync_enabled(true);
  (mlp_loss(model, mine(x, half, half), mine(y, half, half)) / 2).backward();
  sync.finish();
  EXPECT_EQ(sync.collectives_launched(),
            launched_before + static_cast<int64_t>(sync.num_buckets()));
  sgd_step(model, lr);
  const double diff2 = max_param_diff(ref, model);
  out["step2_diff"] = std::to_string(diff2);
  EXPECT_LE(diff2, 1e-12);
}

// Runs `action`, which should fail; records whether it threw, its one-line message, and how long
// it took to give up.
template <typename Action>
void record_failure(Result& out, Action&& action) {
  const auto start = Clock::now();
  try {
    action();
    out["threw"] = "0";
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (auto& c : msg) c = (c == '\n') ? ' ' : c;
    out["threw"] = "1";
    out["message"] = msg;
  }
  out["seconds"] = std::to_string(std::chrono::duration<double>(Clock::now() - start).count());
}

void worker_peer_death(Result& out) {
  const auto env = dist_env_from_environment();
  auto comm = Communicator::create(env, "gloo", at::kCPU, std::chrono::seconds(5));
  auto t = at::ones({4});
  comm->allreduce_sum_(t);            // both ranks are connected now
  if (comm->rank() == 1) ::_exit(0);  // dies without a goodbye
  record_failure(out, [&] { comm->allreduce_sum_(t); });
}

void worker_missing_peer(Result& out) {
  const auto env = dist_env_from_environment();
  if (env.rank == 1) ::_exit(0);  // never joins the rendezvous
  record_failure(out,
                 [&] { Communicator::create(env, "gloo", at::kCPU, std::chrono::seconds(2)); });
}

}  // namespace

// ---------------------------------------------------------------- worker entry point

TEST(DistWorker, Run) {
  const char* mode = std::getenv(kModeVar);
  const char* out_path = std::getenv(kOutVar);
  if (mode == nullptr || out_path == nullptr) GTEST_SKIP() << "only runs as a spawned dist worker";
  at::set_num_threads(1);  // two ranks share two cores
  Result out;
  const std::string m = mode;
  if (m == "collectives")
    worker_collectives(out);
  else if (m == "ddp")
    worker_ddp(out);
  else if (m == "peer_death")
    worker_peer_death(out);
  else if (m == "missing_peer")
    worker_missing_peer(out);
  else
    FAIL() << "unknown mode " << m;
  out["status"] = ::testing::Test::HasFailure() ? "fail" : "ok";
  std::ofstream file(out_path);
  for (const auto& [k, v] : out) file << k << ' ' << v << '\n';
}

// ---------------------------------------------------------------- single-process tests

TEST(DistEnvTest, DefaultsToSingleProcess) {
  const auto env = dist_env_from_variables([](const std::string&) { return std::nullopt; });
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.local_rank, 0);
}

TEST(DistEnvTest, ReadsTorchrunThenSlurm) {
  std::map<std::string, std::string> vars{{"RANK", "3"},           {"WORLD_SIZE", "8"},
                                          {"LOCAL_RANK", "1"},     {"MASTER_ADDR", "node7"},
                                          {"MASTER_PORT", "1234"}, {"SLURM_PROCID", "5"},
                                          {"SLURM_NTASKS", "6"}};
  auto lookup = [&](const std::string& k) -> std::optional<std::string> {
    const auto it = vars.find(k);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  auto env = dist_env_from_variables(lookup);
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "node7");
  EXPECT_EQ(env.master_port, 1234);
  vars.erase("RANK");
  vars.erase("WORLD_SIZE");
  vars.erase("LOCAL_RANK");
  vars["SLURM_LOCALID"] = "2";
  env = dist_env_from_variables(lookup);
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 6);
  EXPECT_EQ(env.local_rank, 2);
}

TEST(DistEnvTest, RejectsInconsistentValues) {
  auto with = [](std::map<std::string, std::string> vars) {
    return dist_env_from_variables([vars](const std::string& k) -> std::optional<std::string> {
      const auto it = vars.find(k);
      return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
  };
  EXPECT_THROW(with({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), std::invalid_argument);
  EXPECT_THROW(with({{"RANK", "0"}, {"WORLD_SIZE", "0"}}), std::invalid_argument);
  EXPECT_THROW(with({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), std::invalid_argument);
  EXPECT_THROW(with({{"RANK", "1"}}), std::invalid_argument);
  EXPECT_THROW(with({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}),
               std::invalid_argument);
  try {
    with({{"RANK", "5"}, {"WORLD_SIZE", "4"}});
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=5 must be in [0, 4)"), std::string::npos)
        << e.what();
  }
}

TEST(DistSingle, WorldOfOneIsLocal) {
  DistEnv env;  // world_size 1: no rendezvous, collectives are identities
  auto comm = Communicator::create(env, "auto", at::kCPU, std::chrono::seconds(1));
  auto t = at::tensor({2.0, 4.0});
  comm->allreduce_mean_(t);
  EXPECT_TRUE(at::equal(t, at::tensor({2.0, 4.0})));
  EXPECT_DOUBLE_EQ(comm->allreduce_mean(3.5), 3.5);

  // The synchronizer must leave grads equal to plain backward (x accumulation).
  Mlp a = make_mlp(5), b = make_mlp(5);
  const auto x = at::randn({4, kIn}, at::kDouble), y = at::randn({4, kOut}, at::kDouble);
  GradSynchronizer sync(*comm, b.params(), 1e-4);
  mlp_loss(a, x, y).backward();
  mlp_loss(a, x, y).backward();
  sync.set_sync_enabled(false);
  mlp_loss(b, x, y).backward();
  sync.set_sync_enabled(true);
  mlp_loss(b, x, y).backward();
  sync.finish();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(at::allclose(a.params()[i].grad(), b.params()[i].grad(), 0, 1e-14)) << i;
  }
  // A second synced backward without finish() is a usage error, reported clearly.
  mlp_loss(b, x, y).backward();
  EXPECT_THROW(mlp_loss(b, x, y).backward(), c10::Error);
}

TEST(DistSingle, RejectsBadBackend) {
  DistEnv env;
  env.world_size = 2;
  EXPECT_THROW(Communicator::create(env, "mpi", at::kCPU, std::chrono::seconds(1)),
               std::invalid_argument);
  EXPECT_THROW(Communicator::create(env, "nccl", at::kCPU, std::chrono::seconds(1)),
               std::invalid_argument);
}

// The rendezvous store, server and client in one process: a key written by one is read by the
// other. With USE_LIBUV=0 too: on LibTorch >= 2.4 that is the classic server, otherwise libuv's
// where the build has it (the fallback itself is what builds without libuv, e.g. Debian's, run).
void exchange_a_key_through_tcp_store() {
  const int port = free_port();
  c10::intrusive_ptr<c10d::Store> server;
  std::thread serve([&] {
    server = dist_compat::make_tcp_store("127.0.0.1", port, true, 2, std::chrono::seconds(20));
  });
  auto client = dist_compat::make_tcp_store("127.0.0.1", port, false, 2, std::chrono::seconds(20));
  serve.join();
  ASSERT_TRUE(server);
  server->set("from_server", std::vector<uint8_t>{1, 2, 3});
  client->set("from_client", std::vector<uint8_t>{4, 5});
  EXPECT_EQ(client->get("from_server"), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(server->get("from_client"), (std::vector<uint8_t>{4, 5}));
}

TEST(DistStore, ServerAndClientExchangeKeys) {
  exchange_a_key_through_tcp_store();
}

TEST(DistStore, ServerAndClientExchangeKeysWithoutLibuv) {
  ::setenv("USE_LIBUV", "0", 1);
  exchange_a_key_through_tcp_store();
  ::unsetenv("USE_LIBUV");
}

// ---------------------------------------------------------------- two-process tests

TEST(DistGloo, AllreduceAndBroadcast) {
  if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  const auto run = run_workers("collectives", 2, std::chrono::seconds(40));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(run.exit_codes[r], 0) << describe(run);
    EXPECT_EQ(run.results[r].count("status") ? run.results[r].at("status") : "", "ok")
        << describe(run);
  }
}

TEST(DistGloo, DdpMatchesSingleProcessStep) {
  if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  const auto run = run_workers("ddp", 2, std::chrono::seconds(40));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(run.exit_codes[r], 0) << describe(run);
    EXPECT_EQ(run.results[r].count("status") ? run.results[r].at("status") : "", "ok")
        << describe(run);
    EXPECT_TRUE(run.results[r].count("step2_diff")) << describe(run);
  }
}

TEST(DistGloo, DeadPeerFailsCollectiveFast) {
  if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  const auto run = run_workers("peer_death", 2, std::chrono::seconds(30));
  ASSERT_EQ(run.exit_codes[0], 0) << describe(run);
  const auto& res = run.results[0];
  ASSERT_EQ(res.count("threw") ? res.at("threw") : "", "1") << describe(run);
  EXPECT_LT(std::stod(res.at("seconds")), 10.0);
  EXPECT_NE(res.at("message").find("rank 0/2"), std::string::npos) << res.at("message");
  EXPECT_NE(res.at("message").find("allreduce"), std::string::npos) << res.at("message");
  std::cout << "rank 0 saw after " << res.at("seconds") << " s: " << res.at("message") << "\n";
}

TEST(DistGloo, MissingPeerFailsRendezvous) {
  if (!Communicator::backend_available("gloo")) GTEST_SKIP() << "built without Gloo";
  const auto run = run_workers("missing_peer", 2, std::chrono::seconds(30));
  ASSERT_EQ(run.exit_codes[0], 0) << describe(run);
  const auto& res = run.results[0];
  ASSERT_EQ(res.count("threw") ? res.at("threw") : "", "1") << describe(run);
  EXPECT_LT(std::stod(res.at("seconds")), 10.0);
  EXPECT_NE(res.at("message").find("rendezvous"), std::string::npos) << res.at("message");
  std::cout << "rank 0 saw after " << res.at("seconds") << " s: " << res.at("message") << "\n";
}

// ---------------------------------------------------------------- launcher

namespace {

struct Shell {
  int status = -1;
  std::string output;
  double seconds = 0;
};

Shell run_shell(const std::string& command) {
  Shell result;
  const auto start = Clock::now();
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[512];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) result.output += buffer;
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

std::string launcher() {
  return std::string("env -u SLURM_NNODES -u SLURM_NODEID -u SLURM_JOB_NODELIST bash ") +
         SCALEVEC_SOURCE_DIR + "/scripts/launch.sh";
}

}  // namespace

TEST(DistLaunch, RunsEveryRankWithTorchrunVariables) {
  const auto res =
      run_shell(launcher() + " --nproc 2 --master-port " + std::to_string(free_port()) +
                " -- sh -c 'echo hello $RANK/$WORLD_SIZE local=$LOCAL_RANK "
                "at=$MASTER_ADDR'");
  EXPECT_EQ(res.status, 0) << res.output;
  EXPECT_NE(res.output.find("[rank0] hello 0/2 local=0 at=127.0.0.1"), std::string::npos)
      << res.output;
  EXPECT_NE(res.output.find("[rank1] hello 1/2 local=1 at=127.0.0.1"), std::string::npos)
      << res.output;
}

TEST(DistLaunch, FailingRankStopsTheOthers) {
  const auto res = run_shell(
      launcher() + " --nproc 2 -- sh -c 'if [ \"$RANK\" = 1 ]; then exit 3; fi; sleep 30'");
  EXPECT_NE(res.status, 0) << res.output;
  EXPECT_LT(res.seconds, 10.0) << res.output;
  EXPECT_NE(res.output.find("rank 1"), std::string::npos) << res.output;
}

TEST(DistLaunch, RejectsBadArguments) {
  EXPECT_NE(run_shell(launcher() + " --nproc 0 -- true").status, 0);
  EXPECT_NE(run_shell(launcher() + " --nproc 2").status, 0);
}

}  // namespace scalevec

// Provenance: run_info.yaml records every start and resume with build, machine and command;
// `scalevec --version` names the commit; an unreadable run_info.yaml is kept, not lost.
#include <gtest/gtest.h>
#include <dlfcn.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "scalevec/build_info.h"
#include "scalevec/compat.h"
#include "scalevec/process.h"
#include "scalevec/run_info.h"
#include "scalevec/trainer.h"
#include "test_util.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

struct RunInfoFixture {
  fs::path dir;
  Config cfg;
  RunInfoFixture() {
    dir = fs::temp_directory_path() / ("scalevec_run_info_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    scalevec::testing::write_random_shards(dir, 61, 3);
    cfg = scalevec::testing::tiny_cpu_config(dir, 61);
    cfg.model.n_layers = 1;
    cfg.train.batch_size = 2;
    cfg.train.steps = 2;
    cfg.train.eval_every = 0;
    cfg.train.eval_batches = 1;
    cfg.train.out_dir = (dir / "run").string();
  }
  ~RunInfoFixture() { fs::remove_all(dir); }
};

}  // namespace

TEST(RunInfo, EveryStartAndResumeIsRecordedWithBuildMachineAndCommand) {
  RunInfoFixture f;
  TrainerOptions first;
  first.command_line = {"scalevec", "train", "--config", "x.yaml"};
  first.stop_after = 1;
  Trainer(f.cfg, first).run();
  TrainerOptions again;
  again.resume = true;
  again.command_line = {"scalevec", "train", "--config", "x.yaml", "--resume"};
  Trainer(f.cfg, again).run();

  const YAML::Node root =
      YAML::LoadFile((fs::path(f.cfg.train.out_dir) / "run_info.yaml").string());
  ASSERT_TRUE(root["records"].IsSequence());
  ASSERT_EQ(root["records"].size(), 2u);
  const YAML::Node start = root["records"][0], resume = root["records"][1];
  EXPECT_EQ(start["event"].as<std::string>(), "start");
  EXPECT_EQ(start["step"].as<int64_t>(), 0);
  EXPECT_EQ(resume["event"].as<std::string>(), "resume");
  EXPECT_EQ(resume["step"].as<int64_t>(), 1);
  EXPECT_NE(resume["resumed_from"].as<std::string>().find("ckpt_00000001.pt"), std::string::npos);
  EXPECT_EQ(resume["command"][4].as<std::string>(), "--resume");
  const BuildInfo b = build_info();
  EXPECT_EQ(start["scalevec"]["git_commit"].as<std::string>(), b.git_commit);
  EXPECT_EQ(start["libraries"]["libtorch"].as<std::string>(), TORCH_VERSION);
  EXPECT_EQ(start["world_size"].as<int>(), 1);
  ASSERT_EQ(start["hosts"].size(), 1u);
  for (const char* key : {"os", "kernel", "cpu", "cpu_cores", "gpus", "host"})
    EXPECT_TRUE(start["machine"][key].IsDefined()) << key;
  for (const char* key : {"name", "standard"}) EXPECT_TRUE(start["compiler"][key].IsDefined());
  EXPECT_FALSE(start["time"].as<std::string>().empty());
}

TEST(RunInfo, AnUnreadableFileIsKeptAsPrev) {
  RunInfoFixture f;
  fs::create_directories(f.cfg.train.out_dir);
  const fs::path file = fs::path(f.cfg.train.out_dir) / "run_info.yaml";
  std::ofstream(file) << "records: [unclosed\n";
  append_run_info(f.cfg.train.out_dir, RunRecord{});
  EXPECT_TRUE(fs::exists(file.string() + ".prev"));
  EXPECT_EQ(YAML::LoadFile(file.string())["records"].size(), 1u);
}

TEST(RunInfo, VersionPrintsTheCommitAndLibraries) {
  const ProcessResult r = run_process_capture({SCALEVEC_BINARY, "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("commit " + build_info().git_commit), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("LibTorch " TORCH_VERSION), std::string::npos) << r.output;
}

// train.threads = T never runs two pools of T threads on T cores: with OpenBLAS (Debian's
// LibTorch) the matmul pool gets T and LibTorch's own pool 1; without it LibTorch's gets T.
TEST(CpuThreads, OneComputePoolGetsTheCores) {
  using GetThreads = int (*)();
  auto openblas = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const int before = at::get_num_threads();
  compat::set_cpu_threads(2);
  if (openblas) {
    EXPECT_EQ(openblas(), 2);
    EXPECT_EQ(at::get_num_threads(), 1);
  } else {
    EXPECT_EQ(at::get_num_threads(), 2);
  }
  compat::set_cpu_threads(before);
}

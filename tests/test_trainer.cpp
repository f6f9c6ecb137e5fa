// Trainer: bit-exact resume, accumulation equivalence, checkpoint errors, NaN policy, metrics.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <tuple>

#include "scalevec/config_io.h"
#include "scalevec/data_fingerprint.h"
#include "scalevec/manifest.h"
#include "scalevec/shard_format.h"
#include "scalevec/trainer.h"
#include "test_util.h"

using namespace scalevec;
namespace fs = std::filesystem;

namespace {

// A fresh directory with random-token train/val shards (vocab 97) and a tiny config over them.
struct Fixture {
  fs::path dir;
  Config cfg;
  explicit Fixture(const std::string& name) {
    dir =
        fs::temp_directory_path() / ("scalevec_trainer_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::mt19937 rng(5);
    std::vector<uint32_t> train(20000), val(3000);
    // A learnable pattern: each token mostly follows its predecessor + 1.
    uint32_t t = 0;
    for (auto& x : train) x = t = (rng() % 4 == 0) ? rng() % 97 : (t + 1) % 97;
    for (auto& x : val) x = t = (rng() % 4 == 0) ? rng() % 97 : (t + 1) % 97;
    write_shard((dir / "train.bin").string(), train, 97);
    write_shard((dir / "val.bin").string(), val, 97);
    cfg = scalevec::testing::tiny_cpu_config(dir, 97);
    cfg.model.n_layers = 2;
    cfg.model.max_seq_len = 32;
    cfg.model.norm.pre_attn.variant = NormVariant::Unified;
    cfg.train.batch_size = 4;
    cfg.train.steps = 8;
    cfg.train.ckpt_every = 4;
    cfg.train.eval_every = 4;
    cfg.train.eval_batches = 2;
    cfg.train.log_every = 1;
    cfg.schedule.warmup_steps = 2;
    cfg.train.out_dir = (dir / "run").string();
  }
  ~Fixture() { fs::remove_all(dir); }
};

std::vector<std::string> column(const std::string& csv, size_t col) {
  std::ifstream in(csv);
  std::vector<std::string> out;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    for (size_t i = 0; i <= col; ++i) std::getline(ss, cell, ',');
    out.push_back(cell);
  }
  return out;
}

}  // namespace

TEST(Trainer, ResumeIsBitIdenticalToAnUninterruptedRun) {
  for (OptimizerKind opt : {OptimizerKind::AdamW, OptimizerKind::Muon}) {
    Fixture f(std::string("resume_") + to_string(opt));
    f.cfg.optim.name = opt;
    f.cfg.train.grad_accum = 2;
    Config full = f.cfg;
    full.train.out_dir = (f.dir / "full").string();
    Trainer a(full, {});
    a.run();

    TrainerOptions first;
    first.stop_after = 5;  // "crash" after step 5, one step past the step-4 checkpoint
    Trainer(f.cfg, first).run();
    // Simulate losing everything after the step-4 checkpoint.
    fs::remove(checkpoint_path(f.cfg.train.out_dir, 5));
    TrainerOptions resume;
    resume.resume = true;
    Trainer b(f.cfg, resume);
    b.run();

    const auto la = column(full.train.out_dir + "/metrics.csv", 3);
    const auto lb = column(f.cfg.train.out_dir + "/metrics.csv", 3);
    ASSERT_EQ(la.size(), 8u);
    ASSERT_EQ(lb, la) << "losses after resume differ (" << to_string(opt) << ")";
    auto pa = a.model().parameters(), pb = b.model().parameters();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pb[i])) << i;
  }
}

TEST(Trainer, AccumulationTwoHalvesEqualsOneFullBatch) {
  ModelConfig mc;
  mc.vocab_size = 50;
  mc.d_model = 16;
  mc.n_layers = 1;
  mc.n_heads = 2;
  mc.max_seq_len = 8;
  mc.norm.pre_ffn.variant = NormVariant::Unified;
  Transformer full(mc, 3), halves(mc, 3);
  full->to(at::kDouble);
  halves->to(at::kDouble);
  auto gen = at::detail::createCPUGenerator(1);
  auto tokens = at::randint(50, {4, 9}, gen, at::kLong);
  Batch all{tokens.slice(1, 0, 8), tokens.slice(1, 1)};
  Batch h0{all.inputs.slice(0, 0, 2), all.targets.slice(0, 0, 2)};
  Batch h1{all.inputs.slice(0, 2, 4), all.targets.slice(0, 2, 4)};
  const double l_full = accumulate_gradients(*full, {all}, nullptr, false).item<double>();
  const double l_half = accumulate_gradients(*halves, {h0, h1}, nullptr, false).item<double>();
  EXPECT_NEAR(l_full, l_half, 1e-12);
  auto pf = full->parameters(), ph = halves->parameters();
  for (size_t i = 0; i < pf.size(); ++i)
    EXPECT_LT((pf[i].grad() - ph[i].grad()).abs().max().item<double>(), 1e-12) << i;
}

TEST(Trainer, LossFallsOnALearnablePattern) {
  Fixture f("falls");
  f.cfg.train.steps = 200;
  f.cfg.train.eval_every = 200;
  f.cfg.optim.lr = 1e-2;
  f.cfg.train.ckpt_every = 0;
  Trainer t(f.cfg, {});
  const auto r = t.run();
  ASSERT_TRUE(r.last_val_loss.has_value());
  EXPECT_LT(*r.last_val_loss, std::log(97.0) - 1.0);  // far below a uniform guess
  EXPECT_TRUE(fs::exists(f.cfg.train.out_dir + "/config.resolved.yaml"));
  EXPECT_TRUE(fs::exists(f.cfg.train.out_dir + "/metrics.jsonl"));
  const auto header = [&] {
    std::ifstream in(f.cfg.train.out_dir + "/metrics.csv");
    std::string h;
    std::getline(in, h);
    return h;
  }();
  EXPECT_NE(header.find("scale.pre_attn.mean"), std::string::npos) << header;
}

TEST(Trainer, CorruptOrMismatchedCheckpointGivesAClearError) {
  Fixture f("corrupt");
  f.cfg.train.steps = 4;
  Trainer(f.cfg, {}).run();
  const std::string ckpt = checkpoint_path(f.cfg.train.out_dir, 4);
  ASSERT_TRUE(fs::exists(ckpt));
  // A different model config must be refused by name.
  Config other = f.cfg;
  other.model.d_model = 48;
  TrainerOptions resume;
  resume.resume = true;
  try {
    Trainer t(other, resume);
    FAIL() << "expected a checkpoint error";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  // Truncate a copy: the original stays untouched.
  const std::string bad = (f.dir / "bad.pt").string();
  fs::copy_file(ckpt, bad);
  fs::resize_file(bad, fs::file_size(bad) / 2);
  TrainerOptions from_bad;
  from_bad.resume_from = bad;
  try {
    Trainer t(f.cfg, from_bad);
    FAIL() << "expected a checkpoint error";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.pt"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(ckpt));
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The scenario: 4 steps, the training shard replaced by another file under the same path,
// then --resume: refused by name; continued on purpose with allow_data_change, and recorded.
TEST(Trainer, ResumeRefusesAReplacedTrainingShardUnlessAllowed) {
  Fixture f("datachange");
  f.cfg.train.steps = 4;
  Trainer(f.cfg, {}).run();
  const std::string ckpt = checkpoint_path(f.cfg.train.out_dir, 4);
  const auto ckpt_size = fs::file_size(ckpt);
  const fs::path train = f.cfg.data.train_shard;
  const std::string old_checksum = hex64(ShardReader(train.string()).checksum());
  fs::copy_file(f.cfg.data.val_shard, train, fs::copy_options::overwrite_existing);
  const std::string new_checksum = hex64(ShardReader(train.string()).checksum());
  ASSERT_NE(old_checksum, new_checksum);

  f.cfg.train.steps = 8;
  TrainerOptions resume;
  resume.resume = true;
  try {
    Trainer t(f.cfg, resume);
    FAIL() << "expected the resume to be refused";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("train shard " + train.string() + ": checksum " + old_checksum + " -> " +
                        new_checksum + ", tokens 20000 -> 3000"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("--allow-data-change"), std::string::npos) << what;
    EXPECT_EQ(what.find("val shard"), std::string::npos) << what;  // the unchanged one is not named
  }
  EXPECT_EQ(fs::file_size(ckpt), ckpt_size);  // nothing lost

  resume.allow_data_change = true;
  const auto r = Trainer(f.cfg, resume).run();
  EXPECT_EQ(r.steps_done, 8);
  const std::string info = read_text(fs::path(f.cfg.train.out_dir) / "run_info.yaml");
  EXPECT_NE(info.find("data_check: changed, allowed by --allow-data-change"), std::string::npos)
      << info;
  EXPECT_NE(info.find(old_checksum + " -> " + new_checksum), std::string::npos) << info;

  // The next resume compares against the new data's fingerprint, stored at step 8: unchanged.
  f.cfg.train.steps = 10;
  resume.allow_data_change = false;
  Trainer(f.cfg, resume).run();
  const std::string info2 = read_text(fs::path(f.cfg.train.out_dir) / "run_info.yaml");
  EXPECT_NE(info2.find("data_check: unchanged"), std::string::npos) << info2;
}

// A weighted mixture of two datasets with a val set each: per-set val losses in the metrics, a
// bit-identical resume, and a changed weight refused on resume.
TEST(Trainer, AMixtureTrainsReportsEachValSetAndResumesExactly) {
  Fixture f("mixture");
  std::mt19937 rng(8);
  std::vector<uint32_t> train(9000), val(2000);
  for (auto& x : train) x = rng() % 97;  // a second, unlearnable dataset
  for (auto& x : val) x = rng() % 97;
  fs::create_directories(f.dir / "noise");
  write_shard((f.dir / "noise" / "train.bin").string(), train, 97);
  write_shard((f.dir / "noise" / "val.bin").string(), val, 97);
  f.cfg.data.train_shards = {f.cfg.data.train_shard, (f.dir / "noise" / "train.bin").string()};
  f.cfg.data.train_weights = {3, 1};
  f.cfg.data.val_shards = {f.cfg.data.val_shard, (f.dir / "noise" / "val.bin").string()};
  f.cfg.train.steps = 8;
  Config full = f.cfg;
  full.train.out_dir = (f.dir / "full").string();
  const auto uninterrupted = Trainer(full, {}).run();

  TrainerOptions first_four;
  first_four.stop_after = 4;
  Trainer(f.cfg, first_four).run();
  TrainerOptions resume;
  resume.resume = true;
  const auto resumed = Trainer(f.cfg, resume).run();
  EXPECT_EQ(resumed.last_train_loss, uninterrupted.last_train_loss);
  ASSERT_TRUE(resumed.last_val_loss && uninterrupted.last_val_loss);
  EXPECT_EQ(*resumed.last_val_loss, *uninterrupted.last_val_loss);

  std::ifstream csv(fs::path(full.train.out_dir) / "metrics.csv");
  std::string header;
  std::getline(csv, header);
  // Both val shards are named val.bin: their parent folders tell them apart.
  const std::string pattern_name = "val_loss." + f.dir.filename().string() + "_val";
  EXPECT_NE(header.find(pattern_name), std::string::npos) << header;
  EXPECT_NE(header.find("val_loss.noise_val"), std::string::npos) << header;

  f.cfg.data.train_weights = {1, 1};
  f.cfg.train.steps = 10;
  try {
    Trainer t(f.cfg, resume);
    FAIL() << "expected a changed mixture weight to be refused";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("mixture weight 0.750000 -> 0.500000"), std::string::npos)
        << e.what();
  }
}

// A dataset manifest (scalevec-tokenizer encode --out) as a mixture entry, for train and val.
TEST(Trainer, TrainsFromADatasetManifest) {
#ifndef SCALEVEC_WITH_SIMDJSON
  GTEST_SKIP() << "built without simdjson: manifests cannot be read";
#endif
  Fixture f("manifest");
  const fs::path ds = f.dir / "ds";
  fs::create_directories(ds / "shards");
  const ShardReader train(f.cfg.data.train_shard), val(f.cfg.data.val_shard);
  Manifest m;
  m.vocab_size = 97;
  m.total_inputs = 2;
  for (int i = 0; i < 2; ++i) {  // the fixture's shards cut in two inputs
    InputRecord r;
    r.index = i;
    r.input = "part" + std::to_string(i);
    r.train.resize(1);
    for (auto [entry, shard, name] : {std::tuple{&r.train[0], &train, "t"}, {&r.val, &val, "v"}}) {
      const uint64_t half = shard->count() / 2;
      std::vector<uint32_t> tokens(half);
      shard->copy_to(i * half, half, tokens.data());
      entry->file = "shards/" + std::string(name) + std::to_string(i) + ".bin";
      write_shard((ds / entry->file).string(), tokens, 97);
      entry->tokens = half;
    }
    m.inputs.push_back(r);
  }
  write_text_atomically((ds / "manifest.json").string(), to_json(m));
  f.cfg.data.train_shards = {(ds / "manifest.json").string()};
  f.cfg.data.val_shards = {(ds / "manifest.json").string(), f.cfg.data.val_shard};
  f.cfg.train.steps = 4;
  const auto r = Trainer(f.cfg, {}).run();
  ASSERT_TRUE(r.last_val_loss.has_value());
  EXPECT_TRUE(std::isfinite(*r.last_val_loss));
  std::ifstream csv(fs::path(f.cfg.train.out_dir) / "metrics.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_NE(header.find("val_loss.ds"), std::string::npos) << header;
}

// Checkpoints from before the fingerprint resume, with a warning and a record that nothing was
// checked.
TEST(Trainer, ACheckpointWithoutAFingerprintStillResumes) {
  Fixture f("nofingerprint");
  f.cfg.train.steps = 4;
  Trainer(f.cfg, {}).run();
  const std::string ckpt = checkpoint_path(f.cfg.train.out_dir, 4);
  {
    Transformer model(f.cfg.model, f.cfg.train.seed);
    auto optimizer = make_optimizer(f.cfg.optim, model->named_params());
    const auto loaded = load_checkpoint(ckpt, *model, optimizer.get());
    ASSERT_FALSE(loaded.data_fingerprint.empty());
    save_checkpoint(ckpt, *model, *optimizer, loaded.state, f.cfg);  // the old format: none
    ASSERT_TRUE(load_checkpoint(ckpt, *model, nullptr).data_fingerprint.empty());
  }
  f.cfg.train.steps = 6;
  TrainerOptions resume;
  resume.resume = true;
  EXPECT_EQ(Trainer(f.cfg, resume).run().steps_done, 6);
  const std::string info = read_text(fs::path(f.cfg.train.out_dir) / "run_info.yaml");
  EXPECT_NE(info.find("data_check: \"not checked: the checkpoint has no data fingerprint\""),
            std::string::npos)
      << info;
}

TEST(Trainer, AFreshStartNeverOverwritesAnEarlierRun) {
  Fixture f("fresh");
  f.cfg.train.steps = 4;
  Trainer(f.cfg, {}).run();
  const std::string ckpt = checkpoint_path(f.cfg.train.out_dir, 4);
  const auto size = fs::file_size(ckpt);
  const auto csv = fs::path(f.cfg.train.out_dir) / "metrics.csv";
  const auto rows = column(csv.string(), 0).size();
  try {
    Trainer t(f.cfg, {});
    FAIL() << "expected a refusal to start over an existing run";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ckpt_00000004.pt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::file_size(ckpt), size);
  EXPECT_EQ(column(csv.string(), 0).size(), rows);
  // Logs without a checkpoint (an attempt that died before its first save) are kept aside.
  fs::remove(ckpt);
  f.cfg.train.steps = 1;
  Trainer(f.cfg, {}).run();
  EXPECT_EQ(column(csv.string() + ".prev", 0).size(), rows);
  EXPECT_EQ(column(csv.string(), 0).size(), 1u);
}

TEST(Trainer, KeepsOnlyTheLastNCheckpoints) {
  Fixture f("keep");
  f.cfg.train.steps = 8;
  f.cfg.train.ckpt_every = 2;
  f.cfg.train.keep_last = 2;
  Trainer(f.cfg, {}).run();
  const auto left = list_checkpoints(f.cfg.train.out_dir);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0], checkpoint_path(f.cfg.train.out_dir, 6));
  EXPECT_EQ(left[1], checkpoint_path(f.cfg.train.out_dir, 8));
}

TEST(Trainer, NonFiniteLossFollowsThePolicy) {
  Fixture f("nan");
  f.cfg.train.steps = 3;
  f.cfg.train.ckpt_every = 0;
  f.cfg.optim.lr = 1e30;  // blows the weights up after the first update
  f.cfg.optim.grad_clip = 0;
  f.cfg.train.nan_policy = NanPolicy::Stop;
  Trainer t(f.cfg, {});
  try {
    t.run();
    FAIL() << "expected the run to stop on a non-finite loss";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(list_checkpoints(f.cfg.train.out_dir).empty());  // no corrupt checkpoint written
  f.cfg.train.nan_policy = NanPolicy::Skip;
  f.cfg.train.max_nan_skips = 100;
  Trainer skip(f.cfg, {});
  skip.run();  // skips, never throws, and the final checkpoint holds the last finite weights
  for (const auto& p : skip.model().parameters()) EXPECT_TRUE(at::isfinite(p).all().item<bool>());
}

// ---------------------------------------------------------------- faults (issue 14)

namespace {

// Files in `dir` whose name ends with `suffix`.
std::vector<std::string> files_ending(const fs::path& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(name);
  }
  return out;
}

// A disk that fills at `bytes` per file, for this process: RLIMIT_FSIZE, with SIGXFSZ ignored so
// that a write past it fails with EFBIG as a full disk fails with ENOSPC.
struct FileSizeLimit {
  rlimit old{};
  explicit FileSizeLimit(rlim_t bytes) {
    ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit lim = old;
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &old); }
};

void flip_byte(const std::string& path, double where) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const auto at = static_cast<std::streamoff>(static_cast<double>(fs::file_size(path)) * where);
  f.seekg(at);
  char c = 0;
  f.get(c);
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x40));
}

}  // namespace

// A truncated or bit-flipped newest checkpoint: --resume warns, resumes from the newest intact one
// (and ends exactly where an uninterrupted run ends), keeps the damaged file aside as .damaged;
// --resume-strict refuses instead and changes nothing.
TEST(Faults, ADamagedNewestCheckpointFallsBackToTheNewestIntactOne) {
  Fixture ref("fallback_ref");
  ref.cfg.train.steps = 12;
  const double uninterrupted = Trainer(ref.cfg, {}).run().last_train_loss;

  for (const char* damage : {"truncated", "bit flip"}) {
    Fixture f(std::string("fallback_") + (damage[0] == 't' ? "trunc" : "flip"));
    f.cfg.train.steps = 12;
    TrainerOptions first_eight;  // the 12-step schedule, stopped after the checkpoint at 8
    first_eight.stop_after = 8;
    Trainer(f.cfg, first_eight).run();
    const std::string newest = checkpoint_path(f.cfg.train.out_dir, 8);
    if (damage[0] == 't')
      fs::resize_file(newest, fs::file_size(newest) - 100);
    else
      flip_byte(newest, 0.5);
    const auto damaged_size = fs::file_size(newest);

    TrainerOptions strict;
    strict.resume = true;
    strict.strict_resume = true;
    try {
      Trainer t(f.cfg, strict);
      FAIL() << "expected --resume-strict to refuse";
    } catch (const CorruptCheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("ckpt_00000008.pt is corrupt"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(fs::file_size(newest), damaged_size);

    TrainerOptions resume;
    resume.resume = true;
    const auto r = Trainer(f.cfg, resume).run();
    EXPECT_EQ(r.steps_done, 12);
    EXPECT_EQ(r.last_train_loss, uninterrupted) << damage;
    EXPECT_TRUE(fs::exists(newest + ".damaged")) << damage;
    EXPECT_EQ(fs::file_size(newest + ".damaged"), damaged_size);
    EXPECT_TRUE(fs::exists(newest));  // written again at step 8 of the resumed run
    const std::string info = read_text(fs::path(f.cfg.train.out_dir) / "run_info.yaml");
    EXPECT_NE(info.find("skipped_damaged_checkpoints"), std::string::npos) << info;
  }
}

TEST(Faults, ABitFlipIsDetectedBeforeAnyStateIsTouchedAndBareOldCheckpointsLoad) {
  Fixture f("bitflip");
  f.cfg.train.steps = 4;
  Trainer(f.cfg, {}).run();
  const std::string ckpt = checkpoint_path(f.cfg.train.out_dir, 4);
  Transformer model(f.cfg.model, f.cfg.train.seed + 1);
  auto optimizer = make_optimizer(f.cfg.optim, model->named_params());
  std::vector<at::Tensor> before;
  for (const auto& p : model->parameters()) before.push_back(p.detach().clone());
  for (double where : {0.1, 0.5, 0.99}) {
    const std::string bad = (f.dir / "flipped.pt").string();
    fs::copy_file(ckpt, bad, fs::copy_options::overwrite_existing);
    flip_byte(bad, where);
    EXPECT_THROW(load_checkpoint(bad, *model, optimizer.get()), CorruptCheckpointError) << where;
  }
  const auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) ASSERT_TRUE(params[i].equal(before[i]));
  // A checkpoint from before the checksummed header is LibTorch's bare zip: it still loads.
  const std::string bare = (f.dir / "bare.pt").string();
  {
    std::ifstream in(ckpt, std::ios::binary);
    in.seekg(32);
    std::ofstream out(bare, std::ios::binary);
    out << in.rdbuf();
  }
  EXPECT_EQ(load_checkpoint(bare, *model, optimizer.get()).state.step, 4);
  EXPECT_FALSE(model->parameters()[0].equal(before[0]));
}

// A full disk while a checkpoint is written: a clear error naming the file, the size needed and
// the space free; the previous checkpoint intact and no temp file left behind.
TEST(Faults, AFullDiskDuringACheckpointKeepsThePreviousOneAndLeavesNoTempFile) {
  Fixture f("fulldisk_ckpt");
  f.cfg.train.steps = 4;
  Trainer(f.cfg, {}).run();
  const std::string good = checkpoint_path(f.cfg.train.out_dir, 4);
  const auto good_size = fs::file_size(good);
  f.cfg.train.steps = 8;
  TrainerOptions resume;
  resume.resume = true;
  Trainer t(f.cfg, resume);
  std::string what;
  {
    FileSizeLimit disk(good_size / 2);
    try {
      t.run();
    } catch (const CheckpointError& e) {
      what = e.what();
    }
  }
  EXPECT_NE(what.find("cannot write checkpoint " + checkpoint_path(f.cfg.train.out_dir, 8)),
            std::string::npos)
      << what;
  EXPECT_NE(what.find("File too large"), std::string::npos) << what;
  EXPECT_NE(what.find("the checkpoint needs"), std::string::npos) << what;
  EXPECT_TRUE(files_ending(f.cfg.train.out_dir, ".tmp").empty());
  EXPECT_EQ(fs::file_size(good), good_size);
  EXPECT_FALSE(fs::exists(checkpoint_path(f.cfg.train.out_dir, 8)));
  // The metrics hold steps 1..8 (written before the failed save), and the run resumes.
  EXPECT_EQ(column((fs::path(f.cfg.train.out_dir) / "metrics.csv").string(), 0).size(), 8u);
  EXPECT_EQ(Trainer(f.cfg, resume).run().steps_done, 8);
}

// A full disk while metrics are written: the run stops with a clear error instead of training on
// with holes in the curves.
TEST(Faults, AFullDiskDuringMetricsStopsTheRunWithAClearError) {
  Fixture f("fulldisk_metrics");
  f.cfg.train.steps = 4;
  f.cfg.train.ckpt_every = 0;
  Trainer(f.cfg, {}).run();
  const auto jsonl = fs::path(f.cfg.train.out_dir) / "metrics.jsonl";
  f.cfg.train.steps = 8;
  TrainerOptions resume;
  resume.resume = true;
  Trainer t(f.cfg, resume);
  std::string what;
  {
    FileSizeLimit disk(fs::file_size(jsonl) + 10);
    try {
      t.run();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
  }
  EXPECT_NE(what.find("cannot write metrics to " + f.cfg.train.out_dir + " at step 5"),
            std::string::npos)
      << what;
  EXPECT_TRUE(fs::exists(checkpoint_path(f.cfg.train.out_dir, 4)));
  // Space again: the resume drops the half-written row and the curves are whole.
  EXPECT_EQ(Trainer(f.cfg, resume).run().steps_done, 8);
  const auto steps = column((fs::path(f.cfg.train.out_dir) / "metrics.csv").string(), 0);
  ASSERT_EQ(steps.size(), 8u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i], std::to_string(i + 1));
}

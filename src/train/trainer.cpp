#include "scalevec/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "scalevec/compat.h"
#include "scalevec/config_io.h"
#include "scalevec/data_fingerprint.h"
#include "scalevec/hf_format.h"
#include "scalevec/log.h"
#include "scalevec/run_info.h"
#include "scalevec/schedule.h"

namespace scalevec {
namespace fs = std::filesystem;

namespace {

at::Device pick_device(const std::string& wanted, int local_rank) {
  if (wanted == "cpu") return at::Device(at::kCPU);
  const bool cuda = compat::cuda_available();
  if (wanted == "auto")
    return cuda ? at::Device(at::kCUDA, local_rank % std::max(1, compat::cuda_device_count()))
                : at::Device(at::kCPU);
  if (!cuda)
    throw std::runtime_error("train.device=" + wanted +
                             " but no CUDA device is available in this build/machine");
  if (wanted == "cuda") return at::Device(at::kCUDA, local_rank);
  return at::Device(wanted);
}

std::string human(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  if (v >= 1e6)
    os << v / 1e6 << "M";
  else if (v >= 1e3)
    os << v / 1e3 << "k";
  else
    os << v;
  return os.str();
}

// Every rank's host name (a collective under DDP: each rank fills its row of a sum).
std::vector<std::string> gather_host_names(Communicator& comm, int rank, int world_size) {
  constexpr int kLen = 64;
  char host[kLen] = {};
  ::gethostname(host, kLen - 1);
  if (world_size <= 1) return {host};
  at::Tensor t = at::zeros({world_size, kLen}, at::kFloat);
  for (int i = 0; i < kLen && host[i]; ++i) t[rank][i] = static_cast<unsigned char>(host[i]);
  t = t.to(comm.device());
  comm.allreduce_sum_(t);
  t = t.cpu();
  std::vector<std::string> out;
  for (int r = 0; r < world_size; ++r) {
    std::string name;
    for (int i = 0; i < kLen; ++i) {
      const int c = static_cast<int>(t[r][i].item<float>());
      if (c == 0) break;
      name.push_back(static_cast<char>(c));
    }
    out.push_back(name);
  }
  return out;
}

// "1h02m", "3m05s", "42s": time left at the current throughput (evals and probes not counted).
std::string eta_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof(text), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  else if (s >= 60)
    std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  else
    std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(s));
  return text;
}

// Metric names of the val sets: file stems, or parent_stem where stems repeat.
std::vector<std::string> val_set_names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  for (const auto& p : paths)  // a dataset manifest is named by its folder
    names.push_back(fs::path(p).extension() == ".json"
                        ? fs::path(p).parent_path().filename().string()
                        : fs::path(p).stem().string());
  const bool repeated = std::set<std::string>(names.begin(), names.end()).size() < names.size();
  if (repeated)
    for (size_t i = 0; i < paths.size(); ++i)
      names[i] = fs::path(paths[i]).parent_path().filename().string() + "_" +
                 fs::path(paths[i]).stem().string();
  return names;
}

}  // namespace

Trainer::Trainer(Config config, TrainerOptions options)
    : cfg_(std::move(config)),
      opts_(std::move(options)),
      env_(dist_env_from_environment()),
      device_(pick_device(cfg_.train.device, env_.local_rank)) {
  if (cfg_.train.threads > 0) {
    compat::set_cpu_threads(static_cast<int>(cfg_.train.threads));
  } else if (device_.is_cpu() && env_.world_size > 1) {
    // Ranks on one machine share its cores; oversubscribed BLAS pools spin instead of working.
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    compat::set_cpu_threads(std::max(1, cores / env_.world_size));
  }
  if (opts_.write_outputs && env_.rank == 0) {
    fs::create_directories(cfg_.train.out_dir);
    log::add_file_sink((fs::path(cfg_.train.out_dir) / "train.log").string());
  }
  comm_ = Communicator::create(env_, cfg_.dist.backend, device_,
                               std::chrono::seconds(cfg_.dist.timeout_s));

  model_ = Transformer(cfg_.model, cfg_.train.seed);
  model_->to(device_);
  params_ = model_->named_params();
  std::vector<at::Tensor> tensors;
  for (const auto& p : params_) tensors.push_back(p.tensor);
  if (env_.world_size > 1) {
    broadcast_parameters(*comm_, tensors);
    sync_ = std::make_unique<GradSynchronizer>(*comm_, tensors, cfg_.dist.bucket_mb);
  }
  optimizer_ = make_optimizer(cfg_.optim, params_);

  if (!opts_.synthetic_data) {
    const auto& d = cfg_.data;
    const bool mixture = !d.train_shards.empty();
    const std::vector<std::string> train_entries =
        mixture ? d.train_shards : std::vector<std::string>{d.train_shard};
    std::vector<std::string> train_paths;
    std::vector<double> train_weights;
    double entry_total = 0;
    for (size_t i = 0; i < train_entries.size(); ++i)
      entry_total += d.train_weights.empty() ? 1.0 : d.train_weights[i];
    for (size_t i = 0; i < train_entries.size(); ++i) {
      const double w = (d.train_weights.empty() ? 1.0 : d.train_weights[i]) / entry_total;
      train_entry_weights_.push_back(w);
      for (const auto& s :
           resolve_data_entry(train_entries[i], false, cfg_.train.seq_len, env_.world_size)) {
        train_paths.push_back(s.path);
        train_weights.push_back(w * s.weight);
      }
    }
    train_data_ = std::make_unique<MixtureLoader>(train_paths, train_weights, cfg_.train.seq_len,
                                                  cfg_.train.batch_size, cfg_.train.seed, env_.rank,
                                                  env_.world_size);
    const std::vector<std::string> val_paths =
        d.val_shards.empty() ? std::vector<std::string>{d.val_shard} : d.val_shards;
    for (const auto& entry : val_paths) {
      ValSet set;
      for (const auto& s : resolve_data_entry(entry, true, cfg_.train.seq_len, env_.world_size)) {
        set.shards.emplace_back(s.path, cfg_.train.seq_len, cfg_.train.batch_size, cfg_.train.seed,
                                env_.rank, env_.world_size);
        set.weights.push_back(s.weight);
      }
      val_sets_.push_back(std::move(set));
    }
    val_names_ = val_set_names(val_paths);
    std::vector<ShardIdentity> shards;
    for (size_t i = 0; i < train_data_->size(); ++i) {
      const ShardReader& shard = train_data_->source(i).shard();
      if (static_cast<int64_t>(shard.vocab_size()) > cfg_.model.vocab_size)
        throw std::runtime_error("shard " + shard.path() + " has vocab size " +
                                 std::to_string(shard.vocab_size()) + " but model.vocab_size is " +
                                 std::to_string(cfg_.model.vocab_size));
      const bool plain = !mixture && train_data_->size() == 1;
      shards.push_back(identify_shard(plain ? "train" : "train." + std::to_string(i), shard,
                                      plain ? 1.0 : train_data_->weight(i)));
    }
    for (size_t i = 0; i < val_sets_.size(); ++i)
      for (size_t j = 0; j < val_sets_[i].shards.size(); ++j) {
        const bool plain = val_sets_.size() == 1 && val_sets_[i].shards.size() == 1;
        shards.push_back(
            identify_shard(plain ? "val" : "val." + val_names_[i] + "." + std::to_string(j),
                           val_sets_[i].shards[j].shard(), plain ? 1.0 : val_sets_[i].weights[j]));
      }
    data_fingerprint_ =
        fingerprint_to_yaml(fingerprint_data(shards, d.tokenizer, cfg_.train.seq_len));
  }

  if (cfg_.train.probe_every > 0) {
    std::vector<Batch> batches;
    if (!val_sets_.empty()) {
      batches = probe_batches(val_sets_.front().shards.front(), cfg_.train);
    } else {  // synthetic data (bench): fixed random tokens
      auto gen = compat::make_generator(cfg_.train.seed + 4242, at::Device(at::kCPU));
      const int64_t rows =
          cfg_.train.probe_batch_size > 0 ? cfg_.train.probe_batch_size : cfg_.train.batch_size;
      for (int64_t i = 0; i < cfg_.train.probe_batches; ++i) {
        const at::Tensor t =
            at::randint(cfg_.model.vocab_size, {rows, cfg_.train.seq_len + 1}, gen, at::kLong);
        batches.push_back({t.slice(1, 0, -1), t.slice(1, 1)});
      }
    }
    for (auto& b : batches) b = {b.inputs.to(device_), b.targets.to(device_)};
    probe_ = std::make_unique<Probe>(cfg_.train, cfg_.optim, std::move(batches), comm_.get(),
                                     env_.world_size);
  }

  if (opts_.write_outputs && env_.rank == 0 && fs::is_directory(cfg_.train.out_dir)) {
    // Partial files of a writer killed mid-write (kill -9, power loss): never read, so removed.
    for (const auto& e : fs::directory_iterator(cfg_.train.out_dir))
      if (e.path().extension() == ".tmp") {
        log::warn("removing " + e.path().string() + ", left by an interrupted write");
        fs::remove(e.path());
      }
  }
  // --resume takes the newest checkpoint in out_dir that is intact, skipping damaged ones (unless
  // strict_resume); an explicit --resume-from file is that file or an error.
  std::vector<std::string> candidates;
  if (!opts_.resume_from.empty()) {
    candidates = {opts_.resume_from};
  } else if (opts_.resume) {
    candidates = list_checkpoints(cfg_.train.out_dir);
    std::reverse(candidates.begin(), candidates.end());
    if (candidates.empty())
      log::warn("--resume: no checkpoint in " + cfg_.train.out_dir + ", starting fresh");
  }
  if (candidates.empty() && opts_.write_outputs) {
    // A fresh start here would prune and overwrite the earlier run's checkpoints and metrics.
    const auto existing = list_checkpoints(cfg_.train.out_dir);
    if (!existing.empty())
      throw std::runtime_error("train.out_dir " + cfg_.train.out_dir +
                               " already holds a run (newest checkpoint " + existing.back() +
                               "); pass --resume to continue it, or set another train.out_dir");
  }
  std::string resume_path, data_check;
  std::vector<std::string> data_changes, skipped;
  for (const auto& path : candidates) {
    LoadedCheckpoint loaded;
    try {
      loaded = load_checkpoint(path, *model_, optimizer_.get());
    } catch (const CorruptCheckpointError& e) {
      if (!opts_.resume_from.empty() || opts_.strict_resume) throw;
      log::warn(std::string(e.what()) +
                "; trying the previous checkpoint (--resume-strict refuses)");
      skipped.push_back(path);
      continue;
    }
    resume_path = path;
    state_ = loaded.state;
    const Config saved = load_config_string(loaded.config_yaml, {}, resume_path + ":config");
    if (config_to_yaml(Config{saved.model}) != config_to_yaml(Config{cfg_.model}))
      throw CheckpointError("checkpoint " + resume_path +
                            " was written with a different model config; "
                            "resume with the config stored in it (see inspect-config)");
    std::tie(data_check, data_changes) = check_data(loaded, resume_path);
    log::info(log::cat("resumed from ", resume_path, " at step ", state_.step,
                       skipped.empty() ? ""
                                       : log::cat(" (the newest that is intact; skipped ",
                                                  skipped.size(), " damaged)")));
    break;
  }
  if (resume_path.empty() && !skipped.empty()) {
    std::string list;
    for (const auto& p : skipped) list += " " + p;
    throw CorruptCheckpointError("--resume: no checkpoint in " + cfg_.train.out_dir +
                                 " is intact (damaged:" + list +
                                 "); nothing was changed. Move them away to start over");
  }
  const bool init_from_folder = resume_path.empty() && !cfg_.train.init_from.empty();
  if (init_from_folder) {
    load_hf_weights(cfg_.train.init_from, *model_);
    log::info("initialized the weights from " + cfg_.train.init_from);
  }
  if (opts_.write_outputs) {
    RunRecord record;
    if (init_from_folder) record.init_from = cfg_.train.init_from;
    record.data_check = data_check;
    record.data_changes = data_changes;
    record.event = resume_path.empty() ? "start" : "resume";
    record.step = state_.step;
    record.resumed_from = resume_path;
    record.command_line = opts_.command_line;
    record.world_size = env_.world_size;
    record.hosts = gather_host_names(*comm_, env_.rank, env_.world_size);
    record.skipped_checkpoints = skipped;
    if (env_.rank == 0) {
      for (const auto& line : append_run_info(cfg_.train.out_dir, record)) log::info(line);
      // Out of the checkpoint list (pruning would keep them over good ones), but not deleted.
      // Every rank has loaded by now: the host-name gather above is a collective.
      for (const auto& p : skipped) {
        fs::rename(p, p + ".damaged");
        log::warn("kept the damaged checkpoint as " + p + ".damaged");
      }
    }
  }
  if (opts_.write_outputs && env_.rank == 0)
    save_config(cfg_, (fs::path(cfg_.train.out_dir) / "config.resolved.yaml").string());
  log::info(log::cat("device ", device_.str(), ", world size ", env_.world_size, ", params ",
                     model_->num_params(), ", FLOPs/token ", flops_per_token()));
  log::info("optimizer groups:\n" + format_summary(optimizer_->summary()));
}

Trainer::~Trainer() = default;

std::pair<std::string, std::vector<std::string>> Trainer::check_data(
    const LoadedCheckpoint& loaded, const std::string& path) const {
  if (data_fingerprint_.empty()) return {"not checked: synthetic data", {}};
  if (loaded.data_fingerprint.empty()) {
    log::warn("checkpoint " + path +
              " carries no data fingerprint (written before scalevec stored one): cannot check "
              "that the data is the same as when it was written");
    return {"not checked: the checkpoint has no data fingerprint", {}};
  }
  const auto cmp = compare_fingerprints(fingerprint_from_yaml(loaded.data_fingerprint, path),
                                        fingerprint_from_yaml(data_fingerprint_, "this run"));
  for (const auto& note : cmp.notes) log::info("data: " + note);
  if (cmp.changes.empty()) return {"unchanged", {}};
  std::string list;
  for (const auto& c : cmp.changes) list += "\n  " + c;
  if (!opts_.allow_data_change)
    throw CheckpointError("checkpoint " + path +
                          " was written on other data than this run reads:" + list +
                          "\nrestore the data, or pass --allow-data-change to continue on the new "
                          "data on purpose (recorded in run_info.yaml)");
  log::warn("--allow-data-change: continuing on data that differs from the checkpoint's:" + list);
  return {"changed, allowed by --allow-data-change", cmp.changes};
}

double Trainer::flops_per_token() const {
  return model_->flops_per_token(cfg_.train.seq_len);
}

Batch Trainer::micro_batch(int64_t step, int64_t micro) const {
  Batch b;
  if (opts_.synthetic_data) {
    auto gen = compat::make_generator(
        cfg_.train.seed + 7919 * static_cast<uint64_t>(step * 64 + micro), at::Device(at::kCPU));
    const at::Tensor t = at::randint(
        cfg_.model.vocab_size, {cfg_.train.batch_size, cfg_.train.seq_len + 1}, gen, at::kLong);
    b = {t.slice(1, 0, -1), t.slice(1, 1)};
  } else {
    b = train_data_->batch_at(step, micro);  // a mixture of one shard: the plain loader's batches
  }
  const bool pin = device_.is_cuda();
  return {b.inputs.to(device_, /*non_blocking=*/pin), b.targets.to(device_, pin)};
}

bool Trainer::stop_requested() const {
  return env_.world_size > 1 ? any_rank_stopping_ : stop_signal_received();
}

double Trainer::train_step(int64_t step) {
  std::vector<Batch> micro;
  for (int64_t m = 0; m < cfg_.train.grad_accum; ++m) micro.push_back(micro_batch(step, m));
  optimizer_->zero_grad();
  const bool bf16 = cfg_.train.precision == Precision::Bf16 && device_.is_cuda();
  at::Tensor ce = accumulate_gradients(*model_, micro, sync_.get(), bf16);
  if (sync_) sync_->finish();
  const at::Tensor gnorm = clip_grad_norm(params_, cfg_.optim.grad_clip);
  // One host sync per step: the NaN policy must decide before the update.
  const at::Tensor both = at::stack({ce.to(at::kDouble), gnorm.to(at::kDouble)}).cpu();
  double loss = both[0].item<double>();
  const double gn = both[1].item<double>();
  if (env_.world_size > 1) {
    // The stop flag rides on the loss all-reduce: no extra collective per step.
    at::Tensor t = at::tensor({loss, stop_signal_received() ? 1.0 : 0.0}, at::kDouble).to(device_);
    comm_->allreduce_sum_(t);
    const at::Tensor host = t.cpu();
    loss = host[0].item<double>() / env_.world_size;
    any_rank_stopping_ = host[1].item<double>() > 0;
  }
  if (!std::isfinite(loss) || !std::isfinite(gn)) {
    ++state_.nan_skips;
    optimizer_->zero_grad();
    const std::string what =
        log::cat("step ", step, ": non-finite loss ", loss, " / grad norm ", gn);
    if (cfg_.train.nan_policy == NanPolicy::Stop)
      throw std::runtime_error(what + " (train.nan_policy=stop; last checkpoint kept)");
    if (state_.nan_skips > cfg_.train.max_nan_skips)
      throw std::runtime_error(
          what + ": more than train.max_nan_skips=" + std::to_string(cfg_.train.max_nan_skips) +
          " skipped steps; stopping (last checkpoint kept)");
    log::warn(what + ", update skipped");
    last_grad_norm_ = gn;
    return loss;
  }
  optimizer_->step(lr_scale(cfg_.schedule, step, cfg_.train.steps));
  last_grad_norm_ = gn;
  return loss;
}

std::map<std::string, double> Trainer::probe(int64_t step) {
  if (!probe_) return {};
  // The probe's autograd::grad calls reach the parameters' gradient hooks on LibTorch 2.x: the
  // DDP synchronizer must not take them for a training gradient.
  struct SyncPause {
    GradSynchronizer* sync;
    bool was = false;
    explicit SyncPause(GradSynchronizer* s) : sync(s) {
      if (sync) {
        was = sync->sync_enabled();
        sync->set_sync_enabled(false);
      }
    }
    ~SyncPause() {
      if (sync) sync->set_sync_enabled(was);
    }
  } pause(sync_.get());
  return probe_->run(*model_, params_, *optimizer_, lr_scale(cfg_.schedule, step, cfg_.train.steps),
                     step);
}

double Trainer::evaluate() {
  last_val_by_set_.clear();
  if (val_sets_.empty()) return NAN;
  at::NoGradGuard no_grad;
  const bool bf16 = cfg_.train.precision == Precision::Bf16 && device_.is_cuda();
  std::vector<double> losses;
  for (const auto& set : val_sets_) {
    double loss = 0;  // a dataset's shards weighted by their tokens
    for (size_t j = 0; j < set.shards.size(); ++j) {
      const TokenWindowLoader& shard = set.shards[j];
      const int64_t n = std::min<int64_t>(cfg_.train.eval_batches, shard.eval_batches_available());
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const Batch b = shard.eval_batch(i);
        compat::CudaAutocastGuard autocast(bf16);
        sum += model_->loss(b.inputs.to(device_), b.targets.to(device_)).ce.item<double>();
      }
      const double local = sum / std::max<int64_t>(n, 1);
      loss += set.weights[j] * (env_.world_size > 1 ? comm_->allreduce_mean(local) : local);
    }
    losses.push_back(loss);
  }
  if (losses.size() == 1) return losses[0];
  // Several val sets: each reported; val_loss weighs them as the training mixture does when
  // they pair up with its shards, else equally.
  const bool paired = losses.size() == train_entry_weights_.size();
  double total = 0;
  for (size_t i = 0; i < losses.size(); ++i) {
    last_val_by_set_["val_loss." + val_names_[i]] = losses[i];
    total += losses[i] * (paired ? train_entry_weights_[i] : 1.0 / losses.size());
  }
  return total;
}

void Trainer::save(const TrainState& state) {
  if (!opts_.write_outputs) return;
  if (env_.rank == 0) {
    const std::string path = checkpoint_path(cfg_.train.out_dir, state.step);
    save_checkpoint(path, *model_, *optimizer_, state, cfg_, data_fingerprint_);
    prune_checkpoints(cfg_.train.out_dir, cfg_.train.keep_last);
    log::info("saved " + path);
  }
  if (env_.world_size > 1) comm_->barrier();  // nobody runs ahead of a checkpoint being written
}

TrainResult Trainer::run() {
  TrainResult result;
  const auto& t = cfg_.train;
  std::unique_ptr<MetricsWriter> metrics;
  if (opts_.write_outputs && env_.rank == 0) {
    std::vector<std::string> columns = scale_statistic_columns(*model_);
    if (val_sets_.size() > 1)
      for (const auto& name : val_names_) columns.push_back("val_loss." + name);
    if (probe_)
      for (auto& c : probe_->columns(*model_)) columns.push_back(std::move(c));
    metrics = std::make_unique<MetricsWriter>(
        t.out_dir, std::move(columns),
        state_.step > 0 ? std::optional<int64_t>(state_.step) : std::nullopt);
  }
  const int64_t tokens_per_step = t.batch_size * t.seq_len * t.grad_accum * env_.world_size;
  const double peak = t.peak_tflops * 1e12;
  const int64_t first = state_.step;
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_tokens = 0;
  double tokens_per_s = 0;
  for (int64_t step = first; step < t.steps; ++step) {
    const double loss = train_step(step);
    state_.step = step + 1;
    state_.tokens += tokens_per_step;
    window_tokens += tokens_per_step;
    result.last_train_loss = loss;
    const bool last = state_.step == t.steps;
    StepMetrics m;
    m.step = state_.step;
    m.tokens = state_.tokens;
    m.lr = cfg_.optim.lr * lr_scale(cfg_.schedule, step, t.steps);
    m.train_loss = loss;
    m.grad_norm = last_grad_norm_;
    if ((t.eval_every > 0 && state_.step % t.eval_every == 0) || last) {
      m.val_loss = evaluate();
      result.last_val_loss = m.val_loss;
      m.extra.insert(last_val_by_set_.begin(), last_val_by_set_.end());
    }
    const bool log_now = state_.step % t.log_every == 0 || last || m.val_loss;
    if (log_now) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      tokens_per_s = window_tokens / std::max(secs, 1e-9);
      window_start = std::chrono::steady_clock::now();
      window_tokens = 0;
      m.extra = scale_statistics(*model_);
    }
    m.tokens_per_s = tokens_per_s;
    if (probe_ && (state_.step % t.probe_every == 0 || last)) {
      // After the update, with the step size the next update will use (every rank takes part).
      const auto values = probe(state_.step);
      m.extra.insert(values.begin(), values.end());
      log::info(log::cat("step ", state_.step, " ", Probe::summary(values)));
      // The probe's time is not training throughput.
      window_start += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double, std::milli>(values.at("probe.ms")));
    }
    if (device_.is_cuda()) m.mfu = tokens_per_s * flops_per_token() / (peak * env_.world_size);
    if (metrics) metrics->write(m);
    if (log_now) {
      std::ostringstream line;
      line << "step " << state_.step << "/" << t.steps << " | loss " << std::fixed
           << std::setprecision(4) << loss;
      if (m.val_loss) line << " | val " << *m.val_loss;
      line << std::setprecision(2) << std::scientific << " | lr " << m.lr << std::fixed
           << " | gnorm " << std::setprecision(3) << m.grad_norm << " | " << human(tokens_per_s)
           << " tok/s";
      if (m.mfu) line << " | mfu " << std::setprecision(1) << *m.mfu * 100 << "%";
      if (!last && tokens_per_s > 0)
        line << " | ETA " << eta_text((t.steps - state_.step) * tokens_per_step / tokens_per_s);
      log::info(line.str());
    }
    const bool stop_now = stop_requested();
    const bool planned_stop = opts_.stop_after >= 0 && state_.step - first >= opts_.stop_after;
    if ((t.ckpt_every > 0 && state_.step % t.ckpt_every == 0) || last || stop_now || planned_stop)
      save(state_);
    if (stop_now || planned_stop) {
      result.interrupted = stop_now;
      if (stop_now) log::warn(log::cat("stop signal: saved step ", state_.step, ", exiting"));
      break;
    }
  }
  result.steps_done = state_.step;
  result.steps_run = state_.step - first;
  log::flush();
  return result;
}

}  // namespace scalevec

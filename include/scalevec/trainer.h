// The training loop: data-parallel steps with accumulation, clipping, schedules, NaN policy,
// periodic evaluation, metrics, atomic checkpoints, exact resume and clean stop on signals.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scalevec/checkpoint.h"
#include "scalevec/config.h"
#include "scalevec/data.h"
#include "scalevec/dist.h"
#include "scalevec/metrics.h"
#include "scalevec/model.h"
#include "scalevec/optim.h"
#include "scalevec/probe.h"

namespace scalevec {

// Forward + backward over micro-batches, each loss scaled by 1/count so the gradients equal one
// pass over their union. Only the last micro-batch triggers gradient communication.
// Returns the mean cross-entropy (detached, on the model's device).
at::Tensor accumulate_gradients(TransformerImpl& model, const std::vector<Batch>& micro_batches,
                                GradSynchronizer* sync, bool bf16_autocast);

// Mean, std, min, max of the scale vectors at each norm position ("scale.pre_attn.mean", ...).
std::map<std::string, double> scale_statistics(TransformerImpl& model);
std::vector<std::string> scale_statistic_columns(TransformerImpl& model);

struct TrainerOptions {
  bool resume = false;          // continue from the newest intact checkpoint in train.out_dir
  bool strict_resume = false;   // with resume: refuse a damaged newest checkpoint, no fallback
  std::string resume_from;      // or from this checkpoint file
  int64_t stop_after = -1;      // stop (with a checkpoint) after this many steps in this run
  bool synthetic_data = false;  // random tokens instead of shards (benchmarks)
  bool write_outputs = true;    // metrics, logs, checkpoints, resolved config, run_info.yaml
  // Resume even when the data differs from the checkpoint's fingerprint (recorded in run_info).
  bool allow_data_change = false;
  std::vector<std::string> command_line;  // recorded in run_info.yaml
};

struct TrainResult {
  int64_t steps_done = 0;  // the step reached (counting steps before a resume)
  int64_t steps_run = 0;   // steps taken by this invocation
  double last_train_loss = 0;
  std::optional<double> last_val_loss;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after saving
};

struct StepTiming {
  double ms = 0;
  double loss = 0;
};

class Trainer {
 public:
  Trainer(Config config, TrainerOptions options);
  ~Trainer();
  TrainResult run();
  double evaluate();
  // One optimizer step on batch source step `step` (used by run() and the benchmark).
  double train_step(int64_t step);
  // The mechanism probes at `step` (steps done); empty when train.probe_every = 0.
  std::map<std::string, double> probe(int64_t step);

  TransformerImpl& model() { return *model_; }
  const Config& config() const { return cfg_; }
  const at::Device& device() const { return device_; }
  int rank() const { return env_.rank; }
  double flops_per_token() const;

 private:
  Batch micro_batch(int64_t step, int64_t micro) const;
  void save(const TrainState& state);
  // Compares the checkpoint's data fingerprint with the data read now: throws CheckpointError on
  // a change unless allow_data_change; returns what run_info records about it.
  std::pair<std::string, std::vector<std::string>> check_data(const LoadedCheckpoint& loaded,
                                                              const std::string& path) const;
  bool stop_requested() const;

  Config cfg_;
  TrainerOptions opts_;
  DistEnv env_;
  at::Device device_;
  std::unique_ptr<Communicator> comm_;
  Transformer model_{nullptr};
  std::vector<NamedParam> params_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<GradSynchronizer> sync_;
  std::unique_ptr<MixtureLoader> train_data_;  // one shard or a weighted mixture
  // Train entries' normalized weights (an entry is a shard or a dataset manifest).
  std::vector<double> train_entry_weights_;
  // One val set per val entry: its shards and their token shares.
  struct ValSet {
    std::vector<TokenWindowLoader> shards;
    std::vector<double> weights;
  };
  std::vector<ValSet> val_sets_;
  std::vector<std::string> val_names_;
  std::map<std::string, double> last_val_by_set_;  // "val_loss.<name>" at the last evaluate()
  std::string data_fingerprint_;  // YAML of fingerprint_data(); "" on synthetic data
  std::unique_ptr<Probe> probe_;  // null when train.probe_every = 0
  TrainState state_;
  double last_grad_norm_ = 0;
  // Under DDP: whether any rank had a stop signal at the last step's loss all-reduce, so that
  // every rank saves and leaves after the same step (a lone rank leaving would hang the rest).
  bool any_rank_stopping_ = false;
};

// Installs SIGINT/SIGTERM handlers that ask the running trainer to save and stop.
void install_stop_signal_handlers();
bool stop_signal_received();

}  // namespace scalevec

// Data-parallel training over c10d: environment discovery, a communicator, and bucketed
// gradient all-reduce that overlaps with backward. c10d types stay out of this header.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace scalevec {

// Where this process sits in the job (torchrun / SLURM conventions).
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// Reads RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT, else SLURM_PROCID/SLURM_NTASKS/
// SLURM_LOCALID; world_size 1 when neither is set. Throws std::invalid_argument on bad values.
DistEnv dist_env_from_environment();
// Same, with an injectable variable lookup (for tests).
DistEnv dist_env_from_variables(
    const std::function<std::optional<std::string>(const std::string&)>& lookup);

// A launched collective. wait() blocks until it finished; throws (naming rank and operation)
// when it failed or the communicator's timeout passed.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
};

// One process group (Gloo on CPU, NCCL on CUDA) with a TCPStore rendezvous at
// master_addr:master_port, served by rank 0. Every collective is bounded by `timeout`.
class Communicator {
 public:
  // backend: "auto" (NCCL for CUDA devices, Gloo otherwise) | "nccl" | "gloo".
  static std::unique_ptr<Communicator> create(const DistEnv& env, const std::string& backend,
                                              const at::Device& device,
                                              std::chrono::seconds timeout);
  // Whether this build can create `backend` ("gloo" | "nccl"; depends on LibTorch's headers).
  static bool backend_available(const std::string& backend);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int world_size() const;
  const std::string& backend() const;
  const at::Device& device() const;
  std::chrono::seconds timeout() const;

  // In-place, blocking collectives on tensors living on device().
  void broadcast_(std::vector<at::Tensor>& tensors, int root = 0);
  void allreduce_sum_(at::Tensor& tensor);
  void allreduce_mean_(at::Tensor& tensor);
  // Mean of a host scalar over ranks (loss, throughput) for logging.
  double allreduce_mean(double value);
  void barrier();

  // Launches an in-place sum without waiting; `what` names it in errors.
  std::unique_ptr<PendingCollective> allreduce_sum_async(at::Tensor& tensor,
                                                         const std::string& what);

  struct Impl;

 private:
  explicit Communicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Copies rank 0's parameter values to every rank (call once after model init).
void broadcast_parameters(Communicator& comm, const std::vector<at::Tensor>& params, int root = 0);

// DDP-style gradient averaging: parameters are grouped into ~bucket_mb buckets in reverse
// registration order; a bucket's all-reduce starts from an autograd hook as soon as all its
// gradients exist, overlapping with the rest of backward. finish() completes the step.
//
// Per optimizer step with K micro-steps:
//   sync.set_sync_enabled(false) for micro-steps 1..K-1 (grads just accumulate locally),
//   sync.set_sync_enabled(true) before the last backward, then sync.finish() before clipping /
//   optimizer.step(). Unused parameters must be unused on every rank (else ranks' bucket order
//   would diverge, as with torch DDP without find_unused_parameters).
class GradSynchronizer {
 public:
  GradSynchronizer(Communicator& comm, std::vector<at::Tensor> params, double bucket_mb);
  ~GradSynchronizer();
  GradSynchronizer(const GradSynchronizer&) = delete;
  GradSynchronizer& operator=(const GradSynchronizer&) = delete;

  void set_sync_enabled(bool enabled);
  bool sync_enabled() const;
  // Waits for all buckets (launching those whose params got no grad in the last backward,
  // counting the missing grads as zeros), divides by world_size and writes .grad.
  // No-op while sync is disabled.
  void finish();

  size_t num_buckets() const { return buckets_.size(); }
  // Total bucket all-reduces launched so far (tests, logging).
  int64_t collectives_launched() const;

 private:
  struct Bucket {
    std::vector<size_t> params;    // indices into params_
    std::vector<int64_t> offsets;  // element offset of each param in flat
    at::Tensor flat;
    size_t ready = 0;
    std::unique_ptr<PendingCollective> pending;
  };

  void on_grad(size_t param_index, const at::Tensor& grad);
  void launch(Bucket& bucket, size_t bucket_index);

  Communicator& comm_;
  std::vector<at::Tensor> params_;
  std::vector<unsigned> hook_handles_;
  std::vector<size_t> bucket_of_;  // param index -> bucket index
  std::vector<bool> got_grad_;     // per param, in the current synced backward
  std::vector<Bucket> buckets_;
  std::vector<size_t> launch_order_;
  mutable std::mutex mutex_;  // hooks may run on autograd's device threads
  bool sync_enabled_ = true;
  int64_t launched_ = 0;
};

}  // namespace scalevec

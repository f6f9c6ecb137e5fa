// Bucketed gradient all-reduce driven by autograd hooks, and the initial parameter broadcast.
#include <torch/autograd.h>

#include <algorithm>
#include <cstdint>

#include "scalevec/dist.h"
#include "scalevec/log.h"

namespace scalevec {

void broadcast_parameters(Communicator& comm, const std::vector<at::Tensor>& params, int root) {
  if (comm.world_size() == 1) return;
  at::NoGradGuard no_grad;
  for (const auto& param : params) {
    at::Tensor data = param.detach();  // shares storage: the broadcast writes the parameter
    std::vector<at::Tensor> buffer{data.is_contiguous() ? data : data.contiguous()};
    comm.broadcast_(buffer, root);
    if (!buffer[0].is_same(data)) data.copy_(buffer[0]);
  }
}

GradSynchronizer::GradSynchronizer(Communicator& comm, std::vector<at::Tensor> params,
                                   double bucket_mb)
    : comm_(comm), params_(std::move(params)) {
  TORCH_CHECK(bucket_mb > 0, "GradSynchronizer: bucket_mb must be > 0, got ", bucket_mb);
  const auto cap_bytes = static_cast<int64_t>(bucket_mb * 1024.0 * 1024.0);
  bucket_of_.assign(params_.size(), SIZE_MAX);
  got_grad_.assign(params_.size(), false);

  // Reverse registration order approximates the order in which backward produces grads, so
  // the first bucket fills (and starts communicating) early in backward.
  Bucket current;
  int64_t current_bytes = 0;
  auto close = [&] {
    if (current.params.empty()) return;
    const auto& first = params_[current.params.front()];
    const int64_t numel = current.offsets.back() + params_[current.params.back()].numel();
    current.flat = at::zeros({numel}, first.options().requires_grad(false));
    buckets_.push_back(std::move(current));
    current = Bucket();
    current_bytes = 0;
  };
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    TORCH_CHECK(p.defined() && p.is_leaf(), "GradSynchronizer: parameter ", k,
                " must be a defined leaf tensor");
    if (!p.requires_grad()) continue;
    if (!current.params.empty()) {
      const auto& head = params_[current.params.front()];
      if (head.scalar_type() != p.scalar_type() || head.device() != p.device()) close();
    }
    const int64_t offset = current.params.empty()
                               ? 0
                               : current.offsets.back() + params_[current.params.back()].numel();
    bucket_of_[k] = buckets_.size();
    current.params.push_back(k);
    current.offsets.push_back(offset);
    current_bytes += p.numel() * static_cast<int64_t>(p.element_size());
    if (current_bytes >= cap_bytes) close();
  }
  close();

  // A hook on a leaf parameter runs as a pre-hook of its AccumulateGrad node: it receives this
  // backward's (already summed) gradient before it is added into .grad, once per backward.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (bucket_of_[k] == SIZE_MAX) continue;
    hook_handles_.push_back(
        params_[k].register_hook([this, k](const at::Tensor& grad) { on_grad(k, grad); }));
  }
  if (comm_.rank() == 0) {
    log::debug(log::cat("GradSynchronizer: ", buckets_.size(), " buckets of <= ", bucket_mb,
                        " MB over ", hook_handles_.size(), " parameters"));
  }
}

GradSynchronizer::~GradSynchronizer() {
  // Hooks capture `this`; drop them so a later backward cannot call into a dead object.
  size_t h = 0;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (bucket_of_[k] == SIZE_MAX) continue;
    params_[k].remove_hook(hook_handles_[h++]);
  }
}

void GradSynchronizer::set_sync_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(mutex_);
  sync_enabled_ = enabled;
}

bool GradSynchronizer::sync_enabled() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sync_enabled_;
}

int64_t GradSynchronizer::collectives_launched() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return launched_;
}

void GradSynchronizer::on_grad(size_t param_index, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!sync_enabled_ || !grad.defined()) return;  // accumulation micro-step: stay local
  TORCH_CHECK(!got_grad_[param_index], "GradSynchronizer: parameter ", param_index,
              " got a second gradient in one synced step; call finish() after each synced "
              "backward and disable sync for accumulation micro-steps");
  got_grad_[param_index] = true;
  const size_t b = bucket_of_[param_index];
  Bucket& bucket = buckets_[b];
  const auto pos = static_cast<size_t>(
      std::find(bucket.params.begin(), bucket.params.end(), param_index) - bucket.params.begin());
  const auto& param = params_[param_index];
  at::NoGradGuard no_grad;
  auto slice = bucket.flat.narrow(0, bucket.offsets[pos], param.numel()).view(param.sizes());
  slice.copy_(grad);
  // .grad still holds the earlier micro-steps' sum here (AccumulateGrad runs after this hook).
  if (param.grad().defined()) slice.add_(param.grad());
  if (++bucket.ready == bucket.params.size()) launch(bucket, b);
}

void GradSynchronizer::launch(Bucket& bucket, size_t bucket_index) {
  bucket.pending = comm_.allreduce_sum_async(
      bucket.flat, log::cat("grad bucket ", bucket_index, "/", buckets_.size()));
  launch_order_.push_back(bucket_index);
  ++launched_;
}

void GradSynchronizer::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!sync_enabled_) return;
  at::NoGradGuard no_grad;
  // Buckets whose params got no grad this backward: their grad is the earlier micro-steps'
  // .grad, or zeros; launched in bucket order, which every rank shares.
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    if (bucket.pending) continue;
    for (size_t pos = 0; pos < bucket.params.size(); ++pos) {
      const size_t k = bucket.params[pos];
      if (got_grad_[k]) continue;
      auto slice = bucket.flat.narrow(0, bucket.offsets[pos], params_[k].numel());
      const auto& acc = params_[k].grad();
      if (acc.defined()) {
        slice.copy_(acc.reshape({-1}));
      } else {
        slice.zero_();
      }
    }
    launch(bucket, b);
  }
  for (size_t b : launch_order_) {
    buckets_[b].pending->wait();
    buckets_[b].pending.reset();
  }
  const int world = comm_.world_size();
  for (auto& bucket : buckets_) {
    if (world > 1) bucket.flat.div_(world);
    for (size_t pos = 0; pos < bucket.params.size(); ++pos) {
      auto& param = params_[bucket.params[pos]];
      auto slice = bucket.flat.narrow(0, bucket.offsets[pos], param.numel()).view(param.sizes());
      if (param.grad().defined()) {
        param.mutable_grad().copy_(slice);
      } else {
        param.mutable_grad() = slice.clone();
      }
    }
    bucket.ready = 0;
  }
  std::fill(got_grad_.begin(), got_grad_.end(), false);
  launch_order_.clear();
}

}  // namespace scalevec

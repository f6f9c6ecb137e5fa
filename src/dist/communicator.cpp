// Communicator: rendezvous, backend choice and timeout-bounded collectives.
#include <stdexcept>

#include "scalevec/dist.h"
#include "scalevec/dist_compat.h"
#include "scalevec/log.h"

namespace scalevec {

struct Communicator::Impl {
  int rank = 0;
  int world_size = 1;
  std::string backend = "none";
  at::Device device = at::kCPU;
  std::chrono::seconds timeout{300};
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<dist_compat::CollectiveBackend> pg;  // null when world_size == 1

  std::string who(const std::string& what) const {
    return log::cat("rank ", rank, "/", world_size, ": ", backend, " ", what);
  }
};

namespace {

std::string error_text(const std::exception& e) {
  // c10::Error::what() carries a C++ backtrace; the short form is enough here.
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

class WorkHandle final : public PendingCollective {
 public:
  WorkHandle(c10::intrusive_ptr<c10d::Work> work, std::string who, std::chrono::seconds timeout)
      : work_(std::move(work)), who_(std::move(who)), timeout_(timeout) {}

  void wait() override {
    if (!work_) return;
    auto work = std::move(work_);
    bool completed = false;
    try {
      completed = work->wait(std::chrono::milliseconds(timeout_));
    } catch (const std::exception& e) {
      throw std::runtime_error(log::cat(who_, " failed or timed out (timeout ", timeout_.count(),
                                        " s; did a peer die?): ", error_text(e)));
    }
    if (!completed) throw std::runtime_error(who_ + " was aborted");
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::string who_;
  std::chrono::seconds timeout_;
};

// Nothing to wait for (world_size 1).
class DoneHandle final : public PendingCollective {
 public:
  void wait() override {}
};

std::string resolve_backend(const std::string& requested, const at::Device& device) {
  const std::string backend =
      requested == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : requested;
  if (backend != "gloo" && backend != "nccl") {
    throw std::invalid_argument("dist.backend must be auto|nccl|gloo, got '" + requested + "'");
  }
  if (backend == "nccl" && !device.is_cuda()) {
    throw std::invalid_argument("dist.backend=nccl needs a CUDA device, got " + device.str());
  }
  return backend;
}

}  // namespace

std::unique_ptr<Communicator> Communicator::create(const DistEnv& env, const std::string& backend,
                                                   const at::Device& device,
                                                   std::chrono::seconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->rank = env.rank;
  impl->world_size = env.world_size;
  impl->device = device;
  impl->timeout = timeout;
  if (env.world_size == 1) return std::unique_ptr<Communicator>(new Communicator(std::move(impl)));

  impl->backend = resolve_backend(backend, device);
  const std::chrono::milliseconds timeout_ms(timeout);
  try {
    impl->store = dist_compat::make_tcp_store(env.master_addr, env.master_port, env.rank == 0,
                                              env.world_size, timeout_ms);
    if (impl->backend == "nccl") {
      impl->pg =
          dist_compat::make_nccl_backend(impl->store, env.rank, env.world_size, timeout_ms, device);
    } else {
      impl->pg = dist_compat::make_gloo_backend(impl->store, env.rank, env.world_size, timeout_ms,
                                                env.master_addr);
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(log::cat(impl->who("rendezvous at "), env.master_addr, ":",
                                      env.master_port, " failed (timeout ", timeout.count(),
                                      " s): ", error_text(e)));
  }
  if (env.rank == 0) {
    log::info(log::cat("dist: ", impl->backend, " world_size=", env.world_size, " via ",
                       env.master_addr, ":", env.master_port, " timeout=", timeout.count(), "s"));
  }
  return std::unique_ptr<Communicator>(new Communicator(std::move(impl)));
}

bool Communicator::backend_available(const std::string& backend) {
  if (backend == "gloo") return dist_compat::gloo_available();
  if (backend == "nccl") return dist_compat::nccl_available();
  return false;
}

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::~Communicator() = default;

int Communicator::rank() const {
  return impl_->rank;
}
int Communicator::world_size() const {
  return impl_->world_size;
}
const std::string& Communicator::backend() const {
  return impl_->backend;
}
const at::Device& Communicator::device() const {
  return impl_->device;
}
std::chrono::seconds Communicator::timeout() const {
  return impl_->timeout;
}

std::unique_ptr<PendingCollective> Communicator::allreduce_sum_async(at::Tensor& tensor,
                                                                     const std::string& what) {
  if (!impl_->pg) return std::make_unique<DoneHandle>();
  std::vector<at::Tensor> tensors{tensor};
  const std::string who = impl_->who("allreduce(" + what + ")");
  try {
    return std::make_unique<WorkHandle>(impl_->pg->allreduce_sum(tensors), who, impl_->timeout);
  } catch (const std::exception& e) {
    throw std::runtime_error(who + " could not start: " + error_text(e));
  }
}

void Communicator::allreduce_sum_(at::Tensor& tensor) {
  allreduce_sum_async(tensor, "tensor")->wait();
}

void Communicator::allreduce_mean_(at::Tensor& tensor) {
  allreduce_sum_(tensor);
  if (impl_->world_size > 1) tensor.div_(impl_->world_size);
}

double Communicator::allreduce_mean(double value) {
  if (!impl_->pg) return value;
  auto t = at::full({1}, value, at::TensorOptions().dtype(at::kDouble).device(impl_->device));
  allreduce_sum_async(t, "scalar")->wait();
  return t.item<double>() / impl_->world_size;
}

void Communicator::broadcast_(std::vector<at::Tensor>& tensors, int root) {
  if (!impl_->pg) return;
  TORCH_CHECK(root >= 0 && root < impl_->world_size, "broadcast root ", root, " out of range");
  const std::string who = impl_->who(log::cat("broadcast(root=", root, ")"));
  // c10d broadcasts one tensor per call and process; go one at a time.
  for (auto& tensor : tensors) {
    std::vector<at::Tensor> one{tensor};
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = impl_->pg->broadcast(one, root);
    } catch (const std::exception& e) {
      throw std::runtime_error(who + " could not start: " + error_text(e));
    }
    WorkHandle(std::move(work), who, impl_->timeout).wait();
  }
}

void Communicator::barrier() {
  if (!impl_->pg) return;
  // A one-element all-reduce: same timeout handling as every other collective, and no
  // backend-specific device guessing (NCCL's barrier() picks a device from the rank).
  auto t = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(impl_->device));
  allreduce_sum_async(t, "barrier")->wait();
}

}  // namespace scalevec

// c10d (torch.distributed C++) access for 1.13 and 2.x. The only place allowed to hold
// `#if SCALEVEC_TORCH_AT_LEAST(...)` for c10d; include it from src/dist/*.cpp and tests only.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "scalevec/compat.h"

namespace scalevec::dist_compat {

// ProcessGroupGloo/NCCL derive from c10d::ProcessGroup in 1.13 but from c10d::Backend in 2.x;
// wrapping the concrete class in this interface keeps that base class out of our code.
class CollectiveBackend {
 public:
  virtual ~CollectiveBackend() = default;
  virtual c10::intrusive_ptr<c10d::Work> allreduce_sum(std::vector<at::Tensor>& tensors) = 0;
  virtual c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors, int root) = 0;
};

// The calls used here have the same spelling in 1.13 and 2.x (2.x adds defaulted arguments).
template <typename PG>
class ProcessGroupBackend final : public CollectiveBackend {
 public:
  explicit ProcessGroupBackend(c10::intrusive_ptr<PG> pg) : pg_(std::move(pg)) {}
  c10::intrusive_ptr<c10d::Work> allreduce_sum(std::vector<at::Tensor>& tensors) override {
    c10d::AllreduceOptions opts;  // reduceOp defaults to SUM
    return pg_->allreduce(tensors, opts);
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors, int root) override {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    return pg_->broadcast(tensors, opts);
  }

 private:
  c10::intrusive_ptr<PG> pg_;
};

// TCPStore rendezvous; rank 0 serves it and waits up to `timeout` for world_size clients.
c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, int port, bool is_server,
                                               int world_size, std::chrono::milliseconds timeout);

// Gloo over the loopback device when master_addr is local, else GLOO_SOCKET_IFNAME or the
// hostname's interface. Throws when LibTorch's Gloo headers were not found at configure time.
std::unique_ptr<CollectiveBackend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                     int rank, int size,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& master_addr);

// NCCL on `device` (CUDA builds with USE_C10D_NCCL only; throws otherwise).
std::unique_ptr<CollectiveBackend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                     int rank, int size,
                                                     std::chrono::milliseconds timeout,
                                                     const at::Device& device);

bool gloo_available();
bool nccl_available();
// NCCL version of the build's headers ("2.22.3"), "none" without NCCL.
std::string nccl_build_version();

}  // namespace scalevec::dist_compat

// NCCL process group (CUDA collectives). Compiled only in CUDA builds where CMake sets
// USE_C10D_NCCL; elsewhere make_nccl_backend throws.
#include "scalevec/dist_compat.h"

#if defined(SCALEVEC_WITH_CUDA) && defined(USE_C10D_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define SCALEVEC_HAS_NCCL 1
#endif

namespace scalevec::dist_compat {

bool nccl_available() {
#ifdef SCALEVEC_HAS_NCCL
  return true;
#else
  return false;
#endif
}

std::string nccl_build_version() {
#if defined(SCALEVEC_HAS_NCCL) && defined(NCCL_MAJOR)
  return std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + "." +
         std::to_string(NCCL_PATCH);
#elif defined(SCALEVEC_HAS_NCCL)
  return "linked";
#else
  return "none";
#endif
}

std::unique_ptr<CollectiveBackend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                     int rank, int size,
                                                     std::chrono::milliseconds timeout,
                                                     const at::Device& device) {
#ifdef SCALEVEC_HAS_NCCL
  TORCH_CHECK(device.is_cuda() && device.has_index(), "NCCL needs a CUDA device with an index");
  // NCCL communicators bind to the current device when first used.
  c10::cuda::set_device(device.index());
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  // The watchdog aborts collectives that run past this (no hang when a peer dies).
  opts->timeout = timeout;
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
  return std::make_unique<ProcessGroupBackend<c10d::ProcessGroupNCCL>>(std::move(pg));
#else
  (void)store, (void)rank, (void)size, (void)timeout, (void)device;
  TORCH_CHECK(false, "scalevec was built without NCCL (needs a CUDA build of LibTorch with NCCL)");
#endif
}

}  // namespace scalevec::dist_compat

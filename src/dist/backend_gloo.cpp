// Gloo process group (CPU collectives).
#include <cstdlib>

#include "scalevec/dist_compat.h"

#ifdef SCALEVEC_WITH_GLOO
// LibTorch's CMake config does not export USE_C10D_GLOO, and the header is empty without it.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace scalevec::dist_compat {

bool gloo_available() {
#ifdef SCALEVEC_WITH_GLOO
  return true;
#else
  return false;
#endif
}

#ifdef SCALEVEC_WITH_GLOO
namespace {

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

}  // namespace
#endif

std::unique_ptr<CollectiveBackend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                     int rank, int size,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& master_addr) {
#ifdef SCALEVEC_WITH_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (is_loopback(master_addr)) {
    // Single-node jobs: bind loopback so no external interface is needed.
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
  return std::make_unique<ProcessGroupBackend<c10d::ProcessGroupGloo>>(std::move(pg));
#else
  (void)store, (void)rank, (void)size, (void)timeout, (void)master_addr;
  TORCH_CHECK(false, "scalevec was built without Gloo headers (gloo/algorithm.h not found)");
#endif
}

}  // namespace scalevec::dist_compat

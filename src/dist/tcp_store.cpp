// TCPStore rendezvous construction.
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <string>

#include "scalevec/dist_compat.h"

namespace scalevec::dist_compat {

namespace {

c10::intrusive_ptr<c10d::Store> connect(const std::string& host,
                                        const c10d::TCPStoreOptions& opts) {
  return c10::make_intrusive<c10d::TCPStore>(host, opts);
}

// USE_LIBUV=0 turns the libuv server off, as it does for Python torch.
[[maybe_unused]] bool libuv_wanted() {
  const char* value = std::getenv("USE_LIBUV");
  return value == nullptr || std::string(value) != "0";
}

}  // namespace

c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, int port, bool is_server,
                                               int world_size, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(port);
  opts.isServer = is_server;
  opts.numWorkers = static_cast<std::size_t>(world_size);
  opts.waitWorkers = true;
  opts.timeout = timeout;
#if SCALEVEC_TORCH_AT_LEAST(2, 2)
  // LibTorch >= 2.4 asks for the libuv server by default, and builds without libuv (Debian's
  // 2.6) throw before opening any socket. Their probe (is_libuv_tcpstore_backend_available) is
  // not exported, so try libuv and fall back to the classic server, which speaks the same protocol.
  opts.useLibUV = libuv_wanted();
  try {
    return connect(host, opts);
  } catch (const c10::Error& e) {
    if (!opts.useLibUV || std::string(e.what()).find("libuv") == std::string::npos) throw;
    opts.useLibUV = false;
    return connect(host, opts);
  }
#else
  return connect(host, opts);
#endif
}

}  // namespace scalevec::dist_compat

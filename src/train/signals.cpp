#include <csignal>

#include "scalevec/trainer.h"

namespace scalevec {
namespace {
// A signal handler can only talk through a lock-free flag: this is the one process-wide state.
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) {
  g_stop.store(true);
}
}  // namespace

void install_stop_signal_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_signal_received() {
  return g_stop.load();
}

}  // namespace scalevec

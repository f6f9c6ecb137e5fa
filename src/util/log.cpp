// The only translation unit that includes spdlog. It must include no LibTorch header.
#include "scalevec/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <vector>

namespace scalevec::log {
namespace {

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto l = std::make_shared<spdlog::logger>("scalevec", sink);
    l->set_pattern("[%H:%M:%S] %^%l%$ %v");
    return l;
  }();
  return instance;
}

}  // namespace

void init(int rank, const std::string& file_path, bool verbose) {
  auto& l = logger();
  l->set_level(rank == 0 ? (verbose ? spdlog::level::debug : spdlog::level::info)
                         : spdlog::level::warn);
  l->set_pattern(rank == 0 ? "[%H:%M:%S] %^%l%$ %v"
                           : "[%H:%M:%S] [rank " + std::to_string(rank) + "] %^%l%$ %v");
  if (!file_path.empty()) add_file_sink(file_path);
}

void add_file_sink(const std::string& file_path) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file_path, /*truncate=*/false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l %v");
  logger()->sinks().push_back(sink);
  logger()->flush_on(spdlog::level::info);
}

void flush() {
  logger()->flush();
}
void debug(const std::string& msg) {
  logger()->debug(msg);
}
void info(const std::string& msg) {
  logger()->info(msg);
}
void warn(const std::string& msg) {
  logger()->warn(msg);
}
void error(const std::string& msg) {
  logger()->error(msg);
}

}  // namespace scalevec::log

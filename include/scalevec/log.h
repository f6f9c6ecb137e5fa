// Logging facade. spdlog stays behind this header (see src/util/log.cpp) so that no
// translation unit ever sees both LibTorch's bundled fmt and spdlog's fmt.
#pragma once

#include <sstream>
#include <string>

namespace scalevec::log {

// Console + optional file sink; ranks other than 0 log warnings and errors only.
void init(int rank, const std::string& file_path = "", bool verbose = false);
void add_file_sink(const std::string& file_path);
void flush();

void debug(const std::string& msg);
void info(const std::string& msg);
void warn(const std::string& msg);
void error(const std::string& msg);

// Concatenates any streamable values: log::info(cat("step ", step, " loss ", loss)).
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace scalevec::log

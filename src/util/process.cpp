#include "scalevec/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace scalevec {
namespace {

// Spawns argv with stdout optionally redirected to stdout_fd; returns the child's pid.
pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, int close_fd) {
  if (argv.empty() || argv[0].empty()) throw ProcessError("run_process: empty command");
  const std::string& program = argv[0];
  // posix_spawnp reports a missing program only as exit code 127 on some libcs; check first.
  if (program.find('/') != std::string::npos && ::access(program.c_str(), X_OK) != 0)
    throw ProcessError("program not found or not executable: " + program + " (" +
                       std::strerror(errno) + ")");

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, stdout_fd);
  }
  if (close_fd >= 0) posix_spawn_file_actions_addclose(&actions, close_fd);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, program.c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw ProcessError("cannot start " + format_command(argv) + ": " + std::strerror(rc));
  return pid;
}

int wait_for(pid_t pid, const std::vector<std::string>& argv) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      throw ProcessError("waitpid failed for " + format_command(argv) + ": " +
                         std::strerror(errno));
  }
  if (WIFSIGNALED(status))
    throw ProcessError(format_command(argv) + " was killed by signal " +
                       std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string format_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`") == std::string::npos;
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

int run_process(const std::vector<std::string>& argv) {
  return wait_for(spawn(argv, -1, -1), argv);
}

void run_process_checked(const std::vector<std::string>& argv) {
  const int code = run_process(argv);
  if (code == 127)
    throw ProcessError("program not found: " + argv[0] + " (exit code 127 from " +
                       format_command(argv) + ")");
  if (code != 0)
    throw ProcessError("command failed with exit code " + std::to_string(code) + ": " +
                       format_command(argv));
}

ProcessResult run_process_capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw ProcessError("pipe failed for " + format_command(argv) + ": " + std::strerror(errno));
  pid_t pid = 0;
  try {
    pid = spawn(argv, fds[1], fds[0]);
  } catch (...) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw;
  }
  ::close(fds[1]);
  ProcessResult result;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  result.exit_code = wait_for(pid, argv);
  return result;
}

std::string executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw ProcessError("cannot resolve /proc/self/exe: " + ec.message());
  return exe.parent_path().string();
}

}  // namespace scalevec

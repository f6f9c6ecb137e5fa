// Running helper programs (the tokenizer tool) as subprocesses. Torch-free.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace scalevec {

// A program that is missing, cannot start, is killed by a signal, or (run_checked) fails.
class ProcessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ProcessResult {
  int exit_code = 0;
  std::string output;  // captured stdout (stderr is passed through)
};

// Runs argv (argv[0] is a path, or a name looked up on PATH), waits, returns the exit code.
int run_process(const std::vector<std::string>& argv);
// Same, but throws ProcessError naming the command when the exit code is not 0.
void run_process_checked(const std::vector<std::string>& argv);
// Runs argv and captures its stdout.
ProcessResult run_process_capture(const std::vector<std::string>& argv);

// Directory that holds the running executable (from /proc/self/exe).
std::string executable_dir();

// argv joined with spaces, quoting words that need it; for error messages and logs.
std::string format_command(const std::vector<std::string>& argv);

}  // namespace scalevec

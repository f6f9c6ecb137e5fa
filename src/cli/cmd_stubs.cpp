// Temporary: subcommands not written yet.
#include "commands.h"
#include <iostream>
namespace scalevec::cli {
int cmd_inspect_config(const Args&) { std::cerr << "not implemented\n"; return 1; }
int cmd_inspect_model(const Args&) { std::cerr << "not implemented\n"; return 1; }
}  // namespace scalevec::cli

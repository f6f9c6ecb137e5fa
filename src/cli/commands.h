// One function per `scalevec` subcommand; each returns the process exit code.
#pragma once

#include "args.h"

namespace scalevec::cli {

int cmd_train(const Args& args);
int cmd_eval(const Args& args);
int cmd_bench(const Args& args);
int cmd_prepare_data(const Args& args);
int cmd_bench_data(const Args& args);
int cmd_inspect_config(const Args& args);
int cmd_inspect_model(const Args& args);
int cmd_export(const Args& args);
int cmd_import(const Args& args);

}  // namespace scalevec::cli

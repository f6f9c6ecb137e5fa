// Provenance of a run: <out_dir>/run_info.yaml gets one record per start or resume, with the
// build (commit, libraries, compiler), the machine, the ranks' hosts, the command line and the
// environment variables that change behaviour (docs/reproducibility.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace scalevec {

struct RunRecord {
  std::string event = "start";  // "start" or "resume"
  int64_t step = 0;             // the step the run starts from
  std::string resumed_from;     // checkpoint path on resume
  std::string init_from;        // HF folder the weights of a fresh start came from
  std::vector<std::string> command_line;
  int world_size = 1;
  std::vector<std::string> hosts;  // one per rank
  // On resume: the data check's verdict ("unchanged", "changed, allowed by --allow-data-change",
  // "not checked: ...") and the differences it found.
  std::string data_check;
  std::vector<std::string> data_changes;
  // Damaged checkpoints --resume passed over (renamed to <name>.damaged).
  std::vector<std::string> skipped_checkpoints;
};

// Appends `record` (plus build, machine, environment and the time) to <out_dir>/run_info.yaml,
// written atomically; an unreadable old file is kept as run_info.yaml.prev. Returns the lines
// that summarize it for the training log.
std::vector<std::string> append_run_info(const std::string& out_dir, const RunRecord& record);

}  // namespace scalevec

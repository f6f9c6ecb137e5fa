// Checkpoints: model tensors, optimizer state, trainer counters, RNG state and the resolved config
// in one file behind a checksummed header, written atomically (temp file + fsync + rename) and
// pruned to the newest N.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/model.h"
#include "scalevec/optim.h"

namespace scalevec {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The file itself is damaged (truncated, bit flips, not a checkpoint), as opposed to a checkpoint
// that does not fit this run: an older checkpoint may still serve.
class CorruptCheckpointError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

// Everything besides model and optimizer that a bit-exact resume needs. The data loader is a
// pure function of (seed, step), so `step` is its position.
struct TrainState {
  int64_t step = 0;       // optimizer steps completed
  int64_t tokens = 0;     // tokens consumed, all ranks
  int64_t nan_skips = 0;  // steps skipped for a non-finite loss or gradient
};

std::string checkpoint_path(const std::string& out_dir, int64_t step);
// Checkpoint files in out_dir, oldest first.
std::vector<std::string> list_checkpoints(const std::string& out_dir);

// `data_fingerprint` (fingerprint_to_yaml) identifies the data the run reads; "" stores none.
void save_checkpoint(const std::string& path, TransformerImpl& model, const Optimizer& optimizer,
                     const TrainState& state, const Config& config,
                     const std::string& data_fingerprint = "");

struct LoadedCheckpoint {
  TrainState state;
  std::string config_yaml;
  std::string data_fingerprint;  // "" in checkpoints written before scalevec stored one
};
// Loads into an already built model/optimizer; every tensor's shape is checked by name.
// `optimizer` may be null (evaluation).
LoadedCheckpoint load_checkpoint(const std::string& path, TransformerImpl& model,
                                 Optimizer* optimizer);

// Deletes all but the newest keep_last checkpoints (never the one just written).
void prune_checkpoints(const std::string& out_dir, int64_t keep_last);

}  // namespace scalevec

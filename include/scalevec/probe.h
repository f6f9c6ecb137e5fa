// Mechanism probes (docs/probes.md): every train.probe_every steps, on a fixed batch drawn once
// from the validation data, the loss Hessian's top eigenvalue (sharpness), the top eigenvalue of
// Adam's preconditioned Hessian, optionally a Hutchinson trace, and per norm position the scale
// vectors against the linear maps that read them (the gamma-W balance of the paper's argument).
// Probes never touch the parameters' gradients, the optimizer state, the data order or any
// global RNG: a run with probes on trains bit-for-bit like the same run with probes off.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/data.h"
#include "scalevec/dist.h"
#include "scalevec/model.h"
#include "scalevec/optim.h"

namespace scalevec {

// Per norm position (and per side of the map for relocated scales), from the current weights:
//   probe.<pos>[.out].gamma_norm   mean over the position's vectors of ||gamma||_2
//   probe.<pos>[.out].gamma2_min   min_j gamma_j^2 (the paper's lower bound on the preconditioner)
//   probe.<pos>[.out].gamma2_max   max_j gamma_j^2
//   probe.<pos>[.out].w_norm       mean Frobenius norm of the maps that read each vector
//   probe.<pos>[.out].balance      sum ||gamma||^2 / sum ||W||_F^2 over the pairs that share the
//                                  rescaling symmetry gamma*c, W/c (1 = balanced; absent where
//                                  no map can absorb gamma: Output-Norms, the DNP output side)
// Input side: gamma against the columns of every map reading it; ".out": DP/DNP's output-side
// vector of each branch against that branch's rows.
std::map<std::string, double> balance_statistics(TransformerImpl& model);

class Probe {
 public:
  // `batches` on the model's device. `comm` (may be null) all-reduces every Hessian-vector
  // product, so under DDP the probes measure the Hessian of the mean loss over all ranks'
  // probe batches and every rank gets the same numbers.
  Probe(const TrainConfig& cfg, const OptimConfig& optim, std::vector<Batch> batches,
        Communicator* comm, int world_size);

  // Every column run() can fill, for the metrics header.
  std::vector<std::string> columns(TransformerImpl& model) const;
  // Measures at `step` (steps done); `lr_scale` is the schedule multiplier of the next update.
  std::map<std::string, double> run(TransformerImpl& model, const std::vector<NamedParam>& params,
                                    const Optimizer& optimizer, double lr_scale, int64_t step);
  // One line for the training log.
  static std::string summary(const std::map<std::string, double>& values);

 private:
  TrainConfig cfg_;
  OptimConfig optim_;
  std::vector<Batch> batches_;
  Communicator* comm_;
  int world_size_;
};

// The probe batch: the first `train.probe_batches` validation batches, each cut to
// `train.probe_batch_size` sequences.
std::vector<Batch> probe_batches(const TokenWindowLoader& val, const TrainConfig& cfg);

}  // namespace scalevec

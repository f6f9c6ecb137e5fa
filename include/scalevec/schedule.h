// Learning-rate schedules as a multiplier on every group's base lr (see docs/optim.md).
#pragma once

#include <cstdint>

#include "scalevec/config.h"

namespace scalevec {

// Multiplier for the update at `step` (counted from 0) of a run of `total_steps` updates.
// Warmup (all kinds): (step + 1) / warmup_steps for step < warmup_steps.
// cosine:   min + (1 - min) * (1 + cos(pi * t)) / 2, t = (step - warmup) / (total - warmup).
// wsd:      1.0, then linear from 1.0 to min over the last round(decay_fraction * total) steps.
// constant: 1.0.
// Cosine and WSD reach min_lr_ratio at step == total_steps and stay there beyond it.
double lr_scale(const ScheduleConfig& cfg, int64_t step, int64_t total_steps);

}  // namespace scalevec

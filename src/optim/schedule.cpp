#include "scalevec/schedule.h"

#include <algorithm>
#include <cmath>

namespace scalevec {

namespace {
const double kPi = std::acos(-1.0);  // M_PI is not standard C++
}  // namespace

double lr_scale(const ScheduleConfig& cfg, int64_t step, int64_t total_steps) {
  const int64_t warmup = std::max<int64_t>(cfg.warmup_steps, 0);
  if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double min = cfg.min_lr_ratio;
  switch (cfg.name) {
    case ScheduleKind::Constant:
      return 1.0;
    case ScheduleKind::Cosine: {
      const double span = static_cast<double>(std::max<int64_t>(total_steps - warmup, 1));
      const double t = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
      return min + (1.0 - min) * 0.5 * (1.0 + std::cos(kPi * t));
    }
    case ScheduleKind::Wsd: {
      const auto decay = static_cast<int64_t>(std::llround(cfg.decay_fraction * total_steps));
      // The decay never eats into warmup: a too-short run decays right after warmup.
      const int64_t start = std::max(warmup, total_steps - decay);
      if (step < start) return 1.0;
      const double span = static_cast<double>(std::max<int64_t>(total_steps - start, 1));
      const double t = std::min(static_cast<double>(step - start) / span, 1.0);
      return 1.0 - (1.0 - min) * t;
    }
  }
  return 1.0;
}

}  // namespace scalevec

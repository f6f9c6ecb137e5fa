#include <gtest/gtest.h>

#include <cmath>

#include "scalevec/schedule.h"

using scalevec::lr_scale;
using scalevec::ScheduleConfig;
using scalevec::ScheduleKind;

namespace {
ScheduleConfig make(ScheduleKind kind, int64_t warmup, double min_ratio, double decay = 0.2) {
  ScheduleConfig c;
  c.name = kind;
  c.warmup_steps = warmup;
  c.min_lr_ratio = min_ratio;
  c.decay_fraction = decay;
  return c;
}
}  // namespace

TEST(Schedule, WarmupIsLinearFromOneOverWarmup) {
  for (auto kind : {ScheduleKind::Cosine, ScheduleKind::Wsd, ScheduleKind::Constant}) {
    const auto c = make(kind, 10, 0.1);
    EXPECT_DOUBLE_EQ(lr_scale(c, 0, 1000), 0.1);
    EXPECT_DOUBLE_EQ(lr_scale(c, 4, 1000), 0.5);
    EXPECT_DOUBLE_EQ(lr_scale(c, 9, 1000), 1.0);
    EXPECT_DOUBLE_EQ(lr_scale(c, 10, 1000), 1.0);  // first post-warmup step is the peak
  }
}

TEST(Schedule, CosineKnownPoints) {
  const auto c = make(ScheduleKind::Cosine, 10, 0.1);
  const int64_t total = 110;  // 100 decay steps after warmup
  EXPECT_DOUBLE_EQ(lr_scale(c, 10, total), 1.0);
  EXPECT_NEAR(lr_scale(c, 60, total), (1.0 + 0.1) / 2.0, 1e-12);  // midpoint
  // A quarter in: min + (1 - min) * (1 + cos(pi / 4)) / 2.
  EXPECT_NEAR(lr_scale(c, 35, total), 0.1 + 0.9 * 0.5 * (1.0 + std::sqrt(0.5)), 1e-12);
  EXPECT_NEAR(lr_scale(c, total, total), 0.1, 1e-12);
  EXPECT_NEAR(lr_scale(c, total + 50, total), 0.1, 1e-12);
  for (int64_t s = 11; s <= total; ++s) EXPECT_LT(lr_scale(c, s, total), lr_scale(c, s - 1, total));
}

TEST(Schedule, CosineWithoutWarmupStartsAtPeak) {
  const auto c = make(ScheduleKind::Cosine, 0, 0.0);
  EXPECT_DOUBLE_EQ(lr_scale(c, 0, 100), 1.0);
  EXPECT_NEAR(lr_scale(c, 50, 100), 0.5, 1e-12);
  EXPECT_NEAR(lr_scale(c, 100, 100), 0.0, 1e-12);
}

TEST(Schedule, WsdStableThenLinearDecay) {
  const auto c = make(ScheduleKind::Wsd, 10, 0.1, 0.2);
  const int64_t total = 100;  // decay over steps [80, 100]
  for (int64_t s = 10; s < 80; ++s) EXPECT_DOUBLE_EQ(lr_scale(c, s, total), 1.0) << s;
  EXPECT_DOUBLE_EQ(lr_scale(c, 80, total), 1.0);
  EXPECT_NEAR(lr_scale(c, 90, total), 1.0 - 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(lr_scale(c, 95, total), 1.0 - 0.9 * 0.75, 1e-12);
  EXPECT_NEAR(lr_scale(c, total, total), 0.1, 1e-12);
  EXPECT_NEAR(lr_scale(c, total + 7, total), 0.1, 1e-12);
}

TEST(Schedule, ConstantAfterWarmup) {
  const auto c = make(ScheduleKind::Constant, 5, 0.1);
  EXPECT_DOUBLE_EQ(lr_scale(c, 0, 100), 0.2);
  EXPECT_DOUBLE_EQ(lr_scale(c, 4, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_scale(c, 50, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_scale(c, 1000, 100), 1.0);
}

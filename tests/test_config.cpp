#include <gtest/gtest.h>
#include "scalevec/config_io.h"
TEST(Config, Defaults) { EXPECT_EQ(scalevec::Config{}.model.d_model, 256); }

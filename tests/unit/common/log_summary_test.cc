// The rate-limited summary of refused calls, on a simulated clock.
#include "rogatory/common/log_summary.h"

#include "gtest/gtest.h"
#include "rogatory/common/clock.h"

namespace rogatory::common {
namespace {

TEST(LogSummaryTest, ReportsTheFirstEventAndCountsTheRestUntilTheIntervalPasses) {
  SimulatedClock clock;
  LogSummary summary(clock, absl::Minutes(1));
  EXPECT_EQ(summary.Note("unauthenticated"), 1);  // a line at once
  for (int i = 0; i < 199; ++i) {
    EXPECT_EQ(summary.Note("unauthenticated"), 0);
    clock.Advance(absl::Milliseconds(100));  // 19.9 s in all: still within the interval
  }
  EXPECT_EQ(summary.pending("unauthenticated"), 199);
  clock.Advance(absl::Seconds(41));
  EXPECT_EQ(summary.Note("unauthenticated"), 200);  // the 199 counted and this one
  EXPECT_EQ(summary.pending("unauthenticated"), 0);
  EXPECT_EQ(summary.Note("unauthenticated"), 0);
}

TEST(LogSummaryTest, KindsAreCountedApart) {
  SimulatedClock clock;
  LogSummary summary(clock, absl::Seconds(10));
  EXPECT_EQ(summary.Note("unauthenticated"), 1);
  EXPECT_EQ(summary.Note("unparsable"), 1);
  EXPECT_EQ(summary.Note("unparsable"), 0);
  EXPECT_EQ(summary.pending("unauthenticated"), 0);
  EXPECT_EQ(summary.pending("unparsable"), 1);
  EXPECT_EQ(summary.pending("never-seen"), 0);
}

}  // namespace
}  // namespace rogatory::common

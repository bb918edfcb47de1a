// The Clock API: wall time and a monotonic reading that cannot be mixed with it; the
// simulated clock moves both only when told, the real one never goes back.
#include "rogatory/common/clock.h"

#include <type_traits>

#include "gtest/gtest.h"

namespace rogatory::common {
namespace {

// A monotonic reading is its own type: no absl::Time arithmetic compiles with it.
static_assert(!std::is_convertible_v<MonotonicTime, absl::Time>);
static_assert(!std::is_convertible_v<absl::Time, MonotonicTime>);
static_assert(!std::is_convertible_v<absl::Duration, MonotonicTime>);

TEST(MonotonicTimeTest, ArithmeticAndOrderFollowTheDurationSinceTheOrigin) {
  const MonotonicTime t = MonotonicTime::FromOrigin(absl::Seconds(10));
  EXPECT_EQ((t + absl::Seconds(5)).SinceOrigin(), absl::Seconds(15));
  EXPECT_EQ((absl::Seconds(5) + t).SinceOrigin(), absl::Seconds(15));
  EXPECT_EQ((t - absl::Seconds(4)).SinceOrigin(), absl::Seconds(6));
  EXPECT_EQ((t + absl::Milliseconds(1500)) - t, absl::Milliseconds(1500));
  EXPECT_LT(t, t + absl::Nanoseconds(1));
  EXPECT_GT(t, t - absl::Nanoseconds(1));
  EXPECT_LE(t, t);
  EXPECT_GE(t, t);
  EXPECT_NE(t, t + absl::Nanoseconds(1));
  EXPECT_EQ(MonotonicTime().SinceOrigin(), absl::ZeroDuration());
  EXPECT_LT(MonotonicTime::InfinitePast(), MonotonicTime::FromOrigin(-absl::Hours(1'000'000)));
  EXPECT_GT(MonotonicTime::InfiniteFuture(), MonotonicTime::FromOrigin(absl::Hours(1'000'000)));
}

TEST(SimulatedClockTest, MonotonicReadingMovesOnlyWithAdvance) {
  SimulatedClock clock;
  const MonotonicTime start = clock.MonotonicNow();
  EXPECT_EQ(clock.MonotonicNow(), start);  // no time passes by itself
  clock.Advance(absl::Seconds(90));
  EXPECT_EQ(clock.MonotonicNow() - start, absl::Seconds(90));
  EXPECT_EQ(clock.Now(), SimulatedClock().Now() + absl::Seconds(90));  // both together
}

TEST(SimulatedClockTest, SettingWallTimeLeavesTheMonotonicReadingAlone) {
  SimulatedClock clock;
  const MonotonicTime start = clock.MonotonicNow();
  clock.Set(clock.Now() + absl::Hours(24 * 30));
  EXPECT_EQ(clock.MonotonicNow(), start);
  clock.Set(clock.Now() - absl::Hours(24 * 60));
  EXPECT_EQ(clock.MonotonicNow(), start);
}

TEST(SimulatedClockTest, MonotonicReadingNeverGoesBackWhenWallTimeDoes) {
  SimulatedClock clock;
  const absl::Time wall = clock.Now();
  const MonotonicTime start = clock.MonotonicNow();
  clock.Advance(-absl::Minutes(5));
  EXPECT_EQ(clock.Now(), wall - absl::Minutes(5));
  EXPECT_EQ(clock.MonotonicNow(), start);
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(clock.MonotonicNow() - start, absl::Minutes(1));
}

TEST(RealClockTest, MonotonicReadingNeverGoesBack) {
  RealClock clock;
  MonotonicTime last = clock.MonotonicNow();
  for (int i = 0; i < 100000; ++i) {
    const MonotonicTime now = clock.MonotonicNow();
    ASSERT_GE(now, last) << i;
    last = now;
  }
  EXPECT_GT(last, MonotonicTime());  // steady_clock's origin lies in the past
}

}  // namespace
}  // namespace rogatory::common

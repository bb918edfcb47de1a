// The one backoff with jitter every retry loop uses: doubling per attempt up to the cap,
// randomised in the upper half of each step, drawn from the caller's random source.
#include "rogatory/common/backoff.h"

#include <random>

#include "gtest/gtest.h"

namespace rogatory::common {
namespace {

constexpr Backoff kPolicy{absl::Milliseconds(100), absl::Seconds(2)};

TEST(BackoffTest, EachAttemptDoublesTheStepUpToTheCap) {
  // u = 1: the whole step.
  EXPECT_EQ(kPolicy.Delay(1, 1.0), absl::Milliseconds(100));
  EXPECT_EQ(kPolicy.Delay(2, 1.0), absl::Milliseconds(200));
  EXPECT_EQ(kPolicy.Delay(3, 1.0), absl::Milliseconds(400));
  EXPECT_EQ(kPolicy.Delay(5, 1.0), absl::Milliseconds(1600));
  EXPECT_EQ(kPolicy.Delay(6, 1.0), absl::Seconds(2));
  EXPECT_EQ(kPolicy.Delay(1000000, 1.0), absl::Seconds(2));  // no overflow on long outages
}

TEST(BackoffTest, TheRandomFractionSpreadsTheUpperHalfOfTheStep) {
  EXPECT_EQ(kPolicy.Delay(3, 0.0), absl::Milliseconds(200));
  EXPECT_EQ(kPolicy.Delay(3, 0.5), absl::Milliseconds(300));
  EXPECT_EQ(kPolicy.Delay(6, 0.0), absl::Seconds(1));
}

TEST(BackoffTest, AnAttemptBelowOneIsTheFirst) {
  EXPECT_EQ(kPolicy.Delay(0, 1.0), kPolicy.Delay(1, 1.0));
  EXPECT_EQ(kPolicy.Delay(-3, 0.0), kPolicy.Delay(1, 0.0));
}

TEST(BackoffTest, DrawsFromTheCallersRandomSourceWithinTheStep) {
  std::minstd_rand a(42), b(42);
  bool spread = false;
  absl::Duration first;
  for (int i = 0; i < 50; ++i) {
    const absl::Duration d = kPolicy.Delay(4, a);
    EXPECT_GE(d, absl::Milliseconds(400));
    EXPECT_LE(d, absl::Milliseconds(800));
    EXPECT_EQ(d, kPolicy.Delay(4, b));  // the same seed, the same delays
    if (i == 0) first = d;
    spread = spread || d != first;
  }
  EXPECT_TRUE(spread) << "every draw gave " << first;
}

}  // namespace
}  // namespace rogatory::common

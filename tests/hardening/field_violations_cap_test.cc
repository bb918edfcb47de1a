// FieldViolations reports a bounded number of violations, however many bad items a
// request carries.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rogatory/common/status.h"

namespace rogatory::common {
namespace {

using ::testing::EndsWith;

TEST(FieldViolationsCapTest, AMillionBadItemsGiveABoundedAnswer) {
  FieldViolations v;
  for (int i = 0; i < 1'000'000; ++i) v.Add("items[" + std::to_string(i) + "]", "bad");
  absl::Status s = v.ToStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GetFieldViolations(s).size(), FieldViolations::kMaxReported);
  EXPECT_THAT(std::string(s.message()), EndsWith("and 999900 more"));
  EXPECT_LT(s.message().size(), 10'000u);
}

TEST(FieldViolationsCapTest, FewViolationsAreAllReported) {
  FieldViolations v;
  v.Add("a", "bad");
  v.Add("b", "bad");
  EXPECT_EQ(GetFieldViolations(v.ToStatus()).size(), 2u);
  EXPECT_EQ(v.ToStatus().message(), "invalid request: a: bad; b: bad");
}

}  // namespace
}  // namespace rogatory::common

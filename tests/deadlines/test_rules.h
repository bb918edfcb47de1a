#pragma once

// Shared helpers of the deadline tests: the reference rules and calendars of the source
// tree, and times written as local civil times.
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rules.h"

namespace rogatory::deadlines::testing {

inline std::shared_ptr<const RuleSet> ReferenceRules() {
  static std::shared_ptr<const RuleSet> rules = [] {
    auto r = RuleSet::Load(ROGATORY_DEADLINES_DATA_DIR);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nullptr;
  }();
  return rules;
}

inline absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone tz;
  EXPECT_TRUE(absl::LoadTimeZone(name, &tz)) << name;
  return tz;
}

// A local civil time in an IANA zone.
inline absl::Time Local(const std::string& zone, int y, int mo, int d, int h = 0, int mi = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), Zone(zone));
}

inline absl::Time Utc(int y, int mo, int d, int h = 0, int mi = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), absl::UTCTimeZone());
}

// The place of an executing authority in `state` (and `region`).
inline CountingPlace PlaceOf(const std::string& state, const std::string& region = "") {
  common::v1::AuthorityRef a;
  a.set_authority_id("TEST-AUTHORITY");
  a.set_state(state);
  a.set_region(region);
  return ReferenceRules()->calendars().PlaceFor(a, state);
}

inline const v1::DeadlineRule& Rule(const std::string& id) {
  const v1::DeadlineRule* r = ReferenceRules()->Find(id);
  EXPECT_NE(r, nullptr) << id;
  static const v1::DeadlineRule empty;
  return r ? *r : empty;
}

}  // namespace rogatory::deadlines::testing

// Every reference rule on a simulated clock: due times, reminders, firing, extensions,
// suspensions and the issuer's shorter deadline.
#include "deadline_logic.h"

#include "absl/strings/str_cat.h"
#include "declared_emits.h"
#include "gtest/gtest.h"
#include "rogatory/common/clock.h"
#include "test_rules.h"

namespace rogatory::deadlines {
namespace {

using common::v1::EventType;
using testing::Local;
using testing::PlaceOf;
using testing::Rule;
using testing::Utc;

v1::Deadline Start(const std::string& rule_id, absl::Time trigger, const CountingPlace& place,
                   std::optional<absl::Time> shortened = std::nullopt) {
  StartInput in;
  in.deadline_id = "dl-0-test";
  in.request_id = "rq-0-test";
  in.rule = Rule(rule_id);
  in.rules_version = testing::ReferenceRules()->version();
  in.trigger_time = trigger;
  in.place = place;
  in.instrument = in.rule.instrument();
  in.shortened_due = shortened;
  return NewDeadline(in);
}

absl::Time Due(const v1::Deadline& d) { return FromProtoTime(d.due_time()); }

// Drives a deadline's timers with a simulated clock up to `until`, firing each in due order
// as the timer engine would; returns the event types in order.
std::vector<EventType> RunUntil(v1::Deadline& d, common::SimulatedClock& clock, absl::Time until) {
  std::vector<EventType> events;
  for (int guard = 0; guard < 100; ++guard) {
    auto timers = TimersOf(d);
    std::sort(timers.begin(), timers.end(),
              [](const TimerSpec& a, const TimerSpec& b) { return a.due < b.due; });
    if (timers.empty() || timers[0].due > until) break;
    clock.Set(timers[0].due);
    FireResult r = Fire(d, timers[0].member.substr(timers[0].member.find('|') + 1), clock.Now());
    EXPECT_TRUE(r.changed);
    if (r.event_type != common::v1::EVENT_TYPE_UNSPECIFIED) events.push_back(r.event_type);
  }
  clock.Set(until);
  return events;
}

TEST(EawRulesTest, WithConsentDecisionDueTenDaysAfterConsent) {
  // Consent Thursday 5 March 2026 in Germany: 10 days end Sunday 15 March, so Monday 16th.
  v1::Deadline d =
      Start("EAW_DECISION_CONSENT", Local("Europe/Berlin", 2026, 3, 5, 11), PlaceOf("DE"));
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 3, 17));
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_RUNNING);
  EXPECT_EQ(d.time_zone(), "Europe/Berlin");
  EXPECT_EQ(d.rules_version(), testing::ReferenceRules()->version());
}

TEST(EawRulesTest, WithoutConsentDecisionDueSixtyDaysAfterArrestAndMissedThen) {
  common::SimulatedClock clock(Local("Europe/Berlin", 2026, 3, 5, 11));
  v1::Deadline d = Start("EAW_DECISION_NO_CONSENT", clock.Now(), PlaceOf("DE"));
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 5, 5));  // Monday 4 May ends at midnight
  EXPECT_EQ(d.reminders_size(), 4);                       // half time, 7 days, 1 day, 2 hours
  auto before = RunUntil(d, clock, Due(d) - absl::Seconds(1));
  EXPECT_EQ(before, std::vector<EventType>(4, common::v1::EVENT_TYPE_DEADLINE_REMINDER));
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_RUNNING);
  auto at_due = RunUntil(d, clock, Due(d));
  EXPECT_EQ(at_due, std::vector<EventType>{common::v1::EVENT_TYPE_DEADLINE_MISSED});
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_OVERDUE);
  EXPECT_EQ(d.escalation_level(), 1);
  auto later = RunUntil(d, clock, Due(d) + absl::Hours(24));
  EXPECT_EQ(later, std::vector<EventType>{common::v1::EVENT_TYPE_DEADLINE_ESCALATED});
  EXPECT_EQ(d.escalation_level(), 2);
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_OVERDUE);  // overdue, never closed
  EXPECT_TRUE(RunUntil(d, clock, Due(d) + absl::Hours(24 * 30)).empty());
}

TEST(EawRulesTest, ExtendedByThirtyDaysOnceAndSecondExtensionRefused) {
  const absl::Time now = Local("Europe/Berlin", 2026, 3, 5, 11);
  v1::Deadline d = Start("EAW_DECISION_NO_CONSENT", now, PlaceOf("DE"));
  auto first = Extend(d, absl::Hours(24 * 30), "COMPLEX_CASE", "reasons", now, PlaceOf("DE"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, common::v1::EVENT_TYPE_DEADLINE_EXTENDED);
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 6, 4));
  EXPECT_EQ(d.extensions_size(), 1);
  auto second = Extend(d, absl::Hours(24), "AGAIN", "", now, PlaceOf("DE"));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 6, 4));
}

TEST(EawRulesTest, ExtensionEndingOnSaturdayMovesToMonday) {
  // Arrest Sunday 8 March 2026 in Germany: 60 days end Thursday 7 May. Extended by 30 days
  // (Art 17(4)), the 90th day is Saturday 6 June: under Regulation 1182/71 the extended
  // period ends with Monday 8 June, as a 90-day period would.
  const absl::Time arrest = Local("Europe/Berlin", 2026, 3, 8, 10);
  v1::Deadline d = Start("EAW_DECISION_NO_CONSENT", arrest, PlaceOf("DE"));
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 5, 8));
  ASSERT_TRUE(Extend(d, absl::Hours(24 * 30), "COMPLEX_CASE", "", arrest, PlaceOf("DE")).ok());
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 6, 9));
  EXPECT_EQ(FromProtoTime(d.unrolled_due_time()), Local("Europe/Berlin", 2026, 6, 7));
}

TEST(EawRulesTest, ExtensionCountsFromTheFirstPeriodsEndBeforeItMoved) {
  // Arrest Wednesday 4 March 2026: the 60th day is Sunday 3 May, so the period ends with
  // Monday 4 May. The extension runs on from 3 May, not from the moved end: the 90th day
  // is Tuesday 2 June (counting from 4 May would give Wednesday 3 June).
  const absl::Time arrest = Local("Europe/Berlin", 2026, 3, 4, 10);
  v1::Deadline d = Start("EAW_DECISION_NO_CONSENT", arrest, PlaceOf("DE"));
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 5, 5));
  ASSERT_TRUE(Extend(d, absl::Hours(24 * 30), "COMPLEX_CASE", "", arrest, PlaceOf("DE")).ok());
  EXPECT_EQ(Due(d), Local("Europe/Berlin", 2026, 6, 3));
}

TEST(RegionalCalendarRulesTest, SwissProvisionalArrestEndsAtMidnightInZurich) {
  // Provisionally arrested Monday 7 December 2026 in Zurich. The Convention is not EU law:
  // the day of arrest counts and nothing moves. 18 days end with 24 December, 40 days with
  // 15 January 2027, at local midnight (23:00 UTC in winter), not at midnight UTC.
  common::v1::AuthorityRef zh;
  zh.set_authority_id("CH-ZH-PROSECUTOR");
  zh.set_state("CH");
  zh.set_region("CH-ZH");
  const CountingPlace place = testing::ReferenceRules()->calendars().PlaceFor(zh, "CH");
  const absl::Time arrest = Local("Europe/Zurich", 2026, 12, 7, 6);
  for (const char* prefix : {"EXTRADITION_", ""}) {
    v1::Deadline may_end = Start(absl::StrCat(prefix, "PROVISIONAL_ARREST_MAY_END"), arrest, place);
    EXPECT_EQ(may_end.time_zone(), "Europe/Zurich");
    EXPECT_EQ(Due(may_end), Local("Europe/Zurich", 2026, 12, 25));
    EXPECT_EQ(Due(may_end), Utc(2026, 12, 24, 23));
    EXPECT_EQ(may_end.calendar_coverage(), v1::CALENDAR_COVERAGE_COMPLETE);
    EXPECT_EQ(may_end.calendar_state(), "CH");
    EXPECT_EQ(may_end.calendar_region(), "CH-ZH");
    v1::Deadline maximum = Start(absl::StrCat(prefix, "PROVISIONAL_ARREST_MAXIMUM"), arrest, place);
    EXPECT_EQ(maximum.kind(), v1::DEADLINE_KIND_ABSOLUTE_MAXIMUM);
    EXPECT_EQ(Due(maximum), Local("Europe/Zurich", 2027, 1, 16));
    EXPECT_EQ(Due(maximum), Utc(2027, 1, 15, 23));
  }
}

TEST(RegionalCalendarRulesTest, CroatianRecognitionLimitSkipsEpiphany) {
  // Received by the competent Croatian authority Monday 7 December 2026: the 30th day is
  // 6 January 2027, Epiphany, so the limit ends at local midnight after 7 January.
  common::v1::AuthorityRef hr;
  hr.set_authority_id("HR-PROSECUTOR");
  hr.set_state("HR");
  const CountingPlace place = testing::ReferenceRules()->calendars().PlaceFor(hr, "HR");
  v1::Deadline d = Start("EIO_RECOGNITION", Local("Europe/Zagreb", 2026, 12, 7, 10), place);
  EXPECT_EQ(d.time_zone(), "Europe/Zagreb");
  EXPECT_EQ(Due(d), Local("Europe/Zagreb", 2027, 1, 8));
  EXPECT_EQ(Due(d), Utc(2027, 1, 7, 23));
  EXPECT_EQ(d.calendar_coverage(), v1::CALENDAR_COVERAGE_COMPLETE);
}

TEST(RegionalCalendarRulesTest, UnknownStateIsRecordedAsCountedWithoutACalendar) {
  common::v1::AuthorityRef nowhere;
  nowhere.set_state("ZZ");
  const CountingPlace place = testing::ReferenceRules()->calendars().PlaceFor(nowhere, "ZZ");
  v1::Deadline d = Start("EIO_RECOGNITION", Utc(2026, 12, 7, 10), place);
  EXPECT_EQ(d.time_zone(), "UTC");
  EXPECT_EQ(d.calendar_coverage(), v1::CALENDAR_COVERAGE_NO_CALENDAR);
  // Hour limits need no calendar.
  EXPECT_EQ(Start("EIO_PROVISIONAL_MEASURES", Utc(2026, 12, 7, 10), place).calendar_coverage(),
            v1::CALENDAR_COVERAGE_UNSPECIFIED);
}

TEST(EawRulesTest, ExtensionLongerThanTheRuleAllowsIsRefused) {
  const absl::Time now = Local("Europe/Berlin", 2026, 3, 5, 11);
  v1::Deadline d = Start("EAW_DECISION_CONSENT", now, PlaceOf("DE"));
  EXPECT_EQ(Extend(d, absl::Hours(24 * 31), "X", "", now, PlaceOf("DE")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::Deadline ack = Start("EIO_ACKNOWLEDGE", now, PlaceOf("DE"));
  EXPECT_EQ(Extend(ack, absl::Hours(24), "X", "", now, PlaceOf("DE")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(EawRulesTest, SurrenderDueTenDaysAfterFinalDecision) {
  v1::Deadline d = Start("EAW_SURRENDER", Local("Europe/Rome", 2026, 6, 1, 9), PlaceOf("IT"));
  EXPECT_EQ(Due(d), Local("Europe/Rome", 2026, 6, 12));  // Thursday 11 June
}

TEST(EioRulesTest, AcknowledgeInSevenRecognitionInThirtyExecutionInNinetyDays) {
  const CountingPlace es = PlaceOf("ES");
  // Received Monday 5 January 2026: 7 days end Monday 12 January.
  EXPECT_EQ(Due(Start("EIO_ACKNOWLEDGE", Local("Europe/Madrid", 2026, 1, 5, 12), es)),
            Local("Europe/Madrid", 2026, 1, 13));
  // 30 days: Wednesday 4 February.
  EXPECT_EQ(Due(Start("EIO_RECOGNITION", Local("Europe/Madrid", 2026, 1, 5, 12), es)),
            Local("Europe/Madrid", 2026, 2, 5));
  // Recognised Monday 2 February: 90 days end Sunday 3 May, so Monday 4 May.
  EXPECT_EQ(Due(Start("EIO_EXECUTION", Local("Europe/Madrid", 2026, 2, 2, 12), es)),
            Local("Europe/Madrid", 2026, 5, 5));
}

TEST(EioRulesTest, RecognitionExtendsOnceByThirtyDays) {
  const CountingPlace es = PlaceOf("ES");
  const absl::Time now = Local("Europe/Madrid", 2026, 1, 5, 12);
  v1::Deadline d = Start("EIO_RECOGNITION", now, es);
  ASSERT_TRUE(Extend(d, absl::Hours(24 * 30), "R", "", now, es).ok());
  EXPECT_EQ(Due(d), Local("Europe/Madrid", 2026, 3, 7));
  EXPECT_FALSE(Extend(d, absl::Hours(24), "R", "", now, es).ok());
}

TEST(EioRulesTest, IssuersShorterDeadlineIsHonoured) {
  const CountingPlace es = PlaceOf("ES");
  common::v1::RequestFacts facts;
  facts.mutable_issuer_deadline_date()->set_year(2026);
  facts.mutable_issuer_deadline_date()->set_month(1);
  facts.mutable_issuer_deadline_date()->set_day(20);
  v1::Deadline d =
      Start("EIO_RECOGNITION", Local("Europe/Madrid", 2026, 1, 5, 12), es, IssuerDue(facts, es));
  EXPECT_EQ(Due(d), Local("Europe/Madrid", 2026, 1, 21));
  // A later issuer date does not lengthen the legal limit.
  facts.mutable_issuer_deadline_date()->set_month(3);
  d = Start("EIO_RECOGNITION", Local("Europe/Madrid", 2026, 1, 5, 12), es, IssuerDue(facts, es));
  EXPECT_EQ(Due(d), Local("Europe/Madrid", 2026, 2, 5));
}

TEST(EioRulesTest, ProvisionalMeasuresWithinTwentyFourExactHours) {
  v1::Deadline d = Start("EIO_PROVISIONAL_MEASURES", Utc(2026, 3, 28, 23, 30), PlaceOf("DE"));
  EXPECT_EQ(Due(d), Utc(2026, 3, 29, 23, 30));  // exact, across the DST change
}

TEST(ProvisionalArrestRulesTest, MayEndAfterEighteenAndNeverExceedsFortyDays) {
  const absl::Time arrest = Local("Europe/Rome", 2026, 4, 1, 15);
  v1::Deadline may_end = Start("PROVISIONAL_ARREST_MAY_END", arrest, PlaceOf("IT"));
  v1::Deadline maximum = Start("PROVISIONAL_ARREST_MAXIMUM", arrest, PlaceOf("IT"));
  v1::Deadline consent = Start("PROVISIONAL_ARREST_CONSENT_STATEMENT", arrest, PlaceOf("IT"));
  // The arrest day counts: day 18 is 18 April (a Saturday: absolute limits never move).
  EXPECT_EQ(Due(may_end), Local("Europe/Rome", 2026, 4, 19));
  EXPECT_EQ(Due(maximum), Local("Europe/Rome", 2026, 5, 11));
  EXPECT_EQ(Due(consent), Local("Europe/Rome", 2026, 4, 11));
  EXPECT_EQ(may_end.kind(), v1::DEADLINE_KIND_LIMIT);
  EXPECT_EQ(maximum.kind(), v1::DEADLINE_KIND_ABSOLUTE_MAXIMUM);
  common::SimulatedClock clock(arrest);
  auto events = RunUntil(may_end, clock, Due(may_end));
  EXPECT_EQ(events.back(), common::v1::EVENT_TYPE_DEADLINE_MISSED);
  EXPECT_EQ(maximum.state(), v1::DEADLINE_STATE_RUNNING);
  RunUntil(maximum, clock, Due(maximum));
  EXPECT_EQ(maximum.state(), v1::DEADLINE_STATE_OVERDUE);
}

TEST(ExtraditionRulesTest, SameLimitsUnderTheConvention) {
  const absl::Time arrest = Local("Europe/Vienna", 2026, 4, 1, 15);
  EXPECT_EQ(Due(Start("EXTRADITION_PROVISIONAL_ARREST_MAXIMUM", arrest, PlaceOf("AT"))),
            Local("Europe/Vienna", 2026, 5, 11));
}

TEST(FreezingRulesTest, UrgentFreezingWithinFortyEightExactHours) {
  common::SimulatedClock clock(Utc(2026, 6, 1, 8, 30));
  v1::Deadline d = Start("FREEZING_RECOGNITION_URGENT", clock.Now(), PlaceOf("FR"));
  EXPECT_EQ(Due(d), Utc(2026, 6, 3, 8, 30));
  RunUntil(d, clock, Utc(2026, 6, 3, 8, 29));
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_RUNNING);
  RunUntil(d, clock, Utc(2026, 6, 3, 8, 30));
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_OVERDUE);
  EXPECT_EQ(Due(Start("FREEZING_EXECUTION_URGENT", Utc(2026, 6, 1, 8, 30), PlaceOf("FR"))),
            Utc(2026, 6, 3, 8, 30));
  EXPECT_EQ(
      Due(Start("CONFISCATION_RECOGNITION", Local("Europe/Paris", 2026, 6, 1, 9), PlaceOf("FR"))),
      Local("Europe/Paris", 2026, 7, 17));  // 16 July, a Thursday
}

TEST(ProductionOrderRulesTest, TenDaysEightHoursAndNinetySixHours) {
  const absl::Time sent = Utc(2026, 9, 1, 10);
  EXPECT_EQ(Due(Start("PRODUCTION_ORDER_DATA_EMERGENCY", sent, PlaceOf("NL"))),
            sent + absl::Hours(8));
  EXPECT_EQ(Due(Start("PRODUCTION_ORDER_OBJECTION_WINDOW", sent, PlaceOf("NL"))),
            sent + absl::Hours(96));
  EXPECT_EQ(Due(Start("PRODUCTION_ORDER_DATA", sent, PlaceOf("NL"))),
            Local("Europe/Amsterdam", 2026, 9, 12));  // Friday 11 September
}

TEST(DeadlineLogicTest, SuspensionMovesTheDueTimeByTheTimeSuspended) {
  const absl::Time start = Utc(2026, 6, 1, 8);
  v1::Deadline d = Start("FREEZING_RECOGNITION_URGENT", start, PlaceOf("FR"));
  ASSERT_TRUE(Suspend(d, start + absl::Hours(10)).ok());
  EXPECT_TRUE(TimersOf(d).empty());
  EXPECT_EQ(Suspend(d, start).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Resume(d, start + absl::Hours(15)).ok());
  EXPECT_EQ(Due(d), start + absl::Hours(48 + 5));
  EXPECT_EQ(FromProtoDuration(d.suspended_duration()), absl::Hours(5));
  EXPECT_EQ(Resume(d, start).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DeadlineLogicTest, CompleteAndCancelAreFinalAndIdempotent) {
  const absl::Time start = Utc(2026, 6, 1, 8);
  v1::Deadline d = Start("FREEZING_RECOGNITION_URGENT", start, PlaceOf("FR"));
  EXPECT_EQ(*Complete(d, start), common::v1::EVENT_TYPE_DEADLINE_MET);
  EXPECT_EQ(*Complete(d, start), common::v1::EVENT_TYPE_UNSPECIFIED);
  EXPECT_EQ(Cancel(d, start).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(TimersOf(d).empty());
}

TEST(DeadlineLogicTest, StaleTimerChangesNothing) {
  const absl::Time start = Utc(2026, 6, 1, 8);
  v1::Deadline d = Start("FREEZING_RECOGNITION_URGENT", start, PlaceOf("FR"));
  EXPECT_FALSE(Fire(d, "d", start + absl::Hours(1)).changed);  // not due yet
  EXPECT_FALSE(Fire(d, "e1", start + absl::Hours(100)).changed);
  EXPECT_FALSE(Fire(d, "r99", start + absl::Hours(100)).changed);
}

TEST(DeadlineLogicTest, TimerEventIdIsStableUlidForm) {
  const std::string a = TimerEventId("dl-1-x|d", 3, Utc(2026, 1, 1));
  EXPECT_EQ(a.size(), 26u);
  EXPECT_EQ(a, TimerEventId("dl-1-x|d", 3, Utc(2026, 1, 1)));
  EXPECT_NE(a, TimerEventId("dl-1-x|d", 4, Utc(2026, 1, 1)));
}

}  // namespace
}  // namespace rogatory::deadlines

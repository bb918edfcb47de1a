// Counting days: Easter, weekends and holidays, time zones of authorities, DST and year
// boundaries, with the reference calendars.
#include "calendar.h"

#include "gtest/gtest.h"
#include "test_rules.h"

namespace rogatory::deadlines {
namespace {

using testing::Local;
using testing::PlaceOf;
using testing::Utc;

TEST(EasterTest, WesternAndOrthodoxEasterOfKnownYears) {
  EXPECT_EQ(EasterSunday(2024, v1::EASTER_COMPUTUS_WESTERN), absl::CivilDay(2024, 3, 31));
  EXPECT_EQ(EasterSunday(2025, v1::EASTER_COMPUTUS_WESTERN), absl::CivilDay(2025, 4, 20));
  EXPECT_EQ(EasterSunday(2026, v1::EASTER_COMPUTUS_WESTERN), absl::CivilDay(2026, 4, 5));
  EXPECT_EQ(EasterSunday(2000, v1::EASTER_COMPUTUS_WESTERN), absl::CivilDay(2000, 4, 23));
  EXPECT_EQ(EasterSunday(2024, v1::EASTER_COMPUTUS_ORTHODOX), absl::CivilDay(2024, 5, 5));
  EXPECT_EQ(EasterSunday(2025, v1::EASTER_COMPUTUS_ORTHODOX), absl::CivilDay(2025, 4, 20));
  EXPECT_EQ(EasterSunday(2026, v1::EASTER_COMPUTUS_ORTHODOX), absl::CivilDay(2026, 4, 12));
}

TEST(CalendarTest, ShipsCalendarsForAtLeastTenStates) {
  EXPECT_GE(testing::ReferenceRules()->calendars().file().states_size(), 10);
}

TEST(CalendarTest, PeriodEndingOnSaturdayEndsOnMonday) {
  // 10 days from Wednesday 4 March 2026 (trigger day not counted): Saturday 14 March.
  const CountingPlace de = PlaceOf("DE");
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Berlin", 2026, 3, 4, 10), 10, true, de),
            Local("Europe/Berlin", 2026, 3, 17));
}

TEST(CalendarTest, WithoutRegulationTheTriggerDayCountsAndWeekendsDoNotMove) {
  const CountingPlace de = PlaceOf("DE");
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Berlin", 2026, 3, 5, 10), 10, false, de),
            Local("Europe/Berlin", 2026, 3, 15));
}

TEST(CalendarTest, OrthodoxEasterMondayInGreeceMovesToTheNextWorkingDay) {
  // 10 days from 3 April 2026: Monday 13 April, Orthodox Easter Monday in Greece; an
  // ordinary Monday in Germany (Western Easter Monday was 6 April).
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Athens", 2026, 4, 3, 9), 10, true, PlaceOf("GR")),
            Local("Europe/Athens", 2026, 4, 15));
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Berlin", 2026, 4, 3, 9), 10, true, PlaceOf("DE")),
            Local("Europe/Berlin", 2026, 4, 14));
}

TEST(CalendarTest, WesternEasterMondayInGermanyMovesToTuesday) {
  // 10 days from 27 March 2026: Monday 6 April, Easter Monday.
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Berlin", 2026, 3, 27, 9), 10, true, PlaceOf("DE")),
            Local("Europe/Berlin", 2026, 4, 8));
}

TEST(CalendarTest, PublicHolidayOfOneGermanLandOnly) {
  // 10 days from 25 May 2026: Thursday 4 June, Corpus Christi in Bavaria, not in Berlin.
  const absl::Time trigger = Local("Europe/Berlin", 2026, 5, 25, 9);
  EXPECT_EQ(DayPeriodEnd(trigger, 10, true, PlaceOf("DE", "DE-BY")),
            Local("Europe/Berlin", 2026, 6, 6));
  EXPECT_EQ(DayPeriodEnd(trigger, 10, true, PlaceOf("DE", "DE-BE")),
            Local("Europe/Berlin", 2026, 6, 5));
}

TEST(CalendarTest, DayLimitAcrossSpringDstChangeEndsAtLocalMidnight) {
  // Berlin moves to summer time on 29 March 2026. 10 days from 20 March: the last day is
  // 29 March, ending at local midnight 00:00 CEST = 22:00 UTC (not 23:00).
  const absl::Time end =
      DayPeriodEnd(Local("Europe/Berlin", 2026, 3, 20, 10), 10, false, PlaceOf("DE"));
  EXPECT_EQ(end, Utc(2026, 3, 29, 22));
  EXPECT_EQ(absl::ToCivilSecond(end, testing::Zone("Europe/Berlin")),
            absl::CivilSecond(2026, 3, 30, 0, 0, 0));
}

TEST(CalendarTest, DayLimitAcrossAutumnDstChangeEndsAtLocalMidnight) {
  // Summer time ends 25 October 2026: local midnight of the 31st is 23:00 UTC.
  const absl::Time end =
      DayPeriodEnd(Local("Europe/Madrid", 2026, 10, 20, 10), 10, false, PlaceOf("ES"));
  EXPECT_EQ(end, Utc(2026, 10, 29, 23));
}

TEST(CalendarTest, CanaryIslandsAuthorityEndsAnHourAfterMadrid) {
  const absl::Time trigger = Utc(2026, 2, 2, 12);
  const CountingPlace madrid = PlaceOf("ES");
  const CountingPlace canary = PlaceOf("ES", "ES-CN");
  EXPECT_EQ(madrid.time_zone_name, "Europe/Madrid");
  EXPECT_EQ(canary.time_zone_name, "Atlantic/Canary");
  const absl::Time m = DayPeriodEnd(trigger, 7, true, madrid);
  const absl::Time c = DayPeriodEnd(trigger, 7, true, canary);
  EXPECT_EQ(m, Utc(2026, 2, 9, 23));
  EXPECT_EQ(c - m, absl::Hours(1));
}

TEST(CalendarTest, AzoresUsesItsOwnZone) {
  EXPECT_EQ(PlaceOf("PT", "PT-20").time_zone_name, "Atlantic/Azores");
  EXPECT_EQ(PlaceOf("PT").time_zone_name, "Europe/Lisbon");
}

TEST(CalendarTest, PeriodAcrossYearBoundaryEndingOnNewYearMovesPastTheWeekend) {
  // 10 days from 22 December 2026: Friday 1 January 2027 (holiday), then the weekend.
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Berlin", 2026, 12, 22, 9), 10, true, PlaceOf("DE")),
            Local("Europe/Berlin", 2027, 1, 5));
}

TEST(CalendarTest, UnknownStateCountsInUtcWithWeekendsOnly) {
  common::v1::AuthorityRef a;
  const CountingPlace place = testing::ReferenceRules()->calendars().PlaceFor(a, "ZZ");
  EXPECT_EQ(place.time_zone_name, "UTC");
  EXPECT_FALSE(place.IsWorkingDay(absl::CivilDay(2026, 3, 14)));
  EXPECT_TRUE(place.IsWorkingDay(absl::CivilDay(2026, 1, 1)));
}

TEST(CalendarTest, InvalidCalendarNamesEveryBadField) {
  v1::CalendarsFile file;
  auto* s = file.add_states();
  s->set_state("XX");
  s->set_time_zone("Mars/Olympus");
  auto* h = s->add_holidays();
  h->set_name("Bad");
  h->set_month(2);
  h->set_day(30);
  auto calendars = Calendars::Create(file);
  ASSERT_FALSE(calendars.ok());
  const std::string message(calendars.status().message());
  EXPECT_NE(message.find("version"), std::string::npos) << message;
  EXPECT_NE(message.find("states[0].time_zone"), std::string::npos) << message;
  EXPECT_NE(message.find("states[0].holidays[0].day"), std::string::npos) << message;
}

}  // namespace
}  // namespace rogatory::deadlines

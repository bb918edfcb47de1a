// Counting days: Easter, weekends and holidays, time zones of authorities, DST and year
// boundaries, with the reference calendars.
#include "calendar.h"

#include <fstream>
#include <set>
#include <sstream>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
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
  EXPECT_GE(testing::ReferenceRules()->calendars().file().states_size(), 33);
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

// ---------------------------------------------------------------------------------------
// Every state the routing registry routes to, with its authorities' zones (issue 22 item 1).

namespace registry {

google::protobuf::Struct LoadDeclarations() {
  const std::string path = std::string(ROGATORY_ROUTING_DATA_DIR) + "/declarations.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct out;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text.str(), &out).ok()) << path;
  return out;
}

std::string Str(const google::protobuf::Struct& s, const std::string& field) {
  auto it = s.fields().find(field);
  return it == s.fields().end() ? "" : it->second.string_value();
}

}  // namespace registry

TEST(RegistryCalendarTest, EveryRegistryStateHasACalendarWithItsZoneHolidaysAndSource) {
  const google::protobuf::Struct declarations = registry::LoadDeclarations();
  const Calendars& calendars = testing::ReferenceRules()->calendars();
  std::set<std::string> states;
  for (const auto& d : declarations.fields().at("declarations").list_value().values()) {
    states.insert(registry::Str(d.struct_value(), "state"));
  }
  ASSERT_GE(states.size(), 33u);
  for (const std::string& state : states) {
    SCOPED_TRACE(state);
    const CountingPlace place = calendars.PlaceOfCalendar(state, "");
    ASSERT_NE(place.calendar, nullptr) << "no calendar for " << state;
    // No state the registry names keeps UTC as its civil time (Iceland is UTC+0 all year
    // but its zone is Atlantic/Reykjavik).
    EXPECT_NE(place.time_zone_name, "UTC");
    EXPECT_NE(place.time_zone_name, "Etc/UTC");
    EXPECT_GE(place.calendar->holidays_size(), 5);
    EXPECT_NE(place.calendar->source().find("date-holidays"), std::string::npos);
    EXPECT_GT(place.calendar->covered_to_year(), 2026);
    // New Year's Day is a public holiday everywhere the registry routes to.
    EXPECT_FALSE(place.IsWorkingDay(absl::CivilDay(2027, 1, 1)));
  }
}

TEST(RegistryCalendarTest, EveryCompetentAuthorityCountsInTheZoneTheRegistryGivesIt) {
  const google::protobuf::Struct declarations = registry::LoadDeclarations();
  const Calendars& calendars = testing::ReferenceRules()->calendars();
  int checked = 0;
  for (const auto& d : declarations.fields().at("declarations").list_value().values()) {
    const auto& decl = d.struct_value();
    auto it = decl.fields().find("competentAuthorities");
    if (it == decl.fields().end()) continue;
    for (const auto& c : it->second.list_value().values()) {
      const auto& competent = c.struct_value();
      const auto& authority = competent.fields().at("authority").struct_value();
      common::v1::AuthorityRef ref;
      ref.set_authority_id(registry::Str(authority, "authorityId"));
      ref.set_state(registry::Str(authority, "state"));
      ref.set_region(registry::Str(authority, "region"));
      const std::string zone = registry::Str(competent, "timeZone");
      if (zone.empty()) continue;
      EXPECT_EQ(calendars.PlaceFor(ref, registry::Str(decl, "state")).time_zone_name, zone)
          << ref.authority_id();
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
}

TEST(RegistryCalendarTest, AllGermanLaenderSpanishCommunitiesAndSwissCantonsHaveHolidays) {
  const Calendars& calendars = testing::ReferenceRules()->calendars();
  auto regions_of = [&](const std::string& state) {
    std::set<std::string> out;
    const v1::StateCalendar* calendar = calendars.PlaceOfCalendar(state, "").calendar;
    EXPECT_NE(calendar, nullptr) << state;
    if (calendar == nullptr) return out;
    for (const auto& h : calendar->holidays()) {
      out.insert(h.regions().begin(), h.regions().end());
      out.insert(h.except_regions().begin(), h.except_regions().end());
    }
    return out;
  };
  const std::set<std::string> de = regions_of("DE");
  for (const char* land :
       {"DE-BB", "DE-BE", "DE-BW", "DE-BY", "DE-HB", "DE-HE", "DE-HH", "DE-MV", "DE-NI", "DE-NW",
        "DE-RP", "DE-SH", "DE-SL", "DE-SN", "DE-ST", "DE-TH"}) {
    EXPECT_TRUE(de.count(land)) << land;
  }
  EXPECT_GE(regions_of("ES").size(), 17u);
  EXPECT_GE(regions_of("CH").size(), 26u);
}

// The examples: a Swiss authority's provisional-arrest limits and a Croatian
// authority's EIO recognition limit ended at midnight UTC.
TEST(RegistryCalendarTest, CroatianEpiphanyMovesTheThirtiethDayToTheSeventhOfJanuary) {
  common::v1::AuthorityRef hr;
  hr.set_authority_id("HR-PROSECUTOR");
  hr.set_state("HR");
  const CountingPlace place = testing::ReferenceRules()->calendars().PlaceFor(hr, "HR");
  EXPECT_EQ(place.time_zone_name, "Europe/Zagreb");
  EXPECT_FALSE(place.IsWorkingDay(absl::CivilDay(2027, 1, 6)));  // Epiphany
  // Received Monday 7 December 2026: the 30th day is Wednesday 6 January 2027.
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Zagreb", 2026, 12, 7, 10), 30, true, place),
            Local("Europe/Zagreb", 2027, 1, 8));
  EXPECT_EQ(DayPeriodEnd(Local("Europe/Zagreb", 2026, 12, 7, 10), 30, true, place),
            Utc(2027, 1, 7, 23));
}

TEST(RegistryCalendarTest, GermanEpiphanyIsChosenByTheAuthoritysLand) {
  // 30 days from 7 December 2026 end on 6 January 2027: a holiday in Bavaria and
  // Baden-Wuerttemberg, a working day in Berlin.
  const absl::Time trigger = Local("Europe/Berlin", 2026, 12, 7, 10);
  common::v1::AuthorityRef a;
  a.set_authority_id("DE-PROSECUTOR");
  a.set_state("DE");
  const Calendars& calendars = testing::ReferenceRules()->calendars();
  a.set_region("DE-BY");
  EXPECT_EQ(DayPeriodEnd(trigger, 30, true, calendars.PlaceFor(a, "DE")),
            Local("Europe/Berlin", 2027, 1, 8));
  a.set_region("DE-BW");
  EXPECT_EQ(DayPeriodEnd(trigger, 30, true, calendars.PlaceFor(a, "DE")),
            Local("Europe/Berlin", 2027, 1, 8));
  a.set_region("DE-BE");
  EXPECT_EQ(DayPeriodEnd(trigger, 30, true, calendars.PlaceFor(a, "DE")),
            Local("Europe/Berlin", 2027, 1, 7));
  a.clear_region();
  EXPECT_EQ(DayPeriodEnd(trigger, 30, true, calendars.PlaceFor(a, "DE")),
            Local("Europe/Berlin", 2027, 1, 7));
}

TEST(RegistryCalendarTest, HolidaysListedByDateAndRegionsThatDoNotKeepAStateHoliday) {
  // The Early May bank holiday (1st Monday in May) is listed by date: 3 May 2027.
  const CountingPlace gb = PlaceOf("GB");
  EXPECT_FALSE(gb.IsWorkingDay(absl::CivilDay(2027, 5, 3)));
  EXPECT_TRUE(gb.IsWorkingDay(absl::CivilDay(2027, 5, 4)));
  // Good Friday: a holiday in Zurich, not in Ticino.
  EXPECT_FALSE(PlaceOf("CH", "CH-ZH").IsWorkingDay(absl::CivilDay(2027, 3, 26)));
  EXPECT_TRUE(PlaceOf("CH", "CH-TI").IsWorkingDay(absl::CivilDay(2027, 3, 26)));
}

TEST(RegistryCalendarTest, CoverageSaysWhenNoCalendarOrTheYearsRanOut) {
  const CountingPlace hr = PlaceOf("HR");
  ASSERT_NE(hr.calendar, nullptr);
  EXPECT_EQ(hr.CoverageOf(absl::CivilDay(2026, 12, 7), absl::CivilDay(2027, 1, 7)),
            v1::CALENDAR_COVERAGE_COMPLETE);
  const int last = hr.calendar->covered_to_year();
  EXPECT_EQ(hr.CoverageOf(absl::CivilDay(last, 12, 20), absl::CivilDay(last + 1, 1, 20)),
            v1::CALENDAR_COVERAGE_BEYOND_COVERED_YEARS);
  common::v1::AuthorityRef nowhere;
  EXPECT_EQ(testing::ReferenceRules()
                ->calendars()
                .PlaceFor(nowhere, "ZZ")
                .CoverageOf(absl::CivilDay(2027, 1, 1), absl::CivilDay(2027, 1, 2)),
            v1::CALENDAR_COVERAGE_NO_CALENDAR);
}

TEST(CalendarTest, InvalidNewCalendarFieldsAreNamedByPath) {
  v1::CalendarsFile file;
  file.set_version("t");
  auto* s = file.add_states();
  s->set_state("CH");
  s->set_time_zone("Europe/Zurich");
  s->set_covered_from_year(2030);
  s->set_covered_to_year(2020);
  auto* h = s->add_holidays();
  h->set_name("Both");
  h->set_month(1);
  h->set_day(1);
  h->add_regions("CH-ZH");
  h->add_except_regions("CH-TI");
  h->set_easter(v1::EASTER_COMPUTUS_ORTHODOX);
  auto* dated = s->add_holidays();
  dated->set_name("No 29 February in 2027");
  dated->set_month(2);
  dated->set_day(29);
  dated->set_first_year(2027);
  dated->set_last_year(2027);
  auto* backwards = s->add_holidays();
  backwards->set_name("Backwards");
  backwards->set_month(3);
  backwards->set_day(1);
  backwards->set_first_year(2030);
  backwards->set_last_year(2029);
  backwards->add_except_regions("DE-BY");
  auto calendars = Calendars::Create(file);
  ASSERT_FALSE(calendars.ok());
  const std::string m(calendars.status().message());
  for (const char* want :
       {"states[0].source", "states[0].covered_to_year", "states[0].holidays[0].except_regions",
        "states[0].holidays[0].easter", "states[0].holidays[1].day",
        "states[0].holidays[2].last_year", "states[0].holidays[2].except_regions[0]"}) {
    EXPECT_NE(m.find(want), std::string::npos) << want << " in " << m;
  }
}

}  // namespace
}  // namespace rogatory::deadlines

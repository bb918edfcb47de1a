#include "calendar.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "rogatory/common/status.h"

namespace rogatory::deadlines {

absl::CivilDay EasterSunday(int year, v1::EasterComputus computus) {
  if (computus == v1::EASTER_COMPUTUS_ORTHODOX) {
    // Meeus' Julian algorithm, then the Julian-to-Gregorian offset of the century.
    const int a = year % 4, b = year % 7, c = year % 19;
    const int d = (19 * c + 15) % 30;
    const int e = (2 * a + 4 * b - d + 34) % 7;
    const int month = (d + e + 114) / 31;
    const int day = (d + e + 114) % 31 + 1;
    const int offset = year / 100 - year / 400 - 2;
    return absl::CivilDay(year, month, day) + offset;
  }
  // Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
  const int a = year % 19, b = year / 100, c = year % 100, d = b / 4, e = b % 4;
  const int f = (b + 8) / 25, g = (b - f + 1) / 3;
  const int h = (19 * a + b - d - g + 15) % 30;
  const int i = c / 4, k = c % 4;
  const int l = (32 + 2 * e + 2 * i - h - k) % 7;
  const int m = (a + 11 * h + 22 * l) / 451;
  const int month = (h + l - 7 * m + 114) / 31;
  const int day = (h + l - 7 * m + 114) % 31 + 1;
  return absl::CivilDay(year, month, day);
}

namespace {

int IsoWeekday(absl::CivilDay day) {
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::monday:
      return 1;
    case absl::Weekday::tuesday:
      return 2;
    case absl::Weekday::wednesday:
      return 3;
    case absl::Weekday::thursday:
      return 4;
    case absl::Weekday::friday:
      return 5;
    case absl::Weekday::saturday:
      return 6;
    case absl::Weekday::sunday:
      return 7;
  }
  return 0;
}

bool AppliesIn(const v1::Holiday& h, const std::string& region) {
  auto has = [&](const auto& list) {
    return std::find(list.begin(), list.end(), region) != list.end();
  };
  if (h.regions().empty()) return region.empty() || !has(h.except_regions());
  return has(h.regions());
}

bool KeptIn(const v1::Holiday& h, int64_t year) {
  return (h.first_year() == 0 || year >= h.first_year()) &&
         (h.last_year() == 0 || year <= h.last_year());
}

// Years the computus is defined for (calendar.h).
constexpr int kFirstYear = 1583;
constexpr int kLastYear = 4099;

bool YearOk(int year) { return year == 0 || (year >= kFirstYear && year <= kLastYear); }

bool IsRegionCode(const std::string& state, const std::string& code) {
  return code.size() > 3 && code.size() <= 6 && code.compare(0, state.size(), state) == 0 &&
         code[2] == '-';
}

}  // namespace

bool CountingPlace::IsWorkingDay(absl::CivilDay day) const {
  const int weekday = IsoWeekday(day);
  if (calendar == nullptr || calendar->weekend_days().empty()) {
    if (weekday >= 6) return false;
  } else if (std::find(calendar->weekend_days().begin(), calendar->weekend_days().end(), weekday) !=
             calendar->weekend_days().end()) {
    return false;
  }
  if (calendar == nullptr) return true;
  const int year = static_cast<int>(day.year());
  if (year < kFirstYear || year > kLastYear) return true;  // no computus; never counted there
  const absl::CivilDay easter = EasterSunday(year, calendar->easter());
  for (const v1::Holiday& h : calendar->holidays()) {
    if (!KeptIn(h, year) || !AppliesIn(h, region)) continue;
    if (h.easter_relative()) {
      const absl::CivilDay e =
          h.easter() == v1::EASTER_COMPUTUS_UNSPECIFIED ? easter : EasterSunday(year, h.easter());
      if (e + h.easter_offset() == day) return false;
    } else if (h.month() == day.month() && h.day() == day.day()) {
      return false;
    }
  }
  return true;
}

v1::CalendarCoverage CountingPlace::CoverageOf(absl::CivilDay first, absl::CivilDay last) const {
  if (calendar == nullptr) return v1::CALENDAR_COVERAGE_NO_CALENDAR;
  if (calendar->covered_from_year() == 0 && calendar->covered_to_year() == 0) {
    return v1::CALENDAR_COVERAGE_COMPLETE;
  }
  if (first.year() < calendar->covered_from_year() || last.year() > calendar->covered_to_year()) {
    return v1::CALENDAR_COVERAGE_BEYOND_COVERED_YEARS;
  }
  return v1::CALENDAR_COVERAGE_COMPLETE;
}

absl::StatusOr<std::shared_ptr<const Calendars>> Calendars::Create(v1::CalendarsFile file) {
  common::FieldViolations v;
  if (file.version().empty()) v.Add("version", "is required");
  std::shared_ptr<Calendars> c(new Calendars(std::move(file)));
  auto load = [&](const std::string& path, const std::string& name) {
    if (c->zones_.count(name)) return;
    absl::TimeZone tz;
    if (name.empty()) {
      v.Add(path, "is required");
    } else if (!absl::LoadTimeZone(name, &tz)) {
      v.Add(path, absl::StrCat("unknown IANA time zone \"", name, "\""));
    } else {
      c->zones_[name] = tz;
    }
  };
  for (int i = 0; i < c->file_.states_size(); ++i) {
    const v1::StateCalendar& s = c->file_.states(i);
    const std::string p = absl::StrCat("states[", i, "]");
    if (s.state().size() != 2 || !std::isupper(s.state()[0]) || !std::isupper(s.state()[1])) {
      v.Add(p + ".state", "must be an ISO 3166-1 alpha-2 code");
    } else if (!c->by_state_.emplace(s.state(), &s).second) {
      v.Add(p + ".state", absl::StrCat("duplicate state ", s.state()));
    }
    load(p + ".time_zone", s.time_zone());
    if (s.source().empty()) {
      v.Add(p + ".source", "is required: where the zone and holidays come from");
    }
    if (s.source().size() > 2000) v.Add(p + ".source", "must be at most 2000 characters");
    const bool covered = s.covered_from_year() != 0 || s.covered_to_year() != 0;
    if (covered && (s.covered_from_year() < kFirstYear || s.covered_from_year() > kLastYear)) {
      v.Add(p + ".covered_from_year", absl::StrCat("must be ", kFirstYear, " to ", kLastYear));
    }
    if (covered &&
        (s.covered_to_year() < s.covered_from_year() || s.covered_to_year() > kLastYear)) {
      v.Add(p + ".covered_to_year", absl::StrCat("must be covered_from_year to ", kLastYear));
    }
    for (int j = 0; j < s.weekend_days_size(); ++j) {
      if (s.weekend_days(j) < 1 || s.weekend_days(j) > 7) {
        v.Add(absl::StrCat(p, ".weekend_days[", j, "]"), "must be 1 (Monday) to 7 (Sunday)");
      }
    }
    for (int j = 0; j < s.regions_size(); ++j) {
      const std::string rp = absl::StrCat(p, ".regions[", j, "]");
      if (!IsRegionCode(s.state(), s.regions(j).code())) {
        v.Add(rp + ".code", "must be an ISO 3166-2 code of the state");
      }
      load(rp + ".time_zone", s.regions(j).time_zone());
    }
    for (int j = 0; j < s.holidays_size(); ++j) {
      const v1::Holiday& h = s.holidays(j);
      const std::string hp = absl::StrCat(p, ".holidays[", j, "]");
      if (h.name().empty()) v.Add(hp + ".name", "is required");
      if (!YearOk(h.first_year())) {
        v.Add(hp + ".first_year", absl::StrCat("must be 0 or ", kFirstYear, " to ", kLastYear));
      }
      if (!YearOk(h.last_year())) {
        v.Add(hp + ".last_year", absl::StrCat("must be 0 or ", kFirstYear, " to ", kLastYear));
      } else if (h.last_year() != 0 && h.last_year() < h.first_year()) {
        v.Add(hp + ".last_year", "must not be before first_year");
      }
      if (!h.easter_relative() && h.easter() != v1::EASTER_COMPUTUS_UNSPECIFIED) {
        v.Add(hp + ".easter", "applies to Easter-relative holidays only");
      }
      if (!h.regions().empty() && !h.except_regions().empty()) {
        v.Add(hp + ".except_regions", "cannot be combined with regions");
      }
      for (int k = 0; k < h.except_regions_size(); ++k) {
        if (!IsRegionCode(s.state(), h.except_regions(k))) {
          v.Add(absl::StrCat(hp, ".except_regions[", k, "]"),
                "must be an ISO 3166-2 code of the state");
        }
      }
      if (h.easter_relative()) {
        if (h.month() != 0 || h.day() != 0) {
          v.Add(hp, "an Easter-relative holiday has no month or day");
        }
        if (h.easter_offset() < -100 || h.easter_offset() > 100) {
          v.Add(hp + ".easter_offset", "must be -100 to 100");
        }
      } else {
        if (h.month() < 1 || h.month() > 12) {
          v.Add(hp + ".month", "must be 1 to 12");
        } else {
          // 2024 is a leap year: any date possible in some year passes; a holiday of one
          // year only must exist in that year (29 February).
          const int year =
              h.first_year() != 0 && h.first_year() == h.last_year() && YearOk(h.first_year())
                  ? h.first_year()
                  : 2024;
          const absl::CivilDay d(year, h.month(), h.day());
          if (h.day() < 1 || d.month() != h.month() || d.day() != h.day()) {
            v.Add(hp + ".day", "is not a day of that month");
          }
        }
      }
      for (int k = 0; k < h.regions_size(); ++k) {
        if (!IsRegionCode(s.state(), h.regions(k))) {
          v.Add(absl::StrCat(hp, ".regions[", k, "]"), "must be an ISO 3166-2 code of the state");
        }
      }
    }
  }
  RETURN_IF_ERROR(v.ToStatus());
  return std::shared_ptr<const Calendars>(std::move(c));
}

CountingPlace Calendars::PlaceFor(const common::v1::AuthorityRef& authority,
                                  const std::string& requested_state) const {
  std::string state = authority.state();
  if (state.empty() || !by_state_.count(state)) state = requested_state;
  if (!authority.region().empty() && authority.region().size() > 2) {
    const std::string region_state = authority.region().substr(0, 2);
    if (by_state_.count(region_state)) state = region_state;
  }
  return PlaceOfCalendar(state, authority.region());
}

CountingPlace Calendars::PlaceOfCalendar(const std::string& state,
                                         const std::string& region) const {
  CountingPlace place;
  auto it = by_state_.find(state);
  if (it == by_state_.end()) return place;  // UTC, weekends only
  place.calendar = it->second;
  place.state = state;
  place.time_zone_name = it->second->time_zone();
  if (IsRegionCode(state, region)) {
    place.region = region;
    for (const v1::CalendarRegion& r : it->second->regions()) {
      if (r.code() == region) place.time_zone_name = r.time_zone();
    }
  }
  place.time_zone = zones_.at(place.time_zone_name);
  return place;
}

absl::Time EndOfDay(absl::CivilDay day, const CountingPlace& place) {
  // The first instant of the next day; FromCivil resolves a skipped or repeated local time
  // (DST) to the instant the day actually starts.
  return absl::FromCivil(absl::CivilSecond(day + 1), place.time_zone);
}

absl::Time DayPeriodEnd(absl::Time trigger, int days, bool regulation_1182_71,
                        const CountingPlace& place) {
  const absl::CivilDay trigger_day = absl::ToCivilDay(trigger, place.time_zone);
  absl::CivilDay last = regulation_1182_71 ? trigger_day + days : trigger_day + (days - 1);
  if (regulation_1182_71) last = NextWorkingDay(last, place);
  return EndOfDay(last, place);
}

absl::CivilDay NextWorkingDay(absl::CivilDay day, const CountingPlace& place) {
  // Bounded: no calendar has more than a few consecutive non-working days.
  for (int i = 0; i < 30 && !place.IsWorkingDay(day); ++i) day += 1;
  return day;
}

}  // namespace rogatory::deadlines

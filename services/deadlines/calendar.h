#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "rogatory/common/v1/types.pb.h"
#include "rogatory/deadlines/v1/deadlines.pb.h"

namespace rogatory::deadlines {

// Easter Sunday of `year` as a Gregorian date: Western (Gregorian computus) or Orthodox
// (Julian computus converted to the Gregorian calendar). Valid for years 1583 to 4099.
absl::CivilDay EasterSunday(int year, v1::EasterComputus computus);

// Where and by which calendar days are counted: an IANA zone, and the holidays and weekend
// of a state (and region). Cheap to copy.
struct CountingPlace {
  std::string time_zone_name = "UTC";
  absl::TimeZone time_zone = absl::UTCTimeZone();
  const v1::StateCalendar* calendar = nullptr;  // null: weekends only, no holidays
  std::string state;                            // ISO 3166-1, empty without a calendar
  std::string region;                           // ISO 3166-2, may be empty
  // Keeps `calendar` alive when the place outlives the caller's hold on the rule set.
  std::shared_ptr<const void> owner;

  // Not Saturday, Sunday (or the calendar's weekend) nor a public holiday of the region.
  bool IsWorkingDay(absl::CivilDay day) const;
  // How completely the calendar knows the days `first` to `last`: NO_CALENDAR without one,
  // BEYOND_COVERED_YEARS if a day lies outside the years it covers, else COMPLETE.
  v1::CalendarCoverage CoverageOf(absl::CivilDay first, absl::CivilDay last) const;
};

// The validated calendars of the calendars file. Immutable after Create.
class Calendars {
 public:
  // Validates (states unique and well-formed, zones loadable, dates possible) and names the
  // path of every problem ("states[3].holidays[2].month: must be 1 to 12").
  static absl::StatusOr<std::shared_ptr<const Calendars>> Create(v1::CalendarsFile file);

  const std::string& version() const { return file_.version(); }
  const v1::CalendarsFile& file() const { return file_; }

  // Where an authority counts days: its region's zone and holidays when the calendars know
  // the region, else its state's, else the requested state's; UTC with weekends only when
  // none is known (CoverageOf then says NO_CALENDAR, never silently).
  CountingPlace PlaceFor(const common::v1::AuthorityRef& executing_authority,
                         const std::string& requested_state) const;
  // The place a deadline recorded (Deadline.calendar_state / calendar_region); UTC with
  // weekends only for an empty or unknown state.
  CountingPlace PlaceOfCalendar(const std::string& state, const std::string& region) const;

 private:
  explicit Calendars(v1::CalendarsFile file) : file_(std::move(file)) {}
  v1::CalendarsFile file_;
  std::map<std::string, const v1::StateCalendar*> by_state_;
  std::map<std::string, absl::TimeZone> zones_;  // zone name -> loaded zone
};

// The end of a period of `days` calendar days that starts with a trigger at `trigger`,
// counted in `place`: the local midnight that ends the last day. Without Regulation 1182/71
// the trigger day is day 1; with it the trigger day is not counted and a last day that is
// not a working day moves to the next working day.
absl::Time DayPeriodEnd(absl::Time trigger, int days, bool regulation_1182_71,
                        const CountingPlace& place);

// The local midnight that ends `day` in `place`.
absl::Time EndOfDay(absl::CivilDay day, const CountingPlace& place);

// Regulation 1182/71 Art 3(4): `day` if it is a working day in `place`, else the next one.
absl::CivilDay NextWorkingDay(absl::CivilDay day, const CountingPlace& place);

}  // namespace rogatory::deadlines

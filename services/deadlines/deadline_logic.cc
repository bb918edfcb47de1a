#include "deadline_logic.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rogatory/common/event_builder.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/status.h"

namespace rogatory::deadlines {

using common::v1::EventType;

absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}
google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp p;
  const int64_t ns = absl::ToUnixNanos(t);
  p.set_seconds(ns / 1000000000);
  p.set_nanos(static_cast<int32_t>(ns % 1000000000));
  if (p.nanos() < 0) {
    p.set_seconds(p.seconds() - 1);
    p.set_nanos(p.nanos() + 1000000000);
  }
  return p;
}
absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}
google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  google::protobuf::Duration p;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  p.set_seconds(ns / 1000000000);
  p.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return p;
}

bool IsOpen(v1::DeadlineState s) {
  return s == v1::DEADLINE_STATE_RUNNING || s == v1::DEADLINE_STATE_SUSPENDED ||
         s == v1::DEADLINE_STATE_OVERDUE;
}

absl::Time ComputeDue(const v1::DeadlineRule& rule, absl::Time trigger,
                      const CountingPlace& place) {
  if (rule.unit() == v1::PERIOD_UNIT_HOURS) return trigger + absl::Hours(rule.length());
  return DayPeriodEnd(trigger, rule.length(), rule.regulation_1182_71(), place);
}

std::optional<absl::Time> IssuerDue(const common::v1::RequestFacts& facts,
                                    const CountingPlace& place) {
  std::optional<absl::Time> due;
  if (facts.has_issuer_deadline_time()) due = FromProtoTime(facts.issuer_deadline_time());
  if (facts.has_issuer_deadline_date() && facts.issuer_deadline_date().year() > 0) {
    const auto& d = facts.issuer_deadline_date();
    const absl::Time end = EndOfDay(absl::CivilDay(d.year(), d.month(), d.day()), place);
    if (!due || end < *due) due = end;
  }
  return due;
}

namespace {

// Reminders fire at half time and `remind_before` ahead of the due time, when that is after
// the trigger; sorted, without repeats.
void SetReminders(v1::Deadline& d) {
  const absl::Time start = FromProtoTime(d.trigger_time());
  const absl::Time due = FromProtoTime(d.due_time());
  std::vector<absl::Time> at;
  if (d.rule().remind_at_half_time()) at.push_back(start + (due - start) / 2);
  for (const auto& b : d.rule().remind_before()) at.push_back(due - FromProtoDuration(b));
  std::sort(at.begin(), at.end());
  at.erase(std::unique(at.begin(), at.end()), at.end());
  d.clear_reminders();
  for (absl::Time t : at) {
    if (t <= start || t >= due) continue;
    *d.add_reminders()->mutable_fire_time() = ToProtoTime(t);
  }
}

void ShiftReminders(v1::Deadline& d, absl::Duration by) {
  for (auto& r : *d.mutable_reminders()) {
    if (!r.fired()) *r.mutable_fire_time() = ToProtoTime(FromProtoTime(r.fire_time()) + by);
  }
}

}  // namespace

v1::Deadline NewDeadline(const StartInput& in) {
  v1::Deadline d;
  d.set_id(in.deadline_id);
  d.set_request_id(in.request_id);
  d.set_rule_id(in.rule.id());
  d.set_rules_version(in.rules_version);
  d.set_kind(in.rule.kind());
  d.set_state(v1::DEADLINE_STATE_RUNNING);
  d.set_trigger_event_type(in.trigger_type);
  *d.mutable_trigger_time() = ToProtoTime(in.trigger_time);
  absl::Time due = ComputeDue(in.rule, in.trigger_time, in.place);
  if (in.rule.unit() == v1::PERIOD_UNIT_DAYS) {
    const absl::CivilDay trigger_day = absl::ToCivilDay(in.trigger_time, in.place.time_zone);
    const absl::CivilDay last = absl::ToCivilDay(due - absl::Seconds(1), in.place.time_zone);
    d.set_calendar_coverage(in.place.CoverageOf(trigger_day, last));
    if (in.rule.regulation_1182_71()) {
      *d.mutable_unrolled_due_time() =
          ToProtoTime(EndOfDay(trigger_day + in.rule.length(), in.place));
    }
  }
  if (in.shortened_due && *in.shortened_due < due) {
    due = *in.shortened_due;
    // The issuer's date is not a period of the Regulation: nothing moves it.
    if (d.has_unrolled_due_time()) *d.mutable_unrolled_due_time() = ToProtoTime(due);
  }
  *d.mutable_due_time() = ToProtoTime(due);
  d.set_time_zone(in.place.time_zone_name);
  d.set_calendar_state(in.place.state);
  d.set_calendar_region(in.place.region);
  d.set_legal_basis(in.rule.legal_basis());
  d.set_instrument(in.instrument);
  d.set_executing_authority_id(in.executing_authority_id);
  *d.mutable_rule() = in.rule;
  d.set_trace_id(in.trace_id);
  SetReminders(d);
  return d;
}

std::vector<TimerSpec> TimersOf(const v1::Deadline& d) {
  std::vector<TimerSpec> out;
  const absl::Time due = FromProtoTime(d.due_time());
  if (d.state() == v1::DEADLINE_STATE_RUNNING) {
    for (int i = 0; i < d.reminders_size(); ++i) {
      if (!d.reminders(i).fired()) {
        out.push_back({absl::StrCat(d.id(), "|r", i), FromProtoTime(d.reminders(i).fire_time())});
      }
    }
    out.push_back({absl::StrCat(d.id(), "|d"), due});
  } else if (d.state() == v1::DEADLINE_STATE_OVERDUE) {
    const int k = d.escalations_done();  // next step k uses escalate_after[k-1]
    if (k >= 1 && k - 1 < d.rule().escalate_after_size()) {
      out.push_back(
          {absl::StrCat(d.id(), "|e", k), due + FromProtoDuration(d.rule().escalate_after(k - 1))});
    }
  }
  return out;
}

std::vector<common::v1::EventType> DeadlineEmittedEvents() {
  return {common::v1::EVENT_TYPE_DEADLINE_STARTED,  common::v1::EVENT_TYPE_DEADLINE_REMINDER,
          common::v1::EVENT_TYPE_DEADLINE_MISSED,   common::v1::EVENT_TYPE_DEADLINE_ESCALATED,
          common::v1::EVENT_TYPE_DEADLINE_EXTENDED, common::v1::EVENT_TYPE_DEADLINE_SUSPENDED,
          common::v1::EVENT_TYPE_DEADLINE_RESUMED,  common::v1::EVENT_TYPE_DEADLINE_MET,
          common::v1::EVENT_TYPE_DEADLINE_CANCELLED};
}

common::v1::Event ChangeEvent(const v1::Deadline& d, EventType type, absl::Time now,
                              const std::string& event_id, const std::string& reason_code) {
  static const auto* events = new common::EventBuilder(kEventSource, DeadlineEmittedEvents());
  common::v1::Event e = events->New(
      {.request_id = d.request_id(), .trace_id = d.trace_id(), .instrument = d.instrument()},
      {type, now, event_id});
  e.mutable_actor()->set_service(kServiceName);
  e.set_legal_basis(d.legal_basis());
  e.set_reason_code(reason_code);
  auto* c = e.mutable_deadline();
  c->set_deadline_id(d.id());
  c->set_rule_id(d.rule_id());
  c->set_rules_version(d.rules_version());
  *c->mutable_due_time() = d.due_time();
  if (type == common::v1::EVENT_TYPE_DEADLINE_MISSED ||
      type == common::v1::EVENT_TYPE_DEADLINE_ESCALATED) {
    c->set_escalation_level(d.escalation_level());
    c->set_escalate_to(d.rule().escalate_to());
  }
  return e;
}

FireResult Fire(v1::Deadline& d, const std::string& what, absl::Time now) {
  FireResult r;
  const absl::Time due = FromProtoTime(d.due_time());
  if (what.size() > 1 && what[0] == 'r') {
    int i = 0;
    if (!absl::SimpleAtoi(what.substr(1), &i) || i < 0 || i >= d.reminders_size()) return r;
    if (d.state() != v1::DEADLINE_STATE_RUNNING || d.reminders(i).fired()) return r;
    d.mutable_reminders(i)->set_fired(true);
    r.changed = true;
    // A reminder that comes after the due time (a backlog, a late start) says nothing new.
    if (now < due) r.event_type = common::v1::EVENT_TYPE_DEADLINE_REMINDER;
    return r;
  }
  if (what == "d") {
    if (d.state() != v1::DEADLINE_STATE_RUNNING || now < due) return r;
    d.set_state(v1::DEADLINE_STATE_OVERDUE);
    for (auto& rem : *d.mutable_reminders()) rem.set_fired(true);
    d.set_escalations_done(1);
    d.set_escalation_level(1);
    r.changed = true;
    r.event_type = common::v1::EVENT_TYPE_DEADLINE_MISSED;
    return r;
  }
  if (what.size() > 1 && what[0] == 'e') {
    int k = 0;
    if (!absl::SimpleAtoi(what.substr(1), &k)) return r;
    if (d.state() != v1::DEADLINE_STATE_OVERDUE || d.escalations_done() != k) return r;
    if (k - 1 >= d.rule().escalate_after_size() ||
        now < due + FromProtoDuration(d.rule().escalate_after(k - 1))) {
      return r;
    }
    d.set_escalations_done(k + 1);
    d.set_escalation_level(k + 1);
    r.changed = true;
    r.event_type = common::v1::EVENT_TYPE_DEADLINE_ESCALATED;
    return r;
  }
  return r;
}

namespace {

// FAILED_PRECONDITION, reason TRANSITION_NOT_ALLOWED: `d`'s state does not allow the change.
absl::Status StateForbids(const v1::Deadline& d, std::string message) {
  return common::TransitionNotAllowed(d.id(), v1::DeadlineState_Name(d.state()), "",
                                      std::move(message));
}

}  // namespace

absl::StatusOr<EventType> Extend(v1::Deadline& d, absl::Duration by, const std::string& reason_code,
                                 const std::string& note, absl::Time now,
                                 const CountingPlace& place) {
  if (d.state() != v1::DEADLINE_STATE_RUNNING && d.state() != v1::DEADLINE_STATE_OVERDUE &&
      d.state() != v1::DEADLINE_STATE_SUSPENDED) {
    return StateForbids(d, "only an open deadline can be extended");
  }
  if (d.rule().max_extensions() <= d.extensions_size()) {
    return absl::FailedPreconditionError(absl::StrCat("rule ", d.rule_id(), " allows ",
                                                      d.rule().max_extensions(), " extension(s); ",
                                                      d.extensions_size(), " already granted"));
  }
  const absl::Duration max = FromProtoDuration(d.rule().max_extension());
  if (by > max) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rule ", d.rule_id(), " allows extensions of at most ", absl::FormatDuration(max)));
  }
  absl::Time due = FromProtoTime(d.due_time());
  absl::Time new_due = due + by;
  if (d.rule().unit() == v1::PERIOD_UNIT_DAYS && by % absl::Hours(24) == absl::ZeroDuration()) {
    // Whole days move the end of the day, not 24-hour blocks (a DST change in between).
    const int64_t days = by / absl::Hours(24);
    if (d.rule().regulation_1182_71()) {
      // An extension lengthens the period; it does not start a new one after the first. So
      // the extended period is counted as the first is (Regulation 1182/71 Art 3): its days
      // run on from the end of the first period's last day as counted, before Art 3(4) moved
      // that end off a Saturday, Sunday or holiday (that move only ever applies to the
      // period's final end), and only the new last day moves to the next working day. EAW
      // Art 17(4): 60 days "extended by a further 30 days" is 90 days from the arrest. A
      // deadline without its unrolled end (started before it was recorded) counts on from
      // its due time.
      const absl::Time base =
          d.has_unrolled_due_time() ? FromProtoTime(d.unrolled_due_time()) : due;
      const absl::CivilDay last = absl::ToCivilDay(base - absl::Seconds(1), place.time_zone) + days;
      const absl::CivilDay rolled = NextWorkingDay(last, place);
      *d.mutable_unrolled_due_time() = ToProtoTime(EndOfDay(last, place));
      new_due = EndOfDay(rolled, place);
      const v1::CalendarCoverage coverage = place.CoverageOf(last - days, rolled);
      if (coverage != v1::CALENDAR_COVERAGE_COMPLETE) d.set_calendar_coverage(coverage);
    } else {
      const absl::CivilDay last = absl::ToCivilDay(due - absl::Seconds(1), place.time_zone);
      new_due = EndOfDay(last + days, place);
    }
  }
  auto* ext = d.add_extensions();
  *ext->mutable_by() = ToProtoDuration(by);
  ext->set_reason_code(reason_code);
  ext->set_note(note);
  *ext->mutable_grant_time() = ToProtoTime(now);
  *d.mutable_due_time() = ToProtoTime(new_due);
  ShiftReminders(d, new_due - due);
  if (d.state() == v1::DEADLINE_STATE_OVERDUE && new_due > now) {
    d.set_state(v1::DEADLINE_STATE_RUNNING);
    d.set_escalations_done(0);
  }
  return common::v1::EVENT_TYPE_DEADLINE_EXTENDED;
}

absl::StatusOr<EventType> Suspend(v1::Deadline& d, absl::Time now) {
  if (d.state() != v1::DEADLINE_STATE_RUNNING) {
    return StateForbids(d, "only a running deadline can be suspended");
  }
  d.set_state(v1::DEADLINE_STATE_SUSPENDED);
  *d.mutable_suspend_time() = ToProtoTime(now);
  return common::v1::EVENT_TYPE_DEADLINE_SUSPENDED;
}

absl::StatusOr<EventType> Resume(v1::Deadline& d, absl::Time now) {
  if (d.state() != v1::DEADLINE_STATE_SUSPENDED) {
    return StateForbids(d, "only a suspended deadline can be resumed");
  }
  const absl::Duration stopped =
      std::max(absl::ZeroDuration(), now - FromProtoTime(d.suspend_time()));
  *d.mutable_due_time() = ToProtoTime(FromProtoTime(d.due_time()) + stopped);
  if (d.has_unrolled_due_time()) {
    *d.mutable_unrolled_due_time() = ToProtoTime(FromProtoTime(d.unrolled_due_time()) + stopped);
  }
  *d.mutable_suspended_duration() =
      ToProtoDuration(FromProtoDuration(d.suspended_duration()) + stopped);
  ShiftReminders(d, stopped);
  d.clear_suspend_time();
  d.set_state(v1::DEADLINE_STATE_RUNNING);
  return common::v1::EVENT_TYPE_DEADLINE_RESUMED;
}

absl::StatusOr<EventType> Complete(v1::Deadline& d, absl::Time now) {
  if (d.state() == v1::DEADLINE_STATE_MET) return common::v1::EVENT_TYPE_UNSPECIFIED;
  if (d.state() == v1::DEADLINE_STATE_CANCELLED) {
    return StateForbids(d, "a cancelled deadline cannot be met");
  }
  if (d.state() == v1::DEADLINE_STATE_SUSPENDED) {
    d.clear_suspend_time();
  }
  d.set_state(v1::DEADLINE_STATE_MET);
  *d.mutable_close_time() = ToProtoTime(now);
  return common::v1::EVENT_TYPE_DEADLINE_MET;
}

absl::StatusOr<EventType> Cancel(v1::Deadline& d, absl::Time now) {
  if (d.state() == v1::DEADLINE_STATE_CANCELLED) return common::v1::EVENT_TYPE_UNSPECIFIED;
  if (d.state() == v1::DEADLINE_STATE_MET) {
    return StateForbids(d, "a met deadline cannot be cancelled");
  }
  d.set_state(v1::DEADLINE_STATE_CANCELLED);
  *d.mutable_close_time() = ToProtoTime(now);
  return common::v1::EVENT_TYPE_DEADLINE_CANCELLED;
}

std::string TimerEventId(const std::string& member, int64_t version, absl::Time due) {
  static constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  const std::string digest = common::Sha1Hex(absl::StrCat(member, "#", version));
  // 48-bit time in 10 characters, then 80 bits of the digest in 16 characters.
  uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(due)));
  std::string out(26, '0');
  for (int i = 9; i >= 0; --i) {
    out[i] = kAlphabet[ms & 31];
    ms >>= 5;
  }
  for (int i = 0; i < 16; ++i) {
    int v = 0;
    absl::SimpleHexAtoi(digest.substr(i * 2, 2), &v);
    out[10 + i] = kAlphabet[v & 31];
  }
  return out;
}

}  // namespace rogatory::deadlines

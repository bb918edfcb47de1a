#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "calendar.h"
#include "rogatory/deadlines/v1/deadlines.pb.h"

namespace rogatory::deadlines {

// The validated rules and calendars in force. Immutable; a reload builds a new one.
class RuleSet {
 public:
  // Validates every rule (ids unique and [A-Z0-9_]+, instrument and unit set, length
  // positive and at most 3650 days / 87600 hours, extensions consistent, durations
  // non-negative, reminders shorter than the period) and names the path of every problem,
  // e.g. "rules[4].length: must be positive".
  static absl::StatusOr<std::shared_ptr<const RuleSet>> Create(
      v1::DeadlineRulesFile rules, std::shared_ptr<const Calendars> calendars);

  // Reads `<dir>/rules.json` and `<dir>/calendars.json` (protobuf JSON mapping; unknown
  // fields are errors) and validates them. The message names the file and the problem.
  static absl::StatusOr<std::shared_ptr<const RuleSet>> Load(const std::string& dir);

  // "<rules version>+<calendars version>": recorded on each deadline.
  const std::string& version() const { return version_; }
  const v1::DeadlineRulesFile& file() const { return rules_; }
  const Calendars& calendars() const { return *calendars_; }

  const v1::DeadlineRule* Find(const std::string& id) const;
  // The rules an event of `type` starts for a request of `instrument` and `urgency`.
  std::vector<const v1::DeadlineRule*> TriggeredBy(common::v1::EventType type,
                                                   common::v1::Instrument instrument,
                                                   common::v1::Urgency urgency) const;

 private:
  RuleSet() = default;
  v1::DeadlineRulesFile rules_;
  std::shared_ptr<const Calendars> calendars_;
  std::string version_;
};

// Holds the rule set in force; Reload swaps it atomically for a new valid one and keeps the
// old one when the new files are invalid. Thread-safe.
class RulesRegistry {
 public:
  RulesRegistry(std::string dir, std::shared_ptr<const RuleSet> initial)
      : dir_(std::move(dir)), current_(std::move(initial)) {}
  std::shared_ptr<const RuleSet> Current() const;
  absl::Status Reload();
  const std::string& dir() const { return dir_; }

 private:
  const std::string dir_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const RuleSet> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::deadlines

#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rogatory/common/clock.h"

namespace rogatory::common {

// Turns a flood of like events that callers can cause at will (calls refused as
// unauthenticated, requests whose bytes do not parse) into at most one log line per kind
// per interval, so that nobody can fill the log or hide other lines in it. The first
// event of a kind after a quiet interval is reported at once; later ones within the
// interval are only counted, and the first event after the interval reports them all.
// Thread-safe.
class LogSummary {
 public:
  LogSummary(const Clock& clock, absl::Duration interval);

  // Notes one event of `kind`. `kind` is a fixed name chosen by the code, never caller
  // data (each kind keeps a counter). Returns 0 when the event is only counted, or, when a
  // line is due now, the number of events it reports: this one and those counted since
  // the last line.
  int64_t Note(absl::string_view kind);

  // Events of `kind` counted and not yet reported.
  int64_t pending(absl::string_view kind) const;

  absl::Duration interval() const { return interval_; }

 private:
  struct Kind {
    absl::Time last_line = absl::InfinitePast();
    int64_t pending = 0;
  };

  const Clock& clock_;
  const absl::Duration interval_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Kind> kinds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::common

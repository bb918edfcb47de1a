#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"

// The denial log (issue 16, item 8): every call answered PERMISSION_DENIED or NOT_FOUND,
// per caller, for auditors (rogatory.admin.v1.AuditService.ListDenials). The pipeline
// writes a record for every such answer, in the same way whether what the call named
// exists or not (a missing request and one outside the caller's reach are both NOT_FOUND,
// and both are written by the same code after the handler answered), so neither the answer
// nor its timing tells them apart. Records hold ids and codes only: who (authority id,
// state, roles), what (method), which id the call named (if it looks like an id), when,
// the code, the trace id.
//
// Keys: rg:{sN}:denials:<authority id> (N: the shard of the authority id), a stream capped
// at about `max_entries` (XADD MAXLEN ~) whose key expires `retention` after its last
// record. Stream ids are the record's time in ms (the injected clock), so a time range is a
// stream range.

namespace rogatory::common {

struct DenialRecord {
  absl::Time time;
  std::string method;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string target_id;
  Caller caller;
  std::string trace_id;
};

// Where the pipeline writes denials. Thread-safe.
class DenialLog {
 public:
  virtual ~DenialLog() = default;
  // Writes `record` (its time is the log's clock's) and calls `done` once written, or with
  // the error; never blocks.
  virtual void Record(DenialRecord record, std::function<void(absl::Status)> done) = 0;
};

// Whether a call answered `code` goes to the denial log.
bool IsDenial(absl::StatusCode code);

// The id a call named, fit for the log: `id` when it is 1 to 128 characters of
// [A-Za-z0-9._:/-], else "" (caller-chosen text never enters the log).
std::string DenialTargetId(absl::string_view id);

std::string DenialLogKey(const Sharding& sharding, absl::string_view authority_id);

struct RedisDenialLogOptions {
  int64_t max_entries = 10'000;                     // per caller, approximately
  absl::Duration retention = absl::Hours(24 * 90);  // after a caller's last denial
};

class RedisDenialLog final : public DenialLog {
 public:
  RedisDenialLog(RedisClient& redis, const Clock& clock, const Sharding& sharding,
                 RedisDenialLogOptions options = {})
      : redis_(redis), clock_(clock), sharding_(sharding), options_(options) {}
  void Record(DenialRecord record, std::function<void(absl::Status)> done) override;

 private:
  RedisClient& redis_;
  const Clock& clock_;
  const Sharding& sharding_;
  RedisDenialLogOptions options_;
};

// One page of a caller's denials, oldest first, in [from, to) (either may be absent:
// InfinitePast / InfiniteFuture), after the stream id `after` (exclusive; empty: from the
// start). `next_after` is empty on the last page.
struct DenialPage {
  std::vector<DenialRecord> records;
  std::string next_after;
};
void ListDenials(RedisClient& redis, const Sharding& sharding, const std::string& authority_id,
                 absl::Time from, absl::Time to, const std::string& after, int page_size,
                 std::function<void(absl::StatusOr<DenialPage>)> done);

}  // namespace rogatory::common

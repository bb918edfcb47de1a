#pragma once

// The typed calls of deadline-tracking's Redis scripts (services/deadlines/lua/*.lua): one
// entry point per script, taking a struct of named fields and answering a typed result.
// This is the only code that knows the scripts' KEYS and ARGV positions and reply shapes;
// the store (deadline_store.h) turns deadlines into these calls. Every key a script touches
// is built here (Keys) and passed in KEYS; all of one call are in one shard's hash slot.
//
// Each `done` runs exactly once, on the Redis client's thread: it must not block.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rogatory/common/access.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/redis.h"

namespace rogatory::deadlines::scripts {

template <typename T>
using Done = std::function<void(absl::StatusOr<T>)>;

// Key names of one shard (P = "rg:{sN}:"); see deadline_store.h for what each holds.
struct Keys {
  static std::string Of(int shard, const std::string& suffix);  // P dl:<suffix>
  static std::string Deadline(int shard, const std::string& id) { return Of(shard, "d:" + id); }
  static std::string ByRequest(int shard, const std::string& request_id) {
    return Of(shard, "byreq:" + request_id);
  }
  static std::string ByAuthority(int shard, const std::string& authority_id) {
    return Of(shard, "byauth:" + authority_id);
  }
  static std::string Sequence(int shard, const std::string& request_id) {
    return Of(shard, "seq:" + request_id);
  }
  static std::string Parties(int shard, const std::string& request_id) {
    return Of(shard, "parties:" + request_id);
  }
};

// deadline_commit.lua: writes deadlines of one shard, all or none.
struct CommitWrite {
  std::string id;
  int64_t expected_version = 0;  // 0: new, it must not exist
  std::string deadline_pb;       // the serialized Deadline
  int state = 0;                 // its DeadlineState number
  int64_t due_ms = 0;
  std::string timer_member;  // its one timer in the shard's timer set; empty: none
  int64_t timer_score = 0;   // the timer's due ms (rounded up)
  std::string request_id;
  std::string authority;  // the authority it is indexed under (open ones only); empty: none
  int instrument = 0;
  // The authority the stored deadline (expected_version) is indexed under, as the caller
  // read it; a different one stored is a conflict.
  std::string stored_authority;
  std::string event_pb;  // the serialized Event without its sequence; empty: none
};
struct CommitCall {
  int shard = 0;
  std::optional<common::Dedupe> dedupe;  // a received event's duplicate marker
  std::string claim_member;              // a claimed timer being fired; empty: none
  std::string claim_token;
  std::string idempotency_key;  // empty: none
  // Need-to-know parties to record (non-empty values); empty request id: none.
  std::string parties_request_id;
  common::RequestParties parties;
  std::vector<CommitWrite> writes;
};
struct CommitResult {
  enum class Outcome { kOk, kReplayed, kConflict, kExists, kFenced, kDuplicate };
  Outcome outcome = Outcome::kOk;
  std::string deadline_id;  // kConflict, kExists: the write refused
};
void Commit(common::RedisClient& redis, const CommitCall& call, Done<CommitResult> done);
absl::StatusOr<CommitResult> CommitBlocking(common::RedisClient& redis, const CommitCall& call);

// deadline_claim.lua: claims up to `limit` due timers of a shard.
struct ClaimCall {
  int shard = 0;
  int64_t now_ms = 0;
  int64_t lease_ms = 0;
  int limit = 0;
};
struct ClaimedMember {
  std::string member;  // "<deadline id>|<what>"
  std::string token;
  int64_t due_ms = 0;
  bool takeover = false;
};
absl::StatusOr<std::vector<ClaimedMember>> ClaimBlocking(common::RedisClient& redis,
                                                         const ClaimCall& call);

// deadline_read.lua: fields of deadlines of one shard.
struct ReadCall {
  int shard = 0;
  std::vector<std::string> deadline_ids;
  std::vector<std::string> fields;
};
// Per deadline (in deadline_ids order), the value of each field ('' when missing).
using ReadResult = std::vector<std::vector<std::string>>;
void Read(common::RedisClient& redis, const ReadCall& call, Done<ReadResult> done);
absl::StatusOr<ReadResult> ReadBlocking(common::RedisClient& redis, const ReadCall& call);

// deadline_index_page.lua: a page of an index in (score, id) order after a cursor.
struct PageCall {
  int shard = 0;
  std::string index;  // "byreq:<id>", "open", "byauth:<id>"
  int64_t max_score = 0;
  int limit = 0;
  std::optional<std::pair<int64_t, std::string>> after;  // (score, id)
  // Deadlines the page may list (a hint): when it lists only these, their `fields` are read
  // with it (PageResult::read).
  std::vector<std::string> hint;
  std::vector<std::string> fields;
};
struct PageResult {
  struct Entry {
    int64_t score = 0;
    std::string id;
  };
  std::vector<Entry> entries;
  bool more = false;
  // The entries' fields, as Read returns them, when the hint held every entry.
  std::optional<ReadResult> read;
};
void Page(common::RedisClient& redis, const PageCall& call, Done<PageResult> done);

// deadline_erase_request.lua: erases a request's deadlines read before.
struct EraseCall {
  int shard = 0;
  std::string request_id;
  common::Dedupe dedupe;
  struct Deadline {
    std::string id;
    std::string authority;  // the authority it is indexed under, as read; empty: none
  };
  std::vector<Deadline> deadlines;  // every member of the request's index, as read
};
enum class EraseResult { kHandled, kDuplicate, kRetry };
void Erase(common::RedisClient& redis, const EraseCall& call, Done<EraseResult> done);

}  // namespace rogatory::deadlines::scripts
